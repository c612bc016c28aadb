package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// admission returns the middleware that bounds the requests in flight to
// maxInFlight (zero or less: unbounded). Past the bound a request is
// refused at once with 503 problem+json (/problems/overloaded) and
// Retry-After: 1, and reaches no handler: it is never queued, so an
// overloaded instance answers in microseconds instead of letting requests
// wait for a database connection until their deadline. The probes and the
// contract (see unlimited) are not counted.
func admission(maxInFlight int) echo.MiddlewareFunc {
	if maxInFlight <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	slots := make(chan struct{}, maxInFlight)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if unlimited(c.Path()) {
				return next(c)
			}
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				return next(c)
			default:
				c.Response().Header().Set("Retry-After", "1")
				return &requestError{status: http.StatusServiceUnavailable, kind: "overloaded",
					detail: "the server is handling as many requests as it can; retry after 1 s"}
			}
		}
	}
}
