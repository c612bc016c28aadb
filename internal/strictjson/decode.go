package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// ErrMediaType is DecodeRequest's error for a body that is not sent as
// Content-Type: application/json.
var ErrMediaType = errors.New("the request body is not application/json")

// ReadError is DecodeRequest's error for a body that could not be read
// (one over a size limit, say); Err is the reader's.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read the request body: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Kind says what is wrong with a JSON text Decode refuses.
type Kind int

const (
	// Empty: no JSON value at all.
	Empty Kind = iota + 1
	// Truncated: the text ends inside the value.
	Truncated
	// Syntax: not valid JSON; Offset is where.
	Syntax
	// Member: an object member Check refuses; Member says which and why.
	Member
	// UnknownField: a member encoding/json has no field for; Field is its
	// name, quoted.
	UnknownField
	// Type: a value of the wrong JSON type; Field is its path ("" for the
	// whole value), Value the JSON type sent, GoType the type wanted.
	Type
	// Trailing: something follows the value.
	Trailing
	// Other: any other error of the decoder or of a type's UnmarshalJSON,
	// which Err holds.
	Other
)

// DecodeError is what Decode refuses, classified so that each API can word
// it in its own error shape. Err is the underlying error, if any.
type DecodeError struct {
	Kind   Kind
	Offset int64        // Syntax
	Member *MemberError // Member
	Field  string       // UnknownField, Type
	Value  string       // Type
	GoType reflect.Type // Type
	Err    error
}

func (e *DecodeError) Error() string {
	switch e.Kind {
	case Empty:
		return "empty JSON body"
	case Truncated:
		return "JSON ends too early"
	case Member:
		return e.Member.Error()
	case UnknownField:
		return "unknown field " + e.Field
	case Trailing:
		return "data after the JSON value"
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("invalid JSON (kind %d)", e.Kind)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeRequest decodes the body of r, sent as application/json (with any
// parameters), into dst with Decode's rules. Its errors are ErrMediaType, a
// *ReadError or a *DecodeError.
func DecodeRequest(r *http.Request, dst any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return ErrMediaType
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return &ReadError{Err: err}
	}
	return Decode(body, dst)
}

// Decode decodes data, exactly one JSON value, into dst (a pointer): a
// member Check refuses (unknown, named with other case, repeated in its
// object) is an error, and so are what encoding/json refuses with unknown
// fields disallowed and anything after the value. Its errors are
// *DecodeError.
func Decode(data []byte, dst any) error {
	if err := Check(data, dst); err != nil {
		var me *MemberError
		if errors.As(err, &me) {
			return &DecodeError{Kind: Member, Member: me, Err: err}
		}
		return &DecodeError{Kind: Other, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return classify(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &DecodeError{Kind: Trailing, Err: err}
	}
	return nil
}

// classify turns an error of json.Decoder.Decode into a *DecodeError.
func classify(err error) *DecodeError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &DecodeError{Kind: Empty, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &DecodeError{Kind: Truncated, Err: err}
	case errors.As(err, &syntax):
		return &DecodeError{Kind: Syntax, Offset: syntax.Offset, Err: err}
	case errors.As(err, &typ):
		return &DecodeError{Kind: Type, Field: typ.Field, Value: typ.Value, GoType: typ.Type, Err: err}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &DecodeError{Kind: UnknownField, Field: strings.TrimPrefix(err.Error(), "json: unknown field "), Err: err}
	default:
		return &DecodeError{Kind: Other, Err: err}
	}
}
