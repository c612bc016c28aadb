// Package problem is the error shape of outboxpay's HTTP APIs (the payments
// API and the operator API): RFC 7807 problem details, the refusals a
// handler or a middleware makes before the domain, and the mapping of a
// domain's sentinel errors to statuses.
package problem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Problem is an RFC 7807 problem detail, the body of every error response.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ContentType is the media type of error responses.
const ContentType = "application/problem+json"

// Error is a request refused before it reaches the domain: its status,
// its problem type's slug (the type is /problems/<Kind>) and its detail.
type Error struct {
	Status int
	Kind   string
	Detail string
}

func (e *Error) Error() string { return e.Detail }

// BadRequest is a 400 invalid-request refusal whose detail says what is
// wrong with the request.
func BadRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Kind: "invalid-request", Detail: fmt.Sprintf(format, args...)}
}

// Sentinel maps a domain's sentinel error (errors.Is) to a status and a
// problem type. The detail is the error's text, which names what was wrong,
// unless Detail is set: then that, for errors whose text may hold what an
// answer must not (an internal address).
type Sentinel struct {
	Err    error
	Status int
	Kind   string
	Detail string
}

// For is the problem answered for err, an error of a handler, a middleware
// or Echo, on request r: 503 timeout when timedOut(err) (nil: when err is
// the context's deadline or cancellation), an Error as it says, the first
// of sentinels that err is, Echo's HTTPErrors with a detail of their own,
// and anything else a 500 whose detail says nothing of the cause.
func For(err error, r *http.Request, sentinels []Sentinel, timedOut func(error) bool) Problem {
	if timedOut == nil {
		timedOut = ContextDone
	}
	p := Problem{Instance: r.URL.Path}
	var re *Error
	var he *echo.HTTPError
	switch {
	case timedOut(err):
		// Before HTTPError: Echo's timeout middleware wraps the deadline in
		// one.
		p.Status, p.Type, p.Detail = http.StatusServiceUnavailable, "timeout", "the request took too long; try again"
	case errors.As(err, &re):
		p.Status, p.Type, p.Detail = re.Status, re.Kind, re.Detail
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
			if m, ok := he.Message.(string); ok && m != "" {
				p.Detail = m
			}
		}
	default:
		p.Status, p.Type, p.Detail = http.StatusInternalServerError, "internal", "internal error; it has been logged"
		for _, s := range sentinels {
			if errors.Is(err, s.Err) {
				p.Status, p.Type, p.Detail = s.Status, s.Kind, s.Detail
				if p.Detail == "" {
					p.Detail = err.Error()
				}
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

// ContextDone reports whether err is the request's context ending: its
// deadline, or its client going away.
func ContextDone(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Write answers p as application/problem+json (a HEAD request gets the
// status alone).
func Write(c echo.Context, p Problem) error {
	if c.Request().Method == http.MethodHead {
		return c.NoContent(p.Status)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode problem: %w", err)
	}
	return c.Blob(p.Status, ContentType, body)
}
