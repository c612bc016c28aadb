// Package api is the HTTP API of the payments service, on Echo: balances,
// products, orders and payments, JSON in and out, errors as RFC 7807
// application/problem+json. Its contract is openapi.yaml beside this file.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// OpenAPI is the OpenAPI 3 document of this API, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Config is what New needs besides the domain service.
type Config struct {
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
	// RequestTimeout bounds the work of one request.
	RequestTimeout time.Duration
	// Ready reports whether the service can serve (the database is reachable).
	Ready func(context.Context) error
	// Registerer takes the HTTP metrics (labelled by code, method and route
	// template only); the API does not serve them: see the process's
	// metrics listener.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Auth authenticates requests; every route but /healthz, /readyz and
	// /openapi.yaml needs a token.
	Auth Auth
	// RateLimit bounds each client's requests (zero: unlimited): a client
	// is the token's user, or the IP of a request without a valid token.
	RateLimit RateLimit
	// MaxInFlight bounds the requests this instance has admitted, worked
	// on or waiting (zero: unbounded); past it a request gets 503
	// /problems/overloaded with Retry-After at once. The probes and
	// /openapi.yaml are not counted.
	MaxInFlight int
	// MaxWorking bounds the admitted requests worked on at once (zero:
	// MaxInFlight); match it to the database pool, since a request holds at
	// most one connection at a time. The others wait for one of them to
	// finish, at most QueueWait (zero: not at all), then get the same 503.
	MaxWorking int
	QueueWait  time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client;
	// empty: the client is the peer.
	TrustedProxies []*net.IPNet
}

// New returns the API's HTTP handler.
func New(svc *shop.Service, cfg Config) (*echo.Echo, error) {
	if err := cfg.Auth.validate(); err != nil {
		return nil, err
	}
	cfg.Logger = logging.OrDiscard(cfg.Logger)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)

	metrics, err := httpMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	admit, err := admission(cfg.Registerer, cfg.MaxInFlight, cfg.MaxWorking, cfg.QueueWait)
	if err != nil {
		return nil, err
	}
	e.Use(
		middleware.Recover(),
		middleware.RequestID(),
		requestLogger(cfg.Logger),
		metrics,
		// Before authentication: a refusal costs no signature check.
		admit,
		authenticate(cfg.Auth),
		rateLimiter(cfg.RateLimit),
		middleware.BodyLimit(fmt.Sprintf("%dB", cfg.MaxBodyBytes)),
		middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Timeout: cfg.RequestTimeout}),
	)

	h := &handlers{shop: svc, ready: cfg.Ready, logger: cfg.Logger}
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.GET("/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", OpenAPI) })

	// Each route's scope; handlers act for the token's user only.
	e.GET("/users/:userId/balance", h.balance, require(ScopeBalanceRead))
	e.POST("/users/:userId/balance/charge", h.charge, require(ScopeBalanceCharge))
	e.GET("/products", h.products, require(ScopeOrders))
	e.GET("/products/:productId", h.product, require(ScopeOrders))
	e.POST("/orders", h.placeOrder, require(ScopeOrders))
	e.GET("/orders/:orderId", h.order, require(ScopeOrders)).Name = "order"
	e.POST("/orders/:orderId/payment", h.pay, require(ScopePayments))
	return e, nil
}

// requestLogger logs one line per request; server errors are logged by the
// error handler with their cause.
func requestLogger(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		Skipper:      func(c echo.Context) bool { return c.Path() == "/healthz" },
		LogMethod:    true,
		LogURI:       true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogError:     true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			status := v.Status
			if v.Error != nil && !c.Response().Committed {
				// The error handler has not answered yet: log what it will.
				status = problemFor(v.Error, c.Request()).Status
			}
			logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "http request",
				slog.String("method", v.Method), slog.String("uri", v.URI), slog.Int("status", status),
				slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID))
			return nil
		},
	})
}
