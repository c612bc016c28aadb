package rest_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kit/connecttest"
)

// route is one request of the Kafka Connect REST API; pattern is the route
// as the server registers it.
type route struct {
	method, pattern, path, body string
}

// authRoutes are a request to every route of the server, each of which would
// change something or tell something if it were let through.
func authRoutes(t *testing.T) []route {
	t.Helper()
	config := connecttest.OutboxConfig(t)
	config["heartbeat.interval.ms"] = "1234"
	changed, _ := json.Marshal(config)
	create, _ := json.Marshal(connect.CreateRequest{Name: "intruder", Config: connecttest.OutboxConfig(t)})
	return []route{
		{"GET", "/", "/", ""},
		{"GET", "/connectors", "/connectors?expand=status&expand=info", ""},
		{"POST", "/connectors", "/connectors", string(create)},
		{"GET", "/connectors/:name", "/connectors/outbox", ""},
		{"DELETE", "/connectors/:name", "/connectors/outbox", ""},
		{"GET", "/connectors/:name/config", "/connectors/outbox/config", ""},
		{"PUT", "/connectors/:name/config", "/connectors/outbox/config", string(changed)},
		{"PUT", "/connectors/:name/config", "/connectors/intruder/config", string(changed)},
		{"GET", "/connectors/:name/status", "/connectors/outbox/status", ""},
		{"GET", "/connectors/:name/tasks", "/connectors/outbox/tasks", ""},
		{"GET", "/connectors/:name/tasks/:task/status", "/connectors/outbox/tasks/0/status", ""},
		{"POST", "/connectors/:name/tasks/:task/restart", "/connectors/outbox/tasks/0/restart", ""},
		{"POST", "/connectors/:name/restart", "/connectors/outbox/restart?includeTasks=true", ""},
		{"PUT", "/connectors/:name/pause", "/connectors/outbox/pause", ""},
		{"PUT", "/connectors/:name/resume", "/connectors/outbox/resume", ""},
		{"PUT", "/connectors/:name/stop", "/connectors/outbox/stop", ""},
		{"GET", "/connector-plugins", "/connector-plugins?connectorsOnly=false", ""},
		// Paths and methods the server does not have are refused before routing.
		{"GET", "", "/no/such/path", ""},
		{"PATCH", "", "/connectors/outbox", ""},
		{"GET", "", "/connectors/outbox/config/", ""},
	}
}

// Without the right credentials every route of the API answers 401 with a
// challenge and Kafka Connect's error body, and nothing changes; with them,
// everything works as without authentication.
func TestAuthentication(t *testing.T) {
	const user, password = "admin", "rest-s3cret"
	creds := basicauth.New(basicauth.User{Name: user, Password: password}, basicauth.User{Name: "ops", Password: "other-pass"})
	e := newEnvWith(t, creds, rest.BasicAuth(user, password))
	routes := authRoutes(t)

	// The table covers every route the server has.
	covered := map[string]bool{}
	for _, r := range routes {
		covered[r.method+" "+r.pattern] = true
	}
	for _, r := range e.handler.(*echo.Echo).Routes() {
		if !covered[r.Method+" "+r.Path] {
			t.Errorf("route %s %s is not in the table", r.Method, r.Path)
		}
	}

	// A connector to change, RUNNING, with its task.
	ctx := t.Context()
	if _, _, err := e.client.PutConnectorConfig(ctx, "outbox", connecttest.OutboxConfig(t)); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "outbox", connect.StateRunning, connect.StateRunning)
	task := e.task("outbox")
	before, err := e.client.ConnectorConfig(ctx, "outbox")
	if err != nil {
		t.Fatal(err)
	}

	for _, cred := range []struct {
		name       string
		set        bool
		user, pass string
		header     string
	}{
		{name: "no credentials"},
		{name: "wrong password", set: true, user: user, pass: "guess"},
		{name: "another user's password", set: true, user: user, pass: "other-pass"},
		{name: "unknown user", set: true, user: "root", pass: password},
		{name: "user differs in case", set: true, user: "Admin", pass: password},
		{name: "empty password", set: true, user: user, pass: ""},
		{name: "bearer token", header: "Bearer " + password},
		{name: "basic without a colon", header: "Basic YWRtaW4="},
		{name: "basic not base64", header: "Basic !!not-base64!!"},
	} {
		for _, r := range routes {
			t.Run(fmt.Sprintf("%s/%s %s", cred.name, r.method, r.path), func(t *testing.T) {
				req, err := http.NewRequestWithContext(ctx, r.method, e.url+r.path, strings.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				if r.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if cred.set {
					req.SetBasicAuth(cred.user, cred.pass)
				}
				if cred.header != "" {
					req.Header.Set("Authorization", cred.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body connect.ErrorBody
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					t.Fatalf("status %d, body not Kafka Connect's error: %v", resp.StatusCode, err)
				}
				if resp.StatusCode != http.StatusUnauthorized || body.ErrorCode != http.StatusUnauthorized || body.Message == "" {
					t.Errorf("status %d, body %+v; want 401 with error_code 401", resp.StatusCode, body)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(got), "basic realm=") {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if strings.Contains(body.Message, password) || strings.Contains(body.Message, "other-pass") {
					t.Errorf("the 401 message %q holds a password", body.Message)
				}
			})
		}
	}

	// Nothing changed: the same connectors, config, states and task.
	names, err := e.client.Connectors(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{"outbox"}) {
		t.Errorf("connectors %v, %v; want [outbox]", names, err)
	}
	after, err := e.client.ConnectorConfig(ctx, "outbox")
	if err != nil || !maps.Equal(after, before) {
		t.Errorf("config changed by refused requests:\n%v\nwant\n%v (%v)", after, before, err)
	}
	e.waitStatus(t, "outbox", connect.StateRunning, connect.StateRunning)
	if e.task("outbox") != task {
		t.Error("the task was restarted by a refused request")
	}

	// The right credentials (either user) work on every route.
	other := rest.NewClient(e.url, nil, rest.BasicAuth("ops", "other-pass"))
	if info, err := other.ServerInfo(ctx); err != nil || info.Commit != "abc123" {
		t.Errorf("ServerInfo as ops: %+v, %v", info, err)
	}
	changed := maps.Clone(before)
	changed["heartbeat.interval.ms"] = "1234"
	if _, created, err := e.client.PutConnectorConfig(ctx, "outbox", changed); err != nil || created {
		t.Fatalf("PutConnectorConfig with credentials: created %v, %v", created, err)
	}
	if got, err := e.client.ConnectorConfig(ctx, "outbox"); err != nil || got["heartbeat.interval.ms"] != "1234" {
		t.Errorf("config after the authorized put: %v, %v", got, err)
	}
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"pause", func() error { return e.client.PauseConnector(ctx, "outbox") }},
		{"resume", func() error { return e.client.ResumeConnector(ctx, "outbox") }},
		{"restart task", func() error { return e.client.RestartTask(ctx, "outbox", 0) }},
		{"plugins", func() error { _, err := e.client.ConnectorPlugins(ctx, false); return err }},
		{"expanded list", func() error { _, err := e.client.ConnectorsExpanded(ctx, true, true); return err }},
		{"tasks", func() error { _, err := e.client.ConnectorTasks(ctx, "outbox"); return err }},
		{"task status", func() error { _, err := e.client.TaskStatus(ctx, "outbox", 0); return err }},
		{"info", func() error { _, err := e.client.Connector(ctx, "outbox"); return err }},
		{"stop", func() error { return e.client.StopConnector(ctx, "outbox") }},
		{"delete", func() error { return e.client.DeleteConnector(ctx, "outbox") }},
	} {
		if err := step.do(); err != nil {
			t.Errorf("%s with credentials: %v", step.name, err)
		}
	}

	// The client reports a 401 as an *APIError.
	_, err = rest.NewClient(e.url, nil, rest.BasicAuth(user, "guess")).Connectors(ctx)
	if apiErr, ok := err.(*rest.APIError); !ok || apiErr.StatusCode != http.StatusUnauthorized {
		t.Errorf("Connectors with a wrong password: %v, want a 401 APIError", err)
	}
}

// The client sends the Basic credentials it was given on every request, and
// none without them.
func TestClientSendsCredentials(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		got = append(got, fmt.Sprintf("%s %s %v %s:%s", r.Method, r.URL.Path, ok, user, pass))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	ctx := t.Context()
	c := rest.NewClient(srv.URL, nil, rest.BasicAuth("admin", "pa:ss word"))
	_, _ = c.Connectors(ctx)
	_ = c.PauseConnector(ctx, "outbox")
	_, _, _ = c.PutConnectorConfig(ctx, "outbox", map[string]string{"a": "b"})
	_, _ = rest.NewClient(srv.URL, nil).Connectors(ctx)
	_, _ = rest.NewClient(srv.URL, nil, rest.BasicAuth("", "")).Connectors(ctx)
	want := []string{
		"GET /connectors true admin:pa:ss word",
		"PUT /connectors/outbox/pause true admin:pa:ss word",
		"PUT /connectors/outbox/config true admin:pa:ss word",
		"GET /connectors false :",
		"GET /connectors false :",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests\n%q\nwant\n%q", got, want)
	}
}
