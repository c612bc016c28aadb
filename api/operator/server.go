// Package operator is the operator API of outboxpay on Echo: the pipeline's
// summary, the outbox's rows and each event's life, and the audited actions
// (internal/ops), with the console page at /console built on them. Its
// contract is openapi.yaml beside this file.
//
// Every route, the page and its files included, needs HTTP Basic
// credentials of Config.Credentials; the audit's actor is the user name.
// Actions are POSTs with a JSON body; one whose Origin header names another
// origin is refused (a page elsewhere cannot act with a browser's
// remembered credentials).
package operator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/ops"
)

// Operations is what the operator API needs of the domain (ops.Service).
type Operations interface {
	Summary(ctx context.Context, window time.Duration) (ops.Summary, error)
	Series(ctx context.Context, span, step time.Duration) (ops.Series, error)
	Search(ctx context.Context, q ops.Query) ([]ops.Event, error)
	Life(ctx context.Context, id uuid.UUID) (ops.EventLife, error)
	Retry(ctx context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error)
	Park(ctx context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error)
	Discard(ctx context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error)
	DLQ(ctx context.Context, q ops.DLQQuery) ([]ops.DLQRecord, error)
	Redrive(ctx context.Context, a ops.Actor, r ops.Redrive) (ops.Result, error)
	Connector(ctx context.Context, a ops.Actor, action string) (ops.Result, error)
	Audit(ctx context.Context, q ops.AuditQuery) ([]ops.AuditEntry, error)
}

// Realm is the HTTP Basic realm of the operator API and the console.
const Realm = "outboxpay operator"

// Config is what New needs besides the operations.
type Config struct {
	// Credentials are the operators allowed in (required).
	Credentials *basicauth.Credentials
	Logger      *slog.Logger
	// RequestTimeout bounds the work of one request (0: none).
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies; larger ones get 413 (0: 64 KiB).
	MaxBodyBytes int64
	// Assets are the console page's files; nil: the built-in ones (Assets).
	Assets fs.FS
}

// New returns the operator API and the console page.
func New(o Operations, cfg Config) (*echo.Echo, error) {
	if o == nil {
		return nil, errors.New("operator API: no operations")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("operator API: no credentials: every route needs an operator's")
	}
	if cfg.Assets == nil {
		cfg.Assets = Assets()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	logger := logging.OrDiscard(cfg.Logger)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(logger)
	e.Use(
		middleware.Recover(),
		middleware.RequestID(),
		requestLogger(logger),
		authenticate(cfg.Credentials),
		guardActions,
		middleware.BodyLimit(fmt.Sprintf("%dB", cfg.MaxBodyBytes)),
	)
	if cfg.RequestTimeout > 0 {
		e.Use(middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Timeout: cfg.RequestTimeout}))
	}

	h := &handlers{ops: o}
	e.GET("/ops/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", OpenAPI) })
	e.GET("/ops/summary", h.summary)
	e.GET("/ops/series", h.series)
	e.GET("/ops/events", h.search)
	e.GET("/ops/events/:id", h.life)
	e.POST("/ops/events/:id/retry", h.rowAction(o.Retry))
	e.POST("/ops/events/:id/park", h.rowAction(o.Park))
	e.POST("/ops/events/:id/discard", h.rowAction(o.Discard))
	e.GET("/ops/dlq", h.dlq)
	e.POST("/ops/dlq/redrive", h.redrive)
	e.POST("/ops/connector/:action", h.connector)
	e.GET("/ops/audit", h.audit)

	page := console(cfg.Assets)
	e.GET("/console", page)
	e.GET("/console/*", page)
	return e, nil
}

// actorKey is where authenticate leaves the operator's user name.
const actorKey = "operator.user"

// authenticate lets in requests with the Basic credentials of one of creds'
// users and answers the others 401 with a challenge.
func authenticate(creds *basicauth.Credentials) echo.MiddlewareFunc {
	challenge := basicauth.Challenge(Realm) + `, charset="UTF-8"`
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			user, pass, ok := c.Request().BasicAuth()
			if !ok || !creds.Verify(user, pass) {
				c.Response().Header().Set("WWW-Authenticate", challenge)
				return &problem.Error{Status: http.StatusUnauthorized, Kind: "unauthorized",
					Detail: "operator credentials (HTTP Basic) are missing or wrong"}
			}
			c.Set(actorKey, user)
			return next(c)
		}
	}
}

// guardActions refuses a POST that is not JSON (415: an HTML form cannot
// send it without the page's own script) or whose Origin header names
// another origin than the request's (403): together they keep pages
// elsewhere from acting with a browser's remembered credentials.
func guardActions(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodPost {
			return next(c)
		}
		if origin := r.Header.Get("Origin"); origin != "" && !strings.EqualFold(origin, c.Scheme()+"://"+r.Host) {
			return &problem.Error{Status: http.StatusForbidden, Kind: "cross-origin",
				Detail: "an action must come from the console's own origin"}
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return errMediaType
		}
		return next(c)
	}
}

// requestLogger logs one line per request: never its headers (the
// Authorization header holds a password).
func requestLogger(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod:    true,
		LogURI:       true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogError:     true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			status := v.Status
			if v.Error != nil && !c.Response().Committed {
				status = problemFor(v.Error, c.Request()).Status
			}
			user, _ := c.Get(actorKey).(string)
			logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "operator request",
				slog.String("method", v.Method), slog.String("uri", v.URI), slog.Int("status", status),
				slog.String("user", user), slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID))
			return nil
		},
	})
}
