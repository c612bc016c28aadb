package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/ops"
)

// requestError is a request the operator API refuses before it reaches the
// operations.
type requestError struct {
	status int
	kind   string // problem type slug
	detail string
}

func (e *requestError) Error() string { return e.detail }

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, kind: "invalid-request", detail: fmt.Sprintf(format, args...)}
}

var errMediaType = &requestError{status: http.StatusUnsupportedMediaType, kind: "unsupported-media-type",
	detail: "an action's body must be JSON, sent with Content-Type: application/json"}

// problemFor turns an error of a handler, of a middleware or of Echo into
// the problem answered: the operations' sentinels as 404, 409, 400 (the
// error's text, which says which parameter and why) and 502 (a generic
// detail: the cause may name an address), anything else a generic 500.
func problemFor(err error, r *http.Request) api.Problem {
	p := api.Problem{Instance: r.URL.Path}
	var re *requestError
	var he *echo.HTTPError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		p.Status, p.Type, p.Detail = http.StatusServiceUnavailable, "timeout", "the request took too long; try again"
	case errors.As(err, &re):
		p.Status, p.Type, p.Detail = re.status, re.kind, re.detail
	case errors.Is(err, ops.ErrNotFound):
		p.Status, p.Type, p.Detail = http.StatusNotFound, "not-found", err.Error()
	case errors.Is(err, ops.ErrConflict):
		p.Status, p.Type, p.Detail = http.StatusConflict, "conflict", err.Error()
	case errors.Is(err, ops.ErrInvalid):
		p.Status, p.Type, p.Detail = http.StatusBadRequest, "invalid-request", err.Error()
	case errors.Is(err, ops.ErrUpstream):
		p.Status, p.Type, p.Detail = http.StatusBadGateway, "upstream",
			"a dependency (Kafka Connect or Kafka) failed; the cause has been logged"
	case errors.As(err, &he):
		p.Status, p.Type = he.Code, "about:blank"
		switch he.Code {
		case http.StatusNotFound:
			p.Detail = fmt.Sprintf("no resource at %s %s", r.Method, r.URL.Path)
		case http.StatusMethodNotAllowed:
			p.Detail = fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)
		case http.StatusRequestEntityTooLarge:
			p.Detail = "the request body is larger than this server accepts"
		default:
			p.Detail = http.StatusText(he.Code)
		}
	default:
		p.Status, p.Type, p.Detail = http.StatusInternalServerError, "internal", "internal error; it has been logged"
	}
	if p.Type != "about:blank" {
		p.Type = "/problems/" + p.Type
	}
	p.Title = http.StatusText(p.Status)
	return p
}

// errorHandler writes every error as application/problem+json and logs the
// ones that are the server's or a dependency's fault, with their cause.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		r := c.Request()
		p := problemFor(err, r)
		if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
			logger.ErrorContext(r.Context(), "operator request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		body, _ := json.Marshal(p)
		if r.Method == http.MethodHead {
			err = c.NoContent(p.Status)
		} else {
			err = c.Blob(p.Status, api.ProblemContentType, body)
		}
		if err != nil {
			logger.WarnContext(r.Context(), "write error response", "err", err)
		}
	}
}
