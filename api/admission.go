package api

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/api/problem"
)

// admission returns the middleware that bounds the requests in flight.
// At most working requests are worked on at once (zero or less, or more
// than maxInFlight: maxInFlight); up to maxInFlight-working more wait for
// one of them to finish, each at most wait. A request past maxInFlight,
// or one that waited wait, is refused with 503 problem+json
// (/problems/overloaded) and Retry-After: 1 and reaches no handler. So a
// short burst queues briefly, and sustained overload is refused within
// wait rather than left to wait for a database connection until its
// deadline. maxInFlight zero or less: unbounded. The probes and the
// contract (see unlimited) are not counted. With a bound, reg takes the
// gauges http_requests_in_flight (admitted) and http_requests_waiting
// (admitted, waiting to be worked on).
func admission(reg prometheus.Registerer, maxInFlight, working int, wait time.Duration) (echo.MiddlewareFunc, error) {
	if maxInFlight <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }, nil
	}
	if working <= 0 || working > maxInFlight {
		working = maxInFlight
	}
	admitted := make(chan struct{}, maxInFlight)
	workers := make(chan struct{}, working)
	var waiting atomic.Int64
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Subsystem: "http", Name: "requests_in_flight",
			Help: "API requests admitted (worked on or waiting), bounded by API_MAX_IN_FLIGHT."},
			func() float64 { return float64(len(admitted)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Subsystem: "http", Name: "requests_waiting",
			Help: "API requests admitted and waiting, at most API_QUEUE_WAIT, for one worked on to finish."},
			func() float64 { return float64(waiting.Load()) }),
	} {
		if err := reg.Register(g); err != nil {
			return nil, fmt.Errorf("register admission metrics: %w", err)
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if unlimited(c.Path()) {
				return next(c)
			}
			select {
			case admitted <- struct{}{}:
				defer func() { <-admitted }()
			default:
				return overloaded(c)
			}
			select {
			case workers <- struct{}{}:
			default:
				waiting.Add(1)
				ok := waitFor(c, workers, wait)
				waiting.Add(-1)
				if !ok {
					return overloaded(c)
				}
			}
			defer func() { <-workers }()
			return next(c)
		}
	}, nil
}

// waitFor waits at most wait, and no longer than the request, for a slot of
// workers; it reports whether it took one.
func waitFor(c echo.Context, workers chan struct{}, wait time.Duration) bool {
	if wait <= 0 {
		return false
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case workers <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-c.Request().Context().Done():
		return false
	}
}

// overloaded is the refusal of a request past the admission bound.
func overloaded(c echo.Context) error {
	c.Response().Header().Set("Retry-After", "1")
	return &problem.Error{Status: http.StatusServiceUnavailable, Kind: "overloaded",
		Detail: "the server is handling as many requests as it can; retry after 1 s"}
}
