package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/internal/strictjson"
)

// decodeJSON reads the request body as exactly one JSON object into dst,
// refusing other media types, unknown fields, field names that differ from
// the documented ones (case included), duplicate fields at any depth, wrong
// types and trailing data.
func decodeJSON(c echo.Context, dst any) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return &requestError{
			status: http.StatusUnsupportedMediaType,
			kind:   "unsupported-media-type",
			detail: "the request body must be JSON, sent with Content-Type: application/json",
		}
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he
		}
		return badRequest("the request body could not be read")
	}
	if err := strictjson.Check(body, dst); err != nil {
		return badRequest("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he
		}
		return badRequest("the request body must hold a single JSON object and nothing after it")
	}
	return nil
}

func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, io.EOF):
		return badRequest("the request body is empty; it must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		return badRequest("the request body is not valid JSON (at byte %d): %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("the request body must be a JSON object, not %s", typ.Value)
		}
		return badRequest("field %q must be %s, not %s", typ.Field, describeType(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return badRequest("the request body is not valid JSON: %v", err)
	}
}

func describeType(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "int64", "int":
		return "an integer in range"
	case "string":
		return "a string"
	default:
		if strings.HasPrefix(goType, "[]") {
			return "an array"
		}
		return "an object"
	}
}

// pathID reads a positive integer id from the named path parameter. Only
// the canonical decimal form is accepted: digits without sign, leading
// zeros, spaces or exponent, from 1 to 9223372036854775807.
func pathID(c echo.Context, name string) (int64, error) {
	s := c.Param(name)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 || strconv.FormatInt(id, 10) != s {
		return 0, badRequest("%s must be a positive integer in canonical decimal form (1 to %d, no sign or leading zeros), not %q",
			name, int64(math.MaxInt64), s)
	}
	return id, nil
}

// required returns *v, or an error naming the missing field.
func required[T any](v *T, field string) (T, error) {
	if v == nil {
		var zero T
		return zero, badRequest("field %q is required", field)
	}
	return *v, nil
}

// positive checks that a required integer field is at least 1.
func positive(v *int64, field string) (int64, error) {
	n, err := required(v, field)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, badRequest("field %q must be a positive integer, not %d", field, n)
	}
	return n, nil
}

// idempotencyKey reads the optional Idempotency-Key header.
func idempotencyKey(c echo.Context, maxLen int) (string, error) {
	values := c.Request().Header.Values("Idempotency-Key")
	if len(values) == 0 {
		return "", nil
	}
	k := values[0]
	if len(values) > 1 || k == "" || len(k) > maxLen {
		return "", badRequest("Idempotency-Key must be one value of 1 to %d printable ASCII characters", maxLen)
	}
	for _, r := range k {
		if r < 0x21 || r > 0x7e {
			return "", badRequest("Idempotency-Key must be one value of 1 to %d printable ASCII characters", maxLen)
		}
	}
	return k, nil
}
