package operator

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/strictjson"
)

// Defaults of the query parameters, as openapi.yaml documents them; the
// limits' defaults are the operations' (a zero Limit).
const (
	defaultWindow  = 60 * time.Second
	defaultMinutes = 10
	defaultStep    = 5 * time.Second
)

type handlers struct {
	ops Operations
}

// actor is who acts: the authenticated user, with the body's reason.
func actor(c echo.Context, reason string) ops.Actor {
	name, _ := c.Get(actorKey).(string)
	return ops.Actor{Name: name, Reason: reason}
}

func (h *handlers) summary(c echo.Context) error {
	q, err := queryOf(c, "window")
	if err != nil {
		return err
	}
	window, err := q.duration("window", defaultWindow)
	if err != nil {
		return err
	}
	s, err := h.ops.Summary(c.Request().Context(), window)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

func (h *handlers) series(c echo.Context) error {
	q, err := queryOf(c, "minutes", "step")
	if err != nil {
		return err
	}
	minutes, err := q.integer("minutes", defaultMinutes)
	if err != nil {
		return err
	}
	step, err := q.duration("step", defaultStep)
	if err != nil {
		return err
	}
	s, err := h.ops.Series(c.Request().Context(), time.Duration(minutes)*time.Minute, step)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

func (h *handlers) search(c echo.Context) error {
	q, err := queryOf(c, "order", "event", "aggregatetype", "aggregateid", "type", "status", "older_than", "newer_than", "limit")
	if err != nil {
		return err
	}
	var sq ops.Query
	if sq.OrderID, err = q.integer("order", 0); err != nil {
		return err
	}
	if sq.EventID, err = q.uuid("event"); err != nil {
		return err
	}
	sq.AggregateType, sq.AggregateID, sq.Type = q.Get("aggregatetype"), q.Get("aggregateid"), q.Get("type")
	sq.Status = outbox.Status(q.Get("status"))
	if sq.OlderThan, err = q.duration("older_than", 0); err != nil {
		return err
	}
	if sq.NewerThan, err = q.duration("newer_than", 0); err != nil {
		return err
	}
	if sq.Limit, err = q.limit(); err != nil {
		return err
	}
	events, err := h.ops.Search(c.Request().Context(), sq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"events": nonNil(events)})
}

func (h *handlers) life(c echo.Context) error {
	if _, err := queryOf(c); err != nil {
		return err
	}
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	l, err := h.ops.Life(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, l)
}

// reasonBody is the body of the row and connector actions.
type reasonBody struct {
	Reason *string `json:"reason"`
}

// rowAction is the handler of a row's action.
func (h *handlers) rowAction(act func(context.Context, ops.Actor, uuid.UUID) (ops.Result, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := queryOf(c); err != nil {
			return err
		}
		id, err := pathUUID(c)
		if err != nil {
			return err
		}
		var body reasonBody
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
		if body.Reason == nil {
			return problem.BadRequest("field \"reason\" is required")
		}
		res, err := act(c.Request().Context(), actor(c, *body.Reason), id)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, res)
	}
}

func (h *handlers) dlq(c echo.Context) error {
	q, err := queryOf(c, "topic", "event", "limit")
	if err != nil {
		return err
	}
	dq := ops.DLQQuery{Topic: q.Get("topic")}
	if dq.EventID, err = q.uuid("event"); err != nil {
		return err
	}
	if dq.Limit, err = q.limit(); err != nil {
		return err
	}
	records, err := h.ops.DLQ(c.Request().Context(), dq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"records": nonNil(records)})
}

// redriveBody is the body of POST /ops/dlq/redrive.
type redriveBody struct {
	Topic     *string `json:"topic"`
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
	Reason    *string `json:"reason"`
}

func (h *handlers) redrive(c echo.Context) error {
	if _, err := queryOf(c); err != nil {
		return err
	}
	var body redriveBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	switch {
	case body.Topic == nil:
		return problem.BadRequest("field \"topic\" is required")
	case body.Reason == nil:
		return problem.BadRequest("field \"reason\" is required")
	case (body.Partition == nil) != (body.Offset == nil):
		return problem.BadRequest("fields \"partition\" and \"offset\" go together: both name one record, neither every record of the topic")
	}
	res, err := h.ops.Redrive(c.Request().Context(), actor(c, *body.Reason),
		ops.Redrive{Topic: *body.Topic, Partition: body.Partition, Offset: body.Offset})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// connectorActions are the path's actions and the operations' names.
var connectorActions = map[string]string{
	"pause":   ops.ActionConnectorPause,
	"resume":  ops.ActionConnectorResume,
	"restart": ops.ActionConnectorRestart,
}

func (h *handlers) connector(c echo.Context) error {
	if _, err := queryOf(c); err != nil {
		return err
	}
	action, ok := connectorActions[c.Param("action")]
	if !ok {
		return problem.BadRequest("action must be pause, resume or restart, not %q", c.Param("action"))
	}
	var body reasonBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	if body.Reason == nil {
		return problem.BadRequest("field \"reason\" is required")
	}
	res, err := h.ops.Connector(c.Request().Context(), actor(c, *body.Reason), action)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (h *handlers) audit(c echo.Context) error {
	q, err := queryOf(c, "target", "limit")
	if err != nil {
		return err
	}
	aq := ops.AuditQuery{Target: q.Get("target")}
	if aq.Limit, err = q.limit(); err != nil {
		return err
	}
	entries, err := h.ops.Audit(c.Request().Context(), aq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": nonNil(entries)})
}

// nonNil is s, or an empty slice (JSON [] rather than null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// query is a request's query parameters, each known and given at most
// once (see queryOf).
type query struct{ url.Values }

// queryOf returns the request's query, refusing a parameter the route does
// not know or one given twice: a misspelt filter is a 400, not a search
// without it.
func queryOf(c echo.Context, known ...string) (query, error) {
	q, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return query{}, problem.BadRequest("the query string does not parse")
	}
	for name, vs := range q {
		switch {
		case !contains(known, name):
			if len(known) == 0 {
				return query{}, problem.BadRequest("%s takes no query parameters, not %q", c.Request().URL.Path, name)
			}
			return query{}, problem.BadRequest("unknown query parameter %q (this route takes %s)", name, strings.Join(known, ", "))
		case len(vs) > 1:
			return query{}, problem.BadRequest("query parameter %q is given %d times", name, len(vs))
		}
	}
	return query{q}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// duration reads a Go duration (60s, 5m); absent: def.
func (q query) duration(name string, def time.Duration) (time.Duration, error) {
	if !q.Has(name) {
		return def, nil
	}
	d, err := time.ParseDuration(q.Get(name))
	if err != nil || d < 0 {
		return 0, problem.BadRequest("%s must be a non-negative Go duration such as 60s or 5m, not %q", name, q.Get(name))
	}
	return d, nil
}

// integer reads a decimal integer; absent: def.
func (q query) integer(name string, def int64) (int64, error) {
	if !q.Has(name) {
		return def, nil
	}
	s := q.Get(name)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, problem.BadRequest("%s must be an integer in canonical decimal form, not %q", name, s)
	}
	return n, nil
}

// limit reads the limit parameter; absent: 0 (the operations' default).
func (q query) limit() (int, error) {
	n, err := q.integer("limit", 0)
	if err != nil {
		return 0, err
	}
	if q.Has("limit") && (n < 1 || n > 500) {
		return 0, problem.BadRequest("limit must be between 1 and 500, not %d", n)
	}
	return int(n), nil
}

// uuid reads a UUID; absent: uuid.Nil (no filter).
func (q query) uuid(name string) (uuid.UUID, error) {
	if !q.Has(name) {
		return uuid.Nil, nil
	}
	id, err := parseUUID(q.Get(name))
	if err != nil {
		return uuid.Nil, problem.BadRequest("%s must be a UUID such as 0190b6f4-8c3a-7c2e-9a55-3f1d2e4b5a6c, not %q", name, q.Get(name))
	}
	return id, nil
}

// pathUUID reads the event id of the path.
func pathUUID(c echo.Context) (uuid.UUID, error) {
	id, err := parseUUID(c.Param("id"))
	if err != nil {
		return uuid.Nil, problem.BadRequest("id must be an event id (a UUID such as 0190b6f4-8c3a-7c2e-9a55-3f1d2e4b5a6c), not %q", c.Param("id"))
	}
	return id, nil
}

// parseUUID accepts the canonical 36-character form only (uuid.Parse also
// takes braces, urn:uuid: and 32 hex digits).
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, errors.New("not a canonical UUID")
	}
	return uuid.Parse(s)
}

// decodeJSON reads the body as exactly one JSON object into dst
// (strictjson: unknown or repeated fields, wrong types and trailing data
// are refused), each refusal a 400 saying what is wrong.
func decodeJSON(c echo.Context, dst any) error {
	err := strictjson.DecodeRequest(c.Request(), dst)
	var he *echo.HTTPError
	var de *strictjson.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, strictjson.ErrMediaType):
		return errMediaType
	case errors.As(err, &he):
		return he
	case errors.As(err, &de):
		return problem.BadRequest("the request body: %s", de.Error())
	default:
		return problem.BadRequest("the request body could not be read")
	}
}

// console serves the page's files from assets: index.html at /console and
// /console/, the others under /console/. Without the charts library (the
// page was not built) every request is a 503 that says so.
func console(assets fs.FS) echo.HandlerFunc {
	_, err := fs.Stat(assets, vendorProbe)
	built := err == nil
	return func(c echo.Context) error {
		if !built {
			return &problem.Error{Status: http.StatusServiceUnavailable, Kind: "console-not-built",
				Detail: "the console's assets were not built: run make build"}
		}
		name := c.Param("*")
		if name == "" {
			name = "index.html"
		}
		if !fs.ValidPath(name) {
			return echo.ErrNotFound
		}
		if st, err := fs.Stat(assets, name); err != nil || st.IsDir() {
			return echo.ErrNotFound
		}
		hd := c.Response().Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		http.ServeFileFS(c.Response(), c.Request(), assets, name)
		return nil
	}
}
