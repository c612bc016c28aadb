package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/internal/shop"
)

// Problem is an RFC 7807 problem detail, the body of every error response.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ProblemContentType is the media type of error responses.
const ProblemContentType = "application/problem+json"

// requestError is a request the API refuses before it reaches the domain.
type requestError struct {
	status int
	kind   string // problem type slug
	detail string
}

func (e *requestError) Error() string { return e.detail }

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, kind: "invalid-request", detail: fmt.Sprintf(format, args...)}
}

// domainProblems maps the shop's sentinel errors to a status and problem type.
var domainProblems = []struct {
	err    error
	status int
	kind   string
}{
	{shop.ErrInvalid, http.StatusBadRequest, "invalid-request"},
	{shop.ErrNotFound, http.StatusNotFound, "not-found"},
	{shop.ErrInsufficientBalance, http.StatusConflict, "insufficient-balance"},
	{shop.ErrBalanceLimit, http.StatusConflict, "balance-limit"},
	{shop.ErrOutOfStock, http.StatusConflict, "out-of-stock"},
	{shop.ErrOrderNotPayable, http.StatusConflict, "order-not-payable"},
	{shop.ErrIdempotencyKeyReuse, http.StatusUnprocessableEntity, "idempotency-key-reused"},
}

// problemFor turns an error returned by a handler or by Echo into a problem.
func problemFor(err error, r *http.Request) Problem {
	p := Problem{Instance: r.URL.Path}
	var re *requestError
	var he *echo.HTTPError
	switch {
	case timedOut(err):
		// Before HTTPError: Echo's timeout middleware wraps the deadline in
		// one.
		p.Status, p.Type, p.Detail = http.StatusServiceUnavailable, "timeout", "the request took too long; try again"
	case errors.As(err, &re):
		p.Status, p.Type, p.Detail = re.status, re.kind, re.detail
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
			p.Detail = fmt.Sprint(he.Message)
		}
	default:
		p.Status, p.Type, p.Detail = http.StatusInternalServerError, "internal", "internal error; it has been logged"
		for _, d := range domainProblems {
			if errors.Is(err, d.err) {
				p.Status, p.Type, p.Detail = d.status, d.kind, err.Error()
				break
			}
		}
	}
	if p.Type != "about:blank" {
		p.Type = "/problems/" + p.Type
	}
	p.Title = http.StatusText(p.Status)
	return p
}

// timedOut reports whether err is work cut short: the request's deadline,
// its client going away, or the database's own timeouts. Nothing of such
// work remains (shop rolls it back), so it is a 503 the client may retry,
// not a fault of the server.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, shop.ErrTimeout)
}

// errorHandler writes every error as application/problem+json and logs the
// ones that are the server's fault.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problemFor(err, c.Request())
		switch {
		case errors.Is(err, shop.ErrTimeout):
			logger.WarnContext(c.Request().Context(), "database timeout",
				"method", c.Request().Method, "path", c.Request().URL.Path, "err", redact(err))
		case timedOut(err):
			// Overload or a client that gave up, not a fault: no error
			// line per request (the metrics count the 503s).
			logger.DebugContext(c.Request().Context(), "request cut short",
				"method", c.Request().Method, "path", c.Request().URL.Path, "err", redact(err))
		case p.Status >= 500 && !errors.As(err, new(*requestError)):
			// The cause is logged without addresses: see redact.
			logger.ErrorContext(c.Request().Context(), "request failed",
				"method", c.Request().Method, "path", c.Request().URL.Path, "err", redact(err))
		}
		body, _ := json.Marshal(p)
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(p.Status)
		} else {
			err = c.Blob(p.Status, ProblemContentType, body)
		}
		if err != nil {
			logger.WarnContext(c.Request().Context(), "write error response", "err", err)
		}
	}
}
