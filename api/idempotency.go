package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/labstack/echo/v4"
)

// requestFingerprint identifies a request for its Idempotency-Key: the
// method and route template in clear, then the SHA-256 of the canonical
// request, a JSON array of the method, the route template, the path
// parameters (an object, so sorted by name) and the decoded body re-marshalled
// (body is the struct the handler decoded, so whitespace, field order and
// escapes of what was sent do not matter). Call it after the path ids and the
// body have been validated. The result is at most a few hundred bytes.
func requestFingerprint(c echo.Context, body any) (string, error) {
	params := make(map[string]string, len(c.ParamNames()))
	for i, name := range c.ParamNames() {
		if i < len(c.ParamValues()) {
			params[name] = c.ParamValues()[i]
		}
	}
	method, route := c.Request().Method, c.Path()
	canonical, err := json.Marshal([]any{method, route, params, body})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s %s: %w", method, route, err)
	}
	sum := sha256.Sum256(canonical)
	return method + " " + route + " sha256:" + hex.EncodeToString(sum[:]), nil
}
