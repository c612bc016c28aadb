package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the HTTP metrics for what a client may choose freely.
const (
	// routeUnmatched is the route of every request no route matched.
	routeUnmatched = "unmatched"
	// methodOther is the method of every request with a method this API
	// does not know.
	methodOther = "OTHER"
)

// knownMethods are the methods the HTTP metrics label by name.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// httpMetrics returns the middleware that counts and times requests in reg
// (http_requests_total, http_request_duration_seconds,
// http_response_size_bytes), labelled only by code (the status written),
// method (methodOther for unknown ones) and route (the route template such
// as /orders/:orderId, routeUnmatched for no route): never by Host, raw path
// or another value a client chooses, so the number of series is bounded by
// the routes.
func httpMetrics(reg prometheus.Registerer) (echo.MiddlewareFunc, error) {
	labels := []string{"code", "method", "route"}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests handled, by status code, method and route template.",
	}, labels)
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP request latencies in seconds, by status code, method and route template.",
		Buckets: prometheus.DefBuckets,
	}, labels)
	size := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "http", Name: "response_size_bytes",
		Help:    "HTTP response body sizes in bytes, by status code, method and route template.",
		Buckets: prometheus.ExponentialBuckets(100, 10, 6),
	}, labels)
	for _, c := range []prometheus.Collector{requests, duration, size} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register HTTP metrics: %w", err)
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			status := c.Response().Status
			if err != nil {
				// The error handler, later, writes this status.
				status = problemFor(err, c.Request()).Status
			}
			method := c.Request().Method
			if !knownMethods[method] {
				method = methodOther
			}
			route := c.Path()
			if route == "" || status == http.StatusNotFound && !isRoute(c) {
				route = routeUnmatched
			}
			values := []string{strconv.Itoa(status), method, route}
			requests.WithLabelValues(values...).Inc()
			duration.WithLabelValues(values...).Observe(time.Since(start).Seconds())
			size.WithLabelValues(values...).Observe(float64(c.Response().Size))
			return err
		}
	}, nil
}

// isRoute reports whether c.Path() is the template of a registered route.
func isRoute(c echo.Context) bool {
	for _, r := range c.Echo().Routes() {
		if r.Path == c.Path() {
			return true
		}
	}
	return false
}
