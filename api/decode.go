package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/strictjson"
)

// decodeJSON reads the request body as exactly one JSON object into dst
// (strictjson.DecodeRequest), refusing other media types, unknown fields,
// field names that differ from the documented ones (case included),
// duplicate fields at any depth, wrong types and trailing data, each as a
// problem whose detail says what is wrong.
func decodeJSON(c echo.Context, dst any) error {
	err := strictjson.DecodeRequest(c.Request(), dst)
	var he *echo.HTTPError
	var re *strictjson.ReadError
	var de *strictjson.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, strictjson.ErrMediaType):
		return &problem.Error{
			Status: http.StatusUnsupportedMediaType,
			Kind:   "unsupported-media-type",
			Detail: "the request body must be JSON, sent with Content-Type: application/json",
		}
	case errors.As(err, &he):
		return he
	case errors.As(err, &re):
		return problem.BadRequest("the request body could not be read")
	case errors.As(err, &de):
		return jsonError(de)
	default:
		return problem.BadRequest("the request body is not valid JSON: %v", err)
	}
}

// jsonError words a refused JSON body as the API's problem detail.
func jsonError(de *strictjson.DecodeError) error {
	switch de.Kind {
	case strictjson.Member:
		return problem.BadRequest("%v", de.Member)
	case strictjson.Empty:
		return problem.BadRequest("the request body is empty; it must be a JSON object")
	case strictjson.Truncated:
		return problem.BadRequest("the request body is not valid JSON: it ends too early")
	case strictjson.Syntax:
		return problem.BadRequest("the request body is not valid JSON (at byte %d): %s", de.Offset, de.Err.Error())
	case strictjson.Type:
		if de.Field == "" {
			return problem.BadRequest("the request body must be a JSON object, not %s", de.Value)
		}
		return problem.BadRequest("field %q must be %s, not %s", de.Field, describeType(de.GoType.String()), de.Value)
	case strictjson.UnknownField:
		return problem.BadRequest("unknown field %s", de.Field)
	case strictjson.Trailing:
		return problem.BadRequest("the request body must hold a single JSON object and nothing after it")
	default:
		return problem.BadRequest("the request body is not valid JSON: %v", de.Err)
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
		return 0, problem.BadRequest("%s must be a positive integer in canonical decimal form (1 to %d, no sign or leading zeros), not %q",
			name, int64(math.MaxInt64), s)
	}
	return id, nil
}

// required returns *v, or an error naming the missing field.
func required[T any](v *T, field string) (T, error) {
	if v == nil {
		var zero T
		return zero, problem.BadRequest("field %q is required", field)
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
		return 0, problem.BadRequest("field %q must be a positive integer, not %d", field, n)
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
		return "", problem.BadRequest("Idempotency-Key must be one value of 1 to %d printable ASCII characters", maxLen)
	}
	for _, r := range k {
		if r < 0x21 || r > 0x7e {
			return "", problem.BadRequest("Idempotency-Key must be one value of 1 to %d printable ASCII characters", maxLen)
		}
	}
	return k, nil
}
