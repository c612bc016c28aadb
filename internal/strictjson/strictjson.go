// Package strictjson closes the gaps encoding/json leaves open when it
// decodes a request body: it matches object member names case-insensitively
// and lets the last of two members with the same name win. Check scans a
// JSON text against the Go type it is about to be decoded into and reports
// the first member that is unknown (including a name that matches a field
// only when case is ignored) or repeated in its object.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Reason says what is wrong with a member.
type Reason int

const (
	// Unknown is a member name the target type has no field for.
	Unknown Reason = iota + 1
	// Duplicate is a member name seen before in the same object.
	Duplicate
)

// MemberError is an object member Check refuses.
type MemberError struct {
	// Reason says what is wrong.
	Reason Reason
	// Path locates the member, as "items[0].quantity".
	Path string
	// Name is the member name as sent.
	Name string
	// Want is, for an Unknown name that matches a field when case is
	// ignored, that field's exact name; else empty.
	Want string
}

func (e *MemberError) Error() string {
	switch {
	case e.Reason == Duplicate:
		return fmt.Sprintf("duplicate field %q", e.Path)
	case e.Want != "":
		return fmt.Sprintf("unknown field %q (field names are case-sensitive: did you mean %q?)", e.Path, e.Want)
	default:
		return fmt.Sprintf("unknown field %q", e.Path)
	}
}

// errSyntax stops the scan at JSON it cannot read; the decoder that runs
// after Check reports it better.
var errSyntax = errors.New("strictjson: not valid JSON")

// Check returns a *MemberError for the first member of data that dst (a
// pointer, as passed to json.Unmarshal) would not take by its exact name,
// or that repeats a name in its object, at any depth. Duplicates are found
// in every object, also inside maps and values of type any; names are
// checked against the json tags of structs. Values of types with their own
// UnmarshalJSON are checked for duplicates only. Check returns nil for JSON
// that is not valid or holds no such member: decoding reports the rest.
func Check(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var t reflect.Type
	if dst != nil {
		t = reflect.TypeOf(dst)
	}
	err := scan(dec, t, "", 0)
	if errors.Is(err, errSyntax) {
		return nil
	}
	return err
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// maxDepth is encoding/json's nesting limit; deeper JSON is left to it.
const maxDepth = 10000

// scan reads one value of type t (nil: any) from dec, nested depth deep.
func scan(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	if depth > maxDepth {
		return errSyntax
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || t.Kind() == reflect.Interface) {
		t = nil // opaque or any: duplicates only
	}
	tok, err := dec.Token()
	if err != nil {
		return errSyntax
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]field
		var elem reflect.Type
		named := false
		if t != nil {
			switch t.Kind() {
			case reflect.Struct:
				fields, named = structFields(t), true
			case reflect.Map:
				elem = t.Elem()
			}
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return errSyntax
			}
			name, ok := k.(string)
			if !ok {
				return errSyntax
			}
			at := join(path, name)
			if seen[name] {
				return &MemberError{Reason: Duplicate, Path: at, Name: name}
			}
			seen[name] = true
			vt := elem
			if named {
				f, ok := fields[name]
				if !ok {
					return &MemberError{Reason: Unknown, Path: at, Name: name, Want: fold(fields, name)}
				}
				vt = f.typ
			}
			if err := scan(dec, vt, at, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errSyntax
		}
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && !t.Implements(textUnmarshaler) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := scan(dec, elem, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errSyntax
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

type field struct{ typ reflect.Type }

// structFields maps the exact JSON names of t's fields, as encoding/json
// names them (tag name, else the Go name; embedded structs flattened).
func structFields(t reflect.Type) map[string]field {
	out := map[string]field{}
	addFields(t, out, 0)
	return out
}

func addFields(t reflect.Type, out map[string]field, depth int) {
	if depth > 10 {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, out, depth+1)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := out[name]; !dup {
			out[name] = field{typ: f.Type}
		}
	}
}

// fold returns the first (in sort order) field name that equals name when
// case is ignored, or "".
func fold(fields map[string]field, name string) string {
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return ""
}
