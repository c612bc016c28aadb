package operator

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/ops"
)

var errMediaType = &problem.Error{Status: http.StatusUnsupportedMediaType, Kind: "unsupported-media-type",
	Detail: "an action's body must be JSON, sent with Content-Type: application/json"}

// opsProblems maps the operations' sentinels: 404, 409, 400 with the
// error's text (which says which parameter and why), and 502 with a
// generic detail (the cause may name an address).
var opsProblems = []problem.Sentinel{
	{Err: ops.ErrNotFound, Status: http.StatusNotFound, Kind: "not-found"},
	{Err: ops.ErrConflict, Status: http.StatusConflict, Kind: "conflict"},
	{Err: ops.ErrInvalid, Status: http.StatusBadRequest, Kind: "invalid-request"},
	{Err: ops.ErrUpstream, Status: http.StatusBadGateway, Kind: "upstream",
		Detail: "a dependency (Kafka Connect or Kafka) failed; the cause has been logged"},
}

// problemFor turns an error of a handler, of a middleware or of Echo into
// the problem answered (anything unknown is a generic 500).
func problemFor(err error, r *http.Request) problem.Problem {
	return problem.For(err, r, opsProblems, nil)
}

// errorHandler writes every error as application/problem+json and logs the
// ones that are the server's or a dependency's fault, with their cause
// (without addresses).
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		r := c.Request()
		p := problemFor(err, r)
		if p.Status >= 500 && p.Status != http.StatusServiceUnavailable && !errors.As(err, new(*problem.Error)) {
			logger.ErrorContext(r.Context(), "operator request failed", "method", r.Method, "path", r.URL.Path, "err", problem.Redact(err, "dependency"))
		}
		if err := problem.Write(c, p); err != nil {
			logger.WarnContext(r.Context(), "write error response", "err", err)
		}
	}
}
