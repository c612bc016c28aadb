// Package rest is the Kafka Connect REST API of the embedded CDC engine: a
// server over a worker.Worker with Kafka Connect's paths, status codes and
// bodies, and a client that works against it and against a real Kafka
// Connect alike, so operators and the reconciler manage both engines the
// same way.
package rest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/strictjson"
)

// Defaults of ServerOptions.
const (
	DefaultVersion        = "3.9.0-outboxpay"
	DefaultMaxBodyBytes   = 1 << 20
	DefaultRequestTimeout = 90 * time.Second // Kafka Connect's own
)

// Plugin types, as GET /connector-plugins reports them.
const (
	PluginSource          = "source"
	PluginTransformation  = "transformation"
	PluginConverter       = "converter"
	PluginHeaderConverter = "header_converter"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	Version        string // GET / version; DefaultVersion if empty
	Commit         string // GET / commit
	KafkaClusterID string // GET / kafka_cluster_id
	MaxBodyBytes   int64  // larger request bodies get 413; DefaultMaxBodyBytes if 0
	// RequestTimeout bounds one request's work; DefaultRequestTimeout if 0.
	RequestTimeout time.Duration
	Logger         *slog.Logger // server errors; nil discards
	// Credentials, if not nil, are required on every request (HTTP Basic,
	// as Kafka Connect's BasicAuthSecurityRestExtension does): without them
	// a request gets 401 with WWW-Authenticate and does nothing. Nil
	// serves everybody; the caller decides whether that is acceptable.
	Credentials *basicauth.Credentials
}

// Realm is the realm of the 401 challenge of a server with credentials.
const Realm = "Kafka Connect"

// unauthorizedMessage is the message of a 401: it says nothing about which
// part of the credentials was wrong.
const unauthorizedMessage = "Unauthorized: this Kafka Connect REST API requires HTTP Basic credentials"

// PluginInfo is one element of GET /connector-plugins.
type PluginInfo struct {
	Class   string `json:"class"`
	Type    string `json:"type"`
	Version string `json:"version,omitempty"`
}

// ConnectorExpansion is one connector's entry in GET
// /connectors?expand=status&expand=info: what was asked for.
type ConnectorExpansion struct {
	Info   *connect.ConnectorInfo   `json:"info,omitempty"`
	Status *connect.ConnectorStatus `json:"status,omitempty"`
}

// createRequest is the body of POST /connectors; initial_state is KIP-980's.
type createRequest struct {
	Name         string    `json:"name"`
	Config       configMap `json:"config"`
	InitialState string    `json:"initial_state,omitempty"`
}

// initialStates maps initial_state to the worker's target states.
var initialStates = map[string]worker.TargetState{
	"":        worker.TargetStarted,
	"RUNNING": worker.TargetStarted,
	"PAUSED":  worker.TargetPaused,
	"STOPPED": worker.TargetStopped,
}

// apiError is an error response decided by a handler.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...)}
}

type server struct {
	w       *worker.Worker
	info    connect.ServerInfo
	plugins []PluginInfo
	log     *slog.Logger
}

// NewServer returns the Kafka Connect REST API over w.
func NewServer(w *worker.Worker, opts ServerOptions) http.Handler {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	opts.Logger = logging.OrDiscard(opts.Logger)
	s := &server{
		w:    w,
		info: connect.ServerInfo{Version: opts.Version, Commit: opts.Commit, KafkaClusterID: opts.KafkaClusterID},
		plugins: []PluginInfo{
			{Class: connect.PostgresConnectorClass, Type: PluginSource, Version: opts.Version},
			{Class: connect.EventRouterType, Type: PluginTransformation, Version: opts.Version},
			{Class: connect.StringConverter, Type: PluginConverter, Version: opts.Version},
			{Class: connect.StringConverter, Type: PluginHeaderConverter, Version: opts.Version},
		},
		log: opts.Logger,
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Pre(middleware.RemoveTrailingSlash())
	if opts.Credentials != nil {
		// Pre: before routing, so unknown paths and methods need credentials too.
		creds := opts.Credentials
		basic := middleware.BasicAuthWithConfig(middleware.BasicAuthConfig{
			Realm: Realm,
			Validator: func(user, password string, _ echo.Context) (bool, error) {
				return creds.Verify(user, password), nil
			},
		})
		e.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
			auth := basic(next)
			return func(c echo.Context) error {
				err := auth(c)
				// A Basic header that is not base64 is wrong credentials
				// too: 401 with the challenge, not echo's 400.
				var he *echo.HTTPError
				var corrupt base64.CorruptInputError
				if errors.As(err, &he) && he.Code == http.StatusBadRequest && errors.As(he.Internal, &corrupt) {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, basicauth.Challenge(Realm))
					return echo.ErrUnauthorized
				}
				return err
			}
		})
	}
	e.Use(
		middleware.Recover(),
		middleware.BodyLimit(fmt.Sprintf("%dB", opts.MaxBodyBytes)),
		middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
			Timeout:      opts.RequestTimeout,
			ErrorHandler: func(err error, _ echo.Context) error { return err },
		}),
	)

	e.GET("/", s.serverInfo)
	e.GET("/connectors", s.list)
	e.POST("/connectors", s.create)
	e.GET("/connectors/:name", s.connector)
	e.DELETE("/connectors/:name", s.delete)
	e.GET("/connectors/:name/config", s.config)
	e.PUT("/connectors/:name/config", s.putConfig)
	e.GET("/connectors/:name/status", s.status)
	e.GET("/connectors/:name/tasks", s.tasks)
	e.GET("/connectors/:name/tasks/:task/status", s.taskStatus)
	e.POST("/connectors/:name/tasks/:task/restart", s.restartTask)
	e.POST("/connectors/:name/restart", s.restart)
	e.PUT("/connectors/:name/pause", s.targetState(w.Pause, http.StatusAccepted))
	e.PUT("/connectors/:name/resume", s.targetState(w.Resume, http.StatusAccepted))
	e.PUT("/connectors/:name/stop", s.targetState(w.Stop, http.StatusNoContent))
	e.GET("/connector-plugins", s.connectorPlugins)
	return e
}

func (s *server) serverInfo(c echo.Context) error {
	return c.JSON(http.StatusOK, s.info)
}

// list is GET /connectors: the names, or with any expand parameter the map
// of what was asked for by name (unknown expansions are ignored, and a
// connector deleted meanwhile is left out, as in Kafka Connect).
func (s *server) list(c echo.Context) error {
	names := s.w.Connectors()
	expand, ok := c.QueryParams()["expand"]
	if !ok {
		return c.JSON(http.StatusOK, names)
	}
	out := make(map[string]ConnectorExpansion, len(names))
	for _, name := range names {
		var x ConnectorExpansion
		var err error
		for _, e := range expand {
			switch e {
			case "status":
				var st connect.ConnectorStatus
				if st, err = s.w.Status(name); err == nil {
					x.Status = &st
				}
			case "info":
				var info connect.ConnectorInfo
				if info, err = s.w.Info(name); err == nil {
					x.Info = &info
				}
			}
			if err != nil {
				break
			}
		}
		if errors.Is(err, worker.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		out[name] = x
	}
	return c.JSON(http.StatusOK, out)
}

// create is POST /connectors: 201 with the info and a Location.
func (s *server) create(c echo.Context) error {
	var req createRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	target, ok := initialStates[req.InitialState]
	if !ok {
		return badRequest("initial_state must be RUNNING, PAUSED or STOPPED, not %q", req.InitialState)
	}
	name := strings.TrimSpace(req.Name)
	c.Set("name", name)
	info, err := s.w.CreateInState(c.Request().Context(), name, req.Config, target)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/connectors/"+url.PathEscape(name))
	return c.JSON(http.StatusCreated, info)
}

func (s *server) connector(c echo.Context) error {
	info, err := s.w.Info(connectorName(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

func (s *server) delete(c echo.Context) error {
	if err := s.w.Delete(c.Request().Context(), connectorName(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *server) config(c echo.Context) error {
	config, err := s.w.Config(connectorName(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, config)
}

// putConfig is PUT /connectors/{name}/config: 201 if it created the
// connector, 200 if it updated it, with the info either way.
func (s *server) putConfig(c echo.Context) error {
	var config configMap
	if err := decodeJSON(c, &config); err != nil {
		return err
	}
	name := connectorName(c)
	info, created, err := s.w.PutConfig(c.Request().Context(), name, config)
	if err != nil {
		return err
	}
	if !created {
		return c.JSON(http.StatusOK, info)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/connectors/"+url.PathEscape(name))
	return c.JSON(http.StatusCreated, info)
}

func (s *server) status(c echo.Context) error {
	st, err := s.w.Status(connectorName(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *server) tasks(c echo.Context) error {
	tasks, err := s.w.Tasks(connectorName(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tasks)
}

func (s *server) taskStatus(c echo.Context) error {
	name := connectorName(c)
	id, err := taskID(c)
	if err != nil {
		return err
	}
	st, err := s.w.TaskStatus(name, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *server) restartTask(c echo.Context) error {
	name := connectorName(c)
	id, err := taskID(c)
	if err != nil {
		return err
	}
	if err := s.w.RestartTask(c.Request().Context(), name, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// restart is POST /connectors/{name}/restart: without includeTasks and
// onlyFailed it restarts the connector only and answers 204; with either it
// answers 202 and the status with what it restarts as RESTARTING (KIP-745).
func (s *server) restart(c echo.Context) error {
	name := connectorName(c)
	includeTasks, err := queryBool(c, "includeTasks")
	if err != nil {
		return err
	}
	onlyFailed, err := queryBool(c, "onlyFailed")
	if err != nil {
		return err
	}
	plan, err := s.w.Restart(c.Request().Context(), name, includeTasks, onlyFailed)
	if err != nil {
		return err
	}
	if !includeTasks && !onlyFailed {
		return c.NoContent(http.StatusNoContent)
	}
	return c.JSON(http.StatusAccepted, plan)
}

// targetState handles pause, resume and stop.
func (s *server) targetState(op func(context.Context, string) error, status int) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := op(c.Request().Context(), connectorName(c)); err != nil {
			return err
		}
		return c.NoContent(status)
	}
}

// connectorPlugins lists the connector class, and with connectorsOnly=false
// also the transformation and converters the engine implements.
func (s *server) connectorPlugins(c echo.Context) error {
	connectorsOnly := true
	if v := c.QueryParam("connectorsOnly"); v != "" {
		b, err := queryBool(c, "connectorsOnly")
		if err != nil {
			return err
		}
		connectorsOnly = b
	}
	if connectorsOnly {
		return c.JSON(http.StatusOK, s.plugins[:1])
	}
	return c.JSON(http.StatusOK, s.plugins)
}

// handleError writes every error as Kafka Connect's {"error_code","message"}.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, message := s.classify(err, c)
	if status >= http.StatusInternalServerError {
		s.log.Error("connect rest: request failed", "method", c.Request().Method,
			"path", c.Request().URL.Path, "status", status, "err", err)
	}
	if err := c.JSON(status, connect.ErrorBody{ErrorCode: status, Message: message}); err != nil {
		s.log.Warn("connect rest: write error response", "err", err)
	}
}

func (s *server) classify(err error, c echo.Context) (int, string) {
	var (
		api *apiError
		he  *echo.HTTPError
		ce  connect.ConfigError
	)
	name := connectorName(c)
	switch {
	case errors.As(err, &api):
		return api.status, api.message
	case errors.As(err, &ce):
		return http.StatusBadRequest, ce.Error()
	case errors.Is(err, worker.ErrTaskNotFound):
		return http.StatusNotFound, fmt.Sprintf("Task %s-%s not found", name, c.Param("task"))
	case errors.Is(err, worker.ErrNotFound):
		return http.StatusNotFound, fmt.Sprintf("Connector %s not found", name)
	case errors.Is(err, worker.ErrExists):
		return http.StatusConflict, fmt.Sprintf("Connector %s already exists", name)
	case errors.Is(err, worker.ErrNotRunning):
		return http.StatusServiceUnavailable, "The worker is not running"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusInternalServerError, "Request timed out"
	case errors.As(err, &he) && he.Code == http.StatusUnauthorized:
		return he.Code, unauthorizedMessage
	case errors.As(err, &he):
		return he.Code, fmt.Sprintf("HTTP %d %s", he.Code, http.StatusText(he.Code))
	default:
		return http.StatusInternalServerError, "Internal server error"
	}
}

// connectorName is the name in the path, unescaped, or the name of a
// created connector.
func connectorName(c echo.Context) string {
	if name, ok := c.Get("name").(string); ok {
		return name
	}
	v := c.Param("name")
	// Echo matches the escaped path when it differs from the default
	// encoding, and then leaves parameters escaped.
	if c.Request().URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}

// taskID reads the task id; one that is not a number names no task.
func taskID(c echo.Context) (int, error) {
	id, err := strconv.Atoi(c.Param("task"))
	if err != nil {
		return 0, fmt.Errorf("task id %q: %w", c.Param("task"), worker.ErrTaskNotFound)
	}
	return id, nil
}

// queryBool reads a boolean query parameter; absent or empty is false.
func queryBool(c echo.Context, key string) (bool, error) {
	switch v := c.QueryParam(key); strings.ToLower(v) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, badRequest("query parameter %s must be true or false, not %q", key, v)
	}
}

// decodeJSON reads the request body as exactly one JSON value into dst
// (strictjson.DecodeRequest), refusing other media types, unknown fields
// (field names match exactly, case included), a name repeated in an object
// at any depth (config keys too) and trailing data, each as Kafka Connect
// words its errors.
func decodeJSON(c echo.Context, dst any) error {
	err := strictjson.DecodeRequest(c.Request(), dst)
	var he *echo.HTTPError
	var re *strictjson.ReadError
	var de *strictjson.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, strictjson.ErrMediaType):
		return echo.NewHTTPError(http.StatusUnsupportedMediaType)
	case errors.As(err, &he):
		return he
	case errors.As(err, &re):
		return badRequest("Request body could not be read")
	case errors.As(err, &de):
		return jsonError(de)
	default:
		return badRequest("Request body is not valid JSON: %v", err)
	}
}

// jsonError words a refused JSON body as Kafka Connect's message.
func jsonError(de *strictjson.DecodeError) error {
	var value *valueError
	switch de.Kind {
	case strictjson.Member:
		me := de.Member
		switch {
		case me.Reason == strictjson.Duplicate:
			return badRequest("Duplicate field %q", me.Path)
		case me.Want != "":
			return badRequest("Unrecognized field %q (field names are case-sensitive: did you mean %q?)", me.Path, me.Want)
		default:
			return badRequest("Unrecognized field %q", me.Path)
		}
	case strictjson.Empty:
		return badRequest("Request body is empty; it must be a JSON object")
	case strictjson.Truncated:
		return badRequest("Request body is not valid JSON: it ends too early")
	case strictjson.Syntax:
		return badRequest("Request body is not valid JSON (at byte %d): %v", de.Offset, de.Err)
	case strictjson.Type:
		if de.Field == "" {
			return badRequest("Request body must be a JSON object, not %s", de.Value)
		}
		return badRequest("Field %q must not be %s", de.Field, de.Value)
	case strictjson.UnknownField:
		return badRequest("Unrecognized field %s", de.Field)
	case strictjson.Trailing:
		return badRequest("Request body must hold a single JSON value and nothing after it")
	}
	if errors.As(de.Err, &value) {
		return badRequest("%v", value)
	}
	return badRequest("Request body is not valid JSON: %v", de.Err)
}

// configMap is a connector config as Kafka Connect reads one: string
// values, and numbers and booleans taken as their JSON text, as Jackson
// coerces them (so "tasks.max": 1 is "1"). Other values are refused, naming
// the key.
type configMap map[string]string

// valueError is a config value that is not a string, number or boolean.
type valueError struct{ key, kind string }

func (e *valueError) Error() string {
	return fmt.Sprintf("Config value of %q must be a string, not %s", e.key, e.kind)
}

func (m *configMap) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	out := make(configMap, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			out[k] = v
		case json.Number:
			out[k] = v.String()
		case bool:
			out[k] = strconv.FormatBool(v)
		case nil:
			return &valueError{key: k, kind: "null"}
		case []any:
			return &valueError{key: k, kind: "an array"}
		default:
			return &valueError{key: k, kind: "an object"}
		}
	}
	*m = out
	return nil
}
