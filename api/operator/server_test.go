package operator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// recorder is an in-test Operations: it records each call with its
// arguments and answers err if set, else fixed values.
type recorder struct {
	mu    sync.Mutex
	calls []call
	err   error
}

type call struct {
	method string
	args   []any
}

func (r *recorder) record(method string, args ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{method, args})
	return r.err
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

var (
	at      = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	eventID = uuid.MustParse("0190b6f4-8c3a-7c2e-9a55-3f1d2e4b5a6c")
)

func (r *recorder) Summary(_ context.Context, window time.Duration) (ops.Summary, error) {
	return ops.Summary{At: at, Outbox: ops.OutboxSummary{Rows: map[outbox.Status]int64{outbox.StatusFailed: 2}, Failed: 2},
		Window: ops.Window{Seconds: window.Seconds()}, Unavailable: []string{}}, r.record("Summary", window)
}

func (r *recorder) Series(_ context.Context, span, step time.Duration) (ops.Series, error) {
	return ops.Series{StepSeconds: step.Seconds(), Buckets: []ops.Bucket{{At: at, Completed: 3}}}, r.record("Series", span, step)
}

func (r *recorder) Search(_ context.Context, q ops.Query) ([]ops.Event, error) {
	return []ops.Event{{ID: eventID, Status: outbox.StatusFailed, CreatedAt: at, HandledBy: []string{}}}, r.record("Search", q)
}

func (r *recorder) Life(_ context.Context, id uuid.UUID) (ops.EventLife, error) {
	return ops.EventLife{Event: ops.Event{ID: id, CreatedAt: at}, Payload: json.RawMessage(`{"orderId":1}`)}, r.record("Life", id)
}

func (r *recorder) Retry(_ context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error) {
	return ops.Result{Changed: true, Status: outbox.StatusPublished, AuditID: 7}, r.record("Retry", a, id)
}

func (r *recorder) Park(_ context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error) {
	return ops.Result{Changed: true, AuditID: 8}, r.record("Park", a, id)
}

func (r *recorder) Discard(_ context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error) {
	return ops.Result{Changed: false, AuditID: 9}, r.record("Discard", a, id)
}

func (r *recorder) DLQ(_ context.Context, q ops.DLQQuery) ([]ops.DLQRecord, error) {
	return []ops.DLQRecord{{Topic: "outbox.event.payment.dlq", Offset: 4, Timestamp: at}}, r.record("DLQ", q)
}

func (r *recorder) Redrive(_ context.Context, a ops.Actor, rd ops.Redrive) (ops.Result, error) {
	return ops.Result{Changed: true, Redriven: 2, AuditID: 10}, r.record("Redrive", a, rd)
}

func (r *recorder) Connector(_ context.Context, a ops.Actor, action string) (ops.Result, error) {
	return ops.Result{Changed: true, AuditID: 11}, r.record("Connector", a, action)
}

func (r *recorder) Audit(_ context.Context, q ops.AuditQuery) ([]ops.AuditEntry, error) {
	return nil, r.record("Audit", q)
}

const (
	user     = "alice"
	password = "s3cret-pass"
)

// builtAssets are the page's files with the charts library present.
var builtAssets = fstest.MapFS{
	"index.html":               {Data: []byte("<!doctype html><title>console</title>")},
	"app.js":                   {Data: []byte("console.log(1)")},
	"vendor/uPlot.iife.min.js": {Data: []byte("var uPlot")},
}

func newServer(t *testing.T, assets fstest.MapFS) (*echo.Echo, *recorder) {
	t.Helper()
	rec := &recorder{}
	e, err := operator.New(rec, operator.Config{
		Credentials:    basicauth.New(basicauth.User{Name: user, Password: password}),
		RequestTimeout: 5 * time.Second,
		MaxBodyBytes:   1024,
		Assets:         assets,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, rec
}

type req struct {
	method, target, body string
	header               map[string]string
	noAuth               bool
	user, password       string
}

type resp struct {
	status  int
	header  http.Header
	body    string
	problem problem.Problem
}

func do(t *testing.T, e *echo.Echo, r req) resp {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.target, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if !r.noAuth {
		u, p := user, password
		if r.user != "" || r.password != "" {
			u, p = r.user, r.password
		}
		hr.SetBasicAuth(u, p)
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, hr)
	out := resp{status: w.Code, header: w.Header(), body: w.Body.String()}
	if w.Code >= 400 {
		if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
			t.Errorf("%s %s: %d with Content-Type %q, want %s", r.method, r.target, w.Code, ct, problem.ContentType)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out.problem); err != nil {
			t.Errorf("%s %s: %d body is not a problem: %v: %s", r.method, r.target, w.Code, err, w.Body)
		}
		if out.problem.Status != w.Code || out.problem.Title == "" || out.problem.Type == "" {
			t.Errorf("%s %s: problem %+v does not match status %d", r.method, r.target, out.problem, w.Code)
		}
	}
	return out
}

// everyRoute is one request of each route, with a valid body for actions.
var everyRoute = []req{
	{method: "GET", target: "/ops/summary"},
	{method: "GET", target: "/ops/series"},
	{method: "GET", target: "/ops/events"},
	{method: "GET", target: "/ops/events/" + eventID.String()},
	{method: "POST", target: "/ops/events/" + eventID.String() + "/retry", body: `{"reason":"healed"}`},
	{method: "POST", target: "/ops/events/" + eventID.String() + "/park", body: `{"reason":"later"}`},
	{method: "POST", target: "/ops/events/" + eventID.String() + "/discard", body: `{"reason":"junk"}`},
	{method: "GET", target: "/ops/dlq"},
	{method: "POST", target: "/ops/dlq/redrive", body: `{"topic":"outbox.event.payment.dlq","reason":"fixed"}`},
	{method: "POST", target: "/ops/connector/pause", body: `{"reason":"maintenance"}`},
	{method: "GET", target: "/ops/audit"},
	{method: "GET", target: "/ops/openapi.yaml"},
	{method: "GET", target: "/console"},
	{method: "GET", target: "/console/"},
	{method: "GET", target: "/console/app.js"},
	{method: "GET", target: "/console/vendor/uPlot.iife.min.js"},
	{method: "GET", target: "/no/such/route"},
}

// TestUnauthorized: without credentials, or with wrong ones, every route,
// the page and its files included, is a 401 with the Basic challenge, and
// nothing reaches the operations.
func TestUnauthorized(t *testing.T) {
	e, rec := newServer(t, builtAssets)
	for _, creds := range []struct {
		name string
		req  req
	}{
		{"none", req{noAuth: true}},
		{"wrong password", req{user: user, password: "wrong"}},
		{"unknown user", req{user: "mallory", password: password}},
		{"not basic", req{noAuth: true, header: map[string]string{"Authorization": "Bearer " + password}}},
	} {
		for _, r := range everyRoute {
			t.Run(creds.name+" "+r.method+" "+r.target, func(t *testing.T) {
				r.noAuth, r.user, r.password, r.header = creds.req.noAuth, creds.req.user, creds.req.password, creds.req.header
				got := do(t, e, r)
				if got.status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", got.status, got.body)
				}
				if ch := got.header.Get("WWW-Authenticate"); ch != `Basic realm="outboxpay operator", charset="UTF-8"` {
					t.Errorf("WWW-Authenticate %q", ch)
				}
				if strings.Contains(got.body, password) {
					t.Errorf("the answer holds the password: %s", got.body)
				}
			})
		}
	}
	if calls := rec.all(); len(calls) != 0 {
		t.Errorf("unauthorized requests reached the operations: %+v", calls)
	}
}

// TestAuthorized: with credentials every route answers, and actions reach
// the operations with the user as the actor and the body's reason.
func TestAuthorized(t *testing.T) {
	e, rec := newServer(t, builtAssets)
	for _, r := range everyRoute {
		want := http.StatusOK
		if r.target == "/no/such/route" {
			want = http.StatusNotFound
		}
		if got := do(t, e, r); got.status != want {
			t.Errorf("%s %s: %d, want %d: %s", r.method, r.target, got.status, want, got.body)
		}
	}
	actors := map[string]ops.Actor{}
	for _, c := range rec.all() {
		for _, a := range c.args {
			if a, ok := a.(ops.Actor); ok {
				actors[c.method] = a
			}
		}
	}
	want := map[string]ops.Actor{
		"Retry":     {Name: user, Reason: "healed"},
		"Park":      {Name: user, Reason: "later"},
		"Discard":   {Name: user, Reason: "junk"},
		"Redrive":   {Name: user, Reason: "fixed"},
		"Connector": {Name: user, Reason: "maintenance"},
	}
	for m, a := range want {
		if actors[m] != a {
			t.Errorf("%s got actor %+v, want %+v", m, actors[m], a)
		}
	}
}

// TestArguments: query and path parameters and bodies reach the
// operations as documented, defaults included.
func TestArguments(t *testing.T) {
	p := func(n int32) *int32 { return &n }
	o := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		r    req
		want call
	}{
		{req{method: "GET", target: "/ops/summary"}, call{"Summary", []any{60 * time.Second}}},
		{req{method: "GET", target: "/ops/summary?window=5m"}, call{"Summary", []any{5 * time.Minute}}},
		{req{method: "GET", target: "/ops/series"}, call{"Series", []any{10 * time.Minute, 5 * time.Second}}},
		{req{method: "GET", target: "/ops/series?minutes=3&step=10s"}, call{"Series", []any{3 * time.Minute, 10 * time.Second}}},
		{req{method: "GET", target: "/ops/events?order=42&status=FAILED&older_than=1m&newer_than=1h&limit=5&aggregatetype=order&aggregateid=42&type=OrderPaid&event=" + eventID.String()},
			call{"Search", []any{ops.Query{OrderID: 42, EventID: eventID, AggregateType: "order", AggregateID: "42", Type: "OrderPaid",
				Status: outbox.StatusFailed, OlderThan: time.Minute, NewerThan: time.Hour, Limit: 5}}}},
		{req{method: "GET", target: "/ops/events"}, call{"Search", []any{ops.Query{}}}},
		{req{method: "GET", target: "/ops/events/" + eventID.String()}, call{"Life", []any{eventID}}},
		{req{method: "GET", target: "/ops/dlq?topic=t.dlq&limit=7&event=" + eventID.String()}, call{"DLQ", []any{ops.DLQQuery{Topic: "t.dlq", EventID: eventID, Limit: 7}}}},
		{req{method: "POST", target: "/ops/dlq/redrive", body: `{"topic":"t.dlq","partition":2,"offset":9,"reason":"r"}`},
			call{"Redrive", []any{ops.Actor{Name: user, Reason: "r"}, ops.Redrive{Topic: "t.dlq", Partition: p(2), Offset: o(9)}}}},
		{req{method: "POST", target: "/ops/connector/resume", body: `{"reason":"r"}`}, call{"Connector", []any{ops.Actor{Name: user, Reason: "r"}, ops.ActionConnectorResume}}},
		{req{method: "POST", target: "/ops/connector/restart", body: `{"reason":"r"}`}, call{"Connector", []any{ops.Actor{Name: user, Reason: "r"}, ops.ActionConnectorRestart}}},
		{req{method: "GET", target: "/ops/audit?target=outbox&limit=3"}, call{"Audit", []any{ops.AuditQuery{Target: "outbox", Limit: 3}}}},
	} {
		t.Run(tc.r.method+" "+tc.r.target, func(t *testing.T) {
			e, rec := newServer(t, builtAssets)
			if got := do(t, e, tc.r); got.status != http.StatusOK {
				t.Fatalf("status %d: %s", got.status, got.body)
			}
			calls := rec.all()
			if len(calls) != 1 {
				t.Fatalf("calls %+v, want one", calls)
			}
			if got := fmt.Sprintf("%s %#v", calls[0].method, deref(calls[0].args)); got != fmt.Sprintf("%s %#v", tc.want.method, deref(tc.want.args)) {
				t.Errorf("got  %s\nwant %s %#v", got, tc.want.method, deref(tc.want.args))
			}
		})
	}
}

// deref replaces a Redrive's pointers by their values, for comparison.
func deref(args []any) []any {
	out := slices.Clone(args)
	for i, a := range out {
		if r, ok := a.(ops.Redrive); ok {
			s := r.Topic
			if r.Partition != nil && r.Offset != nil {
				s += fmt.Sprintf(" %d/%d", *r.Partition, *r.Offset)
			}
			out[i] = s
		}
	}
	return out
}

// TestBadRequests: malformed parameters and bodies are 400s (415, 403,
// 413) naming what is wrong, and reach nothing.
func TestBadRequests(t *testing.T) {
	e, rec := newServer(t, builtAssets)
	action := "/ops/events/" + eventID.String() + "/retry"
	for _, tc := range []struct {
		r      req
		status int
		detail string
	}{
		{req{method: "GET", target: "/ops/summary?window=soon"}, 400, "window"},
		{req{method: "GET", target: "/ops/summary?window=-5s"}, 400, "window"},
		{req{method: "GET", target: "/ops/summary?windw=5s"}, 400, `unknown query parameter "windw"`},
		{req{method: "GET", target: "/ops/summary?window=5s&window=6s"}, 400, "2 times"},
		{req{method: "GET", target: "/ops/series?minutes=ten"}, 400, "minutes"},
		{req{method: "GET", target: "/ops/series?step=1"}, 400, "step"},
		{req{method: "GET", target: "/ops/events?order=01"}, 400, "order"},
		{req{method: "GET", target: "/ops/events?order=x"}, 400, "order"},
		{req{method: "GET", target: "/ops/events?event=nope"}, 400, "event"},
		{req{method: "GET", target: "/ops/events?event=" + strings.ReplaceAll(eventID.String(), "-", "")}, 400, "event"},
		{req{method: "GET", target: "/ops/events?limit=0"}, 400, "limit"},
		{req{method: "GET", target: "/ops/events?limit=501"}, 400, "limit"},
		{req{method: "GET", target: "/ops/events?older_than=yesterday"}, 400, "older_than"},
		{req{method: "GET", target: "/ops/events/not-a-uuid"}, 400, "id must be an event id"},
		{req{method: "GET", target: "/ops/dlq?limit=-1"}, 400, "limit"},
		{req{method: "GET", target: "/ops/audit?limit=many"}, 400, "limit"},
		{req{method: "POST", target: "/ops/events/not-a-uuid/retry", body: `{"reason":"r"}`}, 400, "id must be an event id"},
		{req{method: "POST", target: action, body: `{}`}, 400, `"reason" is required`},
		{req{method: "POST", target: action, body: `{"reason":"r","force":true}`}, 400, "force"},
		{req{method: "POST", target: action, body: `{"reason":"r","reason":"s"}`}, 400, "reason"},
		{req{method: "POST", target: action, body: `{"reason":3}`}, 400, "reason"},
		{req{method: "POST", target: action, body: `{"reason":"r"} {}`}, 400, "request body"},
		{req{method: "POST", target: action, body: `{"reason":"` + strings.Repeat("x", 2000) + `"}`}, 413, "larger"},
		{req{method: "POST", target: "/ops/dlq/redrive", body: `{"reason":"r"}`}, 400, `"topic" is required`},
		{req{method: "POST", target: "/ops/dlq/redrive", body: `{"topic":"t","partition":1,"reason":"r"}`}, 400, "go together"},
		{req{method: "POST", target: "/ops/connector/stop", body: `{"reason":"r"}`}, 400, "pause, resume or restart"},
		{req{method: "POST", target: "/ops/connector/pause", body: `{"reason":"r"}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, "application/json"},
		{req{method: "POST", target: "/ops/connector/pause", body: `reason=r`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "application/json"},
		{req{method: "POST", target: "/ops/connector/pause", header: map[string]string{}}, 415, "application/json"},
		{req{method: "POST", target: "/ops/connector/pause", body: `{"reason":"r"}`, header: map[string]string{"Origin": "https://evil.example"}}, 403, "origin"},
		{req{method: "POST", target: "/ops/connector/pause", body: `{"reason":"r"}`, header: map[string]string{"Origin": "null"}}, 403, "origin"},
		{req{method: "POST", target: "/ops/connector/pause", body: `{"reason":"r"}`, header: map[string]string{"Origin": "http://example.com:8088"}}, 403, "origin"},
		{req{method: "DELETE", target: "/ops/audit"}, 405, "not allowed"},
	} {
		t.Run(tc.r.method+" "+tc.r.target+" "+tc.r.body, func(t *testing.T) {
			got := do(t, e, tc.r)
			if got.status != tc.status {
				t.Fatalf("status %d, want %d: %s", got.status, tc.status, got.body)
			}
			if !strings.Contains(got.problem.Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", got.problem.Detail, tc.detail)
			}
		})
	}
	if calls := rec.all(); len(calls) != 0 {
		t.Errorf("refused requests reached the operations: %+v", calls)
	}
	// The request's own origin may act (httptest's host is example.com).
	if got := do(t, e, req{method: "POST", target: "/ops/connector/pause", body: `{"reason":"r"}`,
		header: map[string]string{"Origin": "http://example.com"}}); got.status != http.StatusOK {
		t.Errorf("same-origin action: %d: %s", got.status, got.body)
	}
}

// TestErrors: the operations' sentinels map to their statuses; a 400's
// detail is the error's text; a 502's and a 500's say nothing of the cause.
func TestErrors(t *testing.T) {
	const addr = "10.1.2.3:8083"
	for _, tc := range []struct {
		err    error
		status int
		detail string
	}{
		{fmt.Errorf("event %s: %w", eventID, ops.ErrNotFound), 404, eventID.String()},
		{fmt.Errorf("discard a COMPLETE row: %w", ops.ErrConflict), 409, "COMPLETE"},
		{fmt.Errorf("window: must be between 10s and 1h: %w", ops.ErrInvalid), 400, "window: must be between 10s and 1h"},
		{fmt.Errorf("pause connector: dial tcp %s: connection refused: %w", addr, ops.ErrUpstream), 502, "Kafka Connect"},
		{fmt.Errorf("query outbox: dial tcp %s: connection refused", addr), 500, "internal error"},
		{fmt.Errorf("query outbox: %w", context.DeadlineExceeded), 503, "too long"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			e, rec := newServer(t, builtAssets)
			rec.err = tc.err
			for _, r := range everyRoute[:11] {
				got := do(t, e, r)
				if got.status != tc.status {
					t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.target, got.status, tc.status, got.body)
				}
				if !strings.Contains(got.problem.Detail, tc.detail) || strings.Contains(got.body, addr) {
					t.Errorf("%s %s: detail %q, want one with %q and without the address", r.method, r.target, got.problem.Detail, tc.detail)
				}
			}
		})
	}
}

// TestConsole: the page's files are served at /console with a strict
// content security policy; without the charts library, a 503 says to
// build them.
func TestConsole(t *testing.T) {
	e, _ := newServer(t, builtAssets)
	for target, want := range map[string]string{
		"/console":                          "<title>console</title>",
		"/console/":                         "<title>console</title>",
		"/console/app.js":                   "console.log(1)",
		"/console/vendor/uPlot.iife.min.js": "var uPlot",
	} {
		got := do(t, e, req{method: "GET", target: target})
		if got.status != http.StatusOK || !strings.Contains(got.body, want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", target, got.status, got.body, want)
		}
		if csp := got.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", target, csp)
		}
	}
	for _, target := range []string{"/console/missing.js", "/console/vendor", "/console/../openapi.yaml"} {
		if got := do(t, e, req{method: "GET", target: target}); got.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404: %s", target, got.status, got.body)
		}
	}
	unbuilt := fstest.MapFS{"index.html": builtAssets["index.html"]}
	e, _ = newServer(t, unbuilt)
	for _, target := range []string{"/console", "/console/app.js"} {
		got := do(t, e, req{method: "GET", target: target})
		if got.status != http.StatusServiceUnavailable || got.problem.Detail != "the console's assets were not built: run make build" {
			t.Errorf("GET %s without the built assets: %d %q", target, got.status, got.problem.Detail)
		}
	}
}

// TestOpenAPIRoutes: every operation of openapi.yaml is a route, and every
// /ops route is in openapi.yaml (the document itself and the page aside).
func TestOpenAPIRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(operator.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+echoPath(path))
		}
	}
	e, _ := newServer(t, builtAssets)
	var routed []string
	for _, r := range e.Routes() {
		switch r.Path {
		case "/ops/openapi.yaml", "/console", "/console/*":
			continue
		}
		routed = append(routed, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	if !slices.Equal(documented, routed) {
		t.Errorf("openapi.yaml's operations:\n  %s\nroutes:\n  %s", strings.Join(documented, "\n  "), strings.Join(routed, "\n  "))
	}
	if doc.Components.SecuritySchemes["operatorBasic"] == nil || len(doc.Security) != 1 {
		t.Error("openapi.yaml does not require operatorBasic of every operation")
	}
}

// echoPath is an OpenAPI path as an echo route path: {id} becomes :id.
func echoPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			parts[i] = ":" + strings.Trim(part, "{}")
		}
	}
	return strings.Join(parts, "/")
}

// TestNew: New refuses to run without credentials or operations.
func TestNew(t *testing.T) {
	if _, err := operator.New(&recorder{}, operator.Config{}); err == nil {
		t.Error("New without credentials: no error")
	}
	if _, err := operator.New(nil, operator.Config{Credentials: basicauth.New(basicauth.User{Name: "a", Password: "b"})}); err == nil {
		t.Error("New without operations: no error")
	}
	// The built-in assets are used without Config.Assets.
	e, err := operator.New(&recorder{}, operator.Config{Credentials: basicauth.New(basicauth.User{Name: user, Password: password})})
	if err != nil {
		t.Fatal(err)
	}
	if got := do(t, e, req{method: "GET", target: "/console"}); got.status != http.StatusOK && got.status != http.StatusServiceUnavailable {
		t.Errorf("GET /console with the built-in assets: %d", got.status)
	}
}

// TestRequestLog: one line per request with the user, never the
// credentials.
func TestRequestLog(t *testing.T) {
	var buf bytes.Buffer
	e, err := operator.New(&recorder{}, operator.Config{
		Credentials: basicauth.New(basicauth.User{Name: user, Password: password}),
		Logger:      slog.New(slog.NewTextHandler(&buf, nil)),
		Assets:      builtAssets,
	})
	if err != nil {
		t.Fatal(err)
	}
	do(t, e, req{method: "POST", target: "/ops/connector/pause", body: `{"reason":"r"}`})
	do(t, e, req{method: "GET", target: "/ops/summary", user: user, password: "wrong-" + password})
	log := buf.String()
	if strings.Count(log, "operator request") != 2 || !strings.Contains(log, "user="+user) || !strings.Contains(log, "status=401") {
		t.Errorf("request log:\n%s", log)
	}
	if strings.Contains(log, password) || strings.Contains(log, "Basic ") {
		t.Errorf("the log holds credentials:\n%s", log)
	}
}
