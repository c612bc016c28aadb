package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kit/connecttest"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// fakeTask runs until canceled, or returns what fail sends it.
type fakeTask struct{ fail chan error }

func (f *fakeTask) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-f.fail:
		return err
	}
}

// env is a worker with its REST server and a client of it.
type testEnv struct {
	url     string
	client  *rest.Client
	handler http.Handler // the server's

	mu    sync.Mutex
	tasks map[string]*fakeTask
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with a server that requires creds (nil: none), and a
// client that sends the given options.
func newEnvWith(t *testing.T, creds *basicauth.Credentials, clientOpts ...rest.ClientOption) *testEnv {
	t.Helper()
	db, _ := pgtest.NewDB(t)
	e := &testEnv{tasks: map[string]*fakeTask{}}
	w := worker.New(db, func(name string, _ connect.Config) (worker.Task, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		task := &fakeTask{fail: make(chan error)}
		e.tasks[name] = task
		return task, nil
	}, worker.Options{WorkerID: connecttest.WorkerID, Lookup: connecttest.Lookup})
	runtest.Checked(t, 10*time.Second, w.Run)
	srv := httptest.NewServer(rest.NewServer(w, rest.ServerOptions{
		Commit: "abc123", KafkaClusterID: "cluster-1", MaxBodyBytes: 64 << 10, Credentials: creds,
	}))
	e.handler = srv.Config.Handler
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.client = rest.NewClient(srv.URL, srv.Client(), clientOpts...)
	return e
}

func (e *testEnv) task(name string) *fakeTask {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tasks[name]
}

// call sends one request and returns the status, headers and body.
func (e *testEnv) call(t *testing.T, method, path, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// expect sends a JSON request and checks the status and, unless want is
// empty, that the body is the JSON want (object key order aside).
func (e *testEnv) expect(t *testing.T, method, path, body string, status int, want string) string {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	got, h, b := e.call(t, method, path, ct, body)
	if got != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, b)
	}
	if status == http.StatusNoContent || (status == http.StatusAccepted && want == "") {
		if b != "" {
			t.Fatalf("%s %s: body %q, want none", method, path, b)
		}
		return b
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("%s %s: Content-Type %q", method, path, h.Get("Content-Type"))
	}
	if want != "" {
		jsonEqual(t, b, want)
	}
	return b
}

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body\n%s\nwant\n%s", got, want)
	}
}

// waitStatus polls the status until the connector and its tasks are in the
// given states.
func (e *testEnv) waitStatus(t *testing.T, name string, want ...string) connect.ConnectorStatus {
	t.Helper()
	var st connect.ConnectorStatus
	eventually.True(t, 10*time.Second, fmt.Sprintf("status of %s %v", name, want), func() (bool, error) {
		var err error
		st, err = e.client.ConnectorStatus(t.Context(), name)
		got := []string{st.Connector.State}
		for _, ts := range st.Tasks {
			got = append(got, ts.State)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			err = fmt.Errorf("states %v", got)
		}
		return err == nil, err
	})
	return st
}

// configJSON is the valid config with "name" set, as JSON, and the
// connector's create body.
func configJSON(t *testing.T, name string) (config, create string) {
	t.Helper()
	c := connecttest.OutboxConfig(t)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c["name"] = name
	withName, _ := json.Marshal(c)
	return string(withName), fmt.Sprintf(`{"name":%q,"config":%s}`, name, b)
}

func statusJSON(name, conn string, tasks ...string) string {
	var ts []string
	for i, s := range tasks {
		ts = append(ts, fmt.Sprintf(`{"id":%d,"state":%q,"worker_id":%q}`, i, s, connecttest.WorkerID))
	}
	return fmt.Sprintf(`{"name":%q,"connector":{"state":%q,"worker_id":%q},"tasks":[%s],"type":"source"}`,
		name, conn, connecttest.WorkerID, strings.Join(ts, ","))
}

// Every endpoint, with Kafka Connect's status codes and bodies.
func TestEndpoints(t *testing.T) {
	e := newEnv(t)
	config, create := configJSON(t, "outbox")
	info := fmt.Sprintf(`{"name":"outbox","config":%s,"tasks":[{"connector":"outbox","task":0}],"type":"source"}`, config)
	var taskConfig map[string]string
	_ = json.Unmarshal([]byte(config), &taskConfig)
	taskConfig["task.class"] = worker.TaskClass
	tc, _ := json.Marshal(taskConfig)

	e.expect(t, "GET", "/", "", 200, `{"version":"3.9.0-outboxpay","commit":"abc123","kafka_cluster_id":"cluster-1"}`)
	e.expect(t, "GET", "/connectors", "", 200, `[]`)
	e.expect(t, "GET", "/connectors?expand=status", "", 200, `{}`)

	code, h, body := e.call(t, "POST", "/connectors", "application/json", create)
	if code != 201 || h.Get("Location") != "/connectors/outbox" {
		t.Fatalf("POST /connectors: %d, Location %q, %s", code, h.Get("Location"), body)
	}
	jsonEqual(t, body, info)
	e.expect(t, "POST", "/connectors", create, 409, `{"error_code":409,"message":"Connector outbox already exists"}`)
	e.waitStatus(t, "outbox", "RUNNING", "RUNNING")

	e.expect(t, "GET", "/connectors", "", 200, `["outbox"]`)
	e.expect(t, "GET", "/connectors/outbox", "", 200, info)
	e.expect(t, "GET", "/connectors/outbox/", "", 200, info)
	e.expect(t, "GET", "/connectors/outbox/config", "", 200, config)
	e.expect(t, "GET", "/connectors/outbox/status", "", 200, statusJSON("outbox", "RUNNING", "RUNNING"))
	e.expect(t, "GET", "/connectors/outbox/tasks", "", 200, fmt.Sprintf(`[{"id":{"connector":"outbox","task":0},"config":%s}]`, tc))
	e.expect(t, "GET", "/connectors/outbox/tasks/0/status", "", 200, fmt.Sprintf(`{"id":0,"state":"RUNNING","worker_id":%q}`, connecttest.WorkerID))
	e.expect(t, "GET", "/connectors?expand=status", "", 200,
		fmt.Sprintf(`{"outbox":{"status":%s}}`, statusJSON("outbox", "RUNNING", "RUNNING")))
	e.expect(t, "GET", "/connectors?expand=info", "", 200, fmt.Sprintf(`{"outbox":{"info":%s}}`, info))
	e.expect(t, "GET", "/connectors?expand=status&expand=info", "", 200,
		fmt.Sprintf(`{"outbox":{"info":%s,"status":%s}}`, info, statusJSON("outbox", "RUNNING", "RUNNING")))
	e.expect(t, "GET", "/connectors?expand=nothing", "", 200, `{"outbox":{}}`)

	// PUT config: 200 updating, 201 creating.
	e.expect(t, "PUT", "/connectors/outbox/config", config, 200, info)
	code, h, body = e.call(t, "PUT", "/connectors/second/config", "application/json", string(mustJSON(connecttest.OutboxConfig(t))))
	if code != 201 || h.Get("Location") != "/connectors/second" {
		t.Fatalf("PUT new config: %d %q %s", code, h.Get("Location"), body)
	}
	e.waitStatus(t, "second", "RUNNING", "RUNNING")
	e.expect(t, "DELETE", "/connectors/second", "", 204, "")

	// Restart without flags: 204; with them: 202 and the plan.
	e.expect(t, "POST", "/connectors/outbox/restart", "", 204, "")
	e.expect(t, "POST", "/connectors/outbox/restart?includeTasks=true&onlyFailed=true", "", 202,
		statusJSON("outbox", "RUNNING", "RUNNING"))
	e.expect(t, "POST", "/connectors/outbox/restart?includeTasks=true", "", 202,
		statusJSON("outbox", "RESTARTING", "RESTARTING"))
	e.waitStatus(t, "outbox", "RUNNING", "RUNNING")
	e.expect(t, "POST", "/connectors/outbox/tasks/0/restart", "", 204, "")
	e.waitStatus(t, "outbox", "RUNNING", "RUNNING")

	// A failed task: its trace in the status.
	e.task("outbox").fail <- errors.New("slot outbox_slot is active for another PID")
	e.waitStatus(t, "outbox", "RUNNING", "FAILED")
	e.expect(t, "GET", "/connectors/outbox/tasks/0/status", "", 200,
		fmt.Sprintf(`{"id":0,"state":"FAILED","worker_id":%q,"trace":"slot outbox_slot is active for another PID"}`, connecttest.WorkerID))
	e.expect(t, "POST", "/connectors/outbox/restart?onlyFailed=true&includeTasks=true", "", 202,
		statusJSON("outbox", "RUNNING", "RESTARTING"))
	e.waitStatus(t, "outbox", "RUNNING", "RUNNING")

	e.expect(t, "PUT", "/connectors/outbox/pause", "", 202, "")
	e.waitStatus(t, "outbox", "PAUSED", "PAUSED")
	e.expect(t, "PUT", "/connectors/outbox/resume", "", 202, "")
	e.waitStatus(t, "outbox", "RUNNING", "RUNNING")
	e.expect(t, "PUT", "/connectors/outbox/stop", "", 204, "")
	e.expect(t, "GET", "/connectors/outbox/status", "", 200, statusJSON("outbox", "STOPPED"))
	e.expect(t, "GET", "/connectors/outbox/tasks", "", 200, `[]`)
	e.expect(t, "GET", "/connectors/outbox", "", 200,
		fmt.Sprintf(`{"name":"outbox","config":%s,"tasks":[],"type":"source"}`, config))
	e.expect(t, "PUT", "/connectors/outbox/resume", "", 202, "")
	e.waitStatus(t, "outbox", "RUNNING", "RUNNING")

	e.expect(t, "GET", "/connector-plugins", "", 200,
		`[{"class":"io.debezium.connector.postgresql.PostgresConnector","type":"source","version":"3.9.0-outboxpay"}]`)
	var plugins []rest.PluginInfo
	_ = json.Unmarshal([]byte(e.expect(t, "GET", "/connector-plugins?connectorsOnly=false", "", 200, "")), &plugins)
	if len(plugins) != 4 || plugins[1].Class != connect.EventRouterType || plugins[1].Type != "transformation" {
		t.Fatalf("plugins %+v", plugins)
	}

	e.expect(t, "DELETE", "/connectors/outbox", "", 204, "")
	e.expect(t, "GET", "/connectors", "", 200, `[]`)

	// KIP-980: created stopped.
	_, create = configJSON(t, "stopped")
	create = strings.TrimSuffix(create, "}") + `,"initial_state":"STOPPED"}`
	e.expect(t, "POST", "/connectors", create, 201, "")
	e.expect(t, "GET", "/connectors/stopped/status", "", 200, statusJSON("stopped", "STOPPED"))
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	_, create := configJSON(t, "outbox")
	e.expect(t, "POST", "/connectors", create, 201, "")
	notFound := `{"error_code":404,"message":"Connector nope not found"}`
	valid := string(mustJSON(connecttest.OutboxConfig(t)))

	tests := []struct {
		name         string
		method, path string
		contentType  string
		body         string
		status       int
		want         string // the exact error body, or
		contains     []string
	}{
		{"info of unknown", "GET", "/connectors/nope", "", "", 404, notFound, nil},
		{"config of unknown", "GET", "/connectors/nope/config", "", "", 404, notFound, nil},
		{"status of unknown", "GET", "/connectors/nope/status", "", "", 404, notFound, nil},
		{"tasks of unknown", "GET", "/connectors/nope/tasks", "", "", 404, notFound, nil},
		{"task status of unknown", "GET", "/connectors/nope/tasks/0/status", "", "", 404, notFound, nil},
		{"pause unknown", "PUT", "/connectors/nope/pause", "", "", 404, notFound, nil},
		{"resume unknown", "PUT", "/connectors/nope/resume", "", "", 404, notFound, nil},
		{"stop unknown", "PUT", "/connectors/nope/stop", "", "", 404, notFound, nil},
		{"restart unknown", "POST", "/connectors/nope/restart", "", "", 404, notFound, nil},
		{"restart task of unknown", "POST", "/connectors/nope/tasks/0/restart", "", "", 404, notFound, nil},
		{"delete unknown", "DELETE", "/connectors/nope", "", "", 404, notFound, nil},
		{"unknown task", "GET", "/connectors/outbox/tasks/1/status", "", "", 404,
			`{"error_code":404,"message":"Task outbox-1 not found"}`, nil},
		{"restart unknown task", "POST", "/connectors/outbox/tasks/7/restart", "", "", 404,
			`{"error_code":404,"message":"Task outbox-7 not found"}`, nil},
		{"task id not a number", "GET", "/connectors/outbox/tasks/x/status", "", "", 404, "", []string{"Task outbox-x not found"}},
		{"unknown path", "GET", "/nope", "", "", 404, `{"error_code":404,"message":"HTTP 404 Not Found"}`, nil},
		{"wrong method", "DELETE", "/connectors", "", "", 405, `{"error_code":405,"message":"HTTP 405 Method Not Allowed"}`, nil},
		{"wrong method on a connector", "POST", "/connectors/outbox/pause", "", "", 405, "", []string{"405"}},
		{"malformed JSON", "POST", "/connectors", "application/json", `{"name":"x","config":{`, 400, "", []string{"not valid JSON"}},
		{"unknown field", "POST", "/connectors", "application/json", `{"name":"x","config":{},"extra":1}`, 400, "", []string{`"extra"`}},
		{"field name in another case", "POST", "/connectors", "application/json", `{"NAME":"x","config":{}}`, 400, "",
			[]string{`Unrecognized field "NAME"`, `did you mean "name"`}},
		{"duplicate field", "POST", "/connectors", "application/json", `{"name":"x","name":"y","config":{}}`, 400, "",
			[]string{`Duplicate field "name"`}},
		{"duplicate config key", "POST", "/connectors", "application/json", `{"name":"x","config":{"a":"1","a":"2"}}`, 400, "",
			[]string{`Duplicate field "config.a"`}},
		{"duplicate key in a config update", "PUT", "/connectors/outbox/config", "application/json", `{"name":"outbox","name":"outbox"}`, 400, "",
			[]string{`Duplicate field "name"`}},
		{"two JSON values", "POST", "/connectors", "application/json", `{"name":"x","config":{}} {}`, 400, "", []string{"single JSON value"}},
		{"not JSON content type", "POST", "/connectors", "text/plain", create, 415, `{"error_code":415,"message":"HTTP 415 Unsupported Media Type"}`, nil},
		{"body too large", "POST", "/connectors", "application/json", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "", []string{"413"}},
		{"config value an object", "PUT", "/connectors/x/config", "application/json", `{"a":{}}`, 400, "", []string{`"a"`, "an object"}},
		{"config not an object", "PUT", "/connectors/x/config", "application/json", `["a"]`, 400, "", []string{"JSON object"}},
		{"invalid config", "POST", "/connectors", "application/json",
			`{"name":"bad","config":{"connector.class":"io.confluent.connect.jdbc.JdbcSourceConnector","bogus":"1"}}`, 400, "",
			[]string{"Connector configuration is invalid", "connector.class", "bogus", "database.hostname", "topic.prefix"}},
		{"no name", "POST", "/connectors", "application/json", `{"config":` + valid + `}`, 400, "", []string{"name"}},
		{"Debezium Engine's retry delay", "PUT", "/connectors/outbox/config", "application/json",
			strings.Replace(valid, "{", `{"errors.retry.delay.initial.ms":"300",`, 1), 400, "",
			[]string{"errors.retry.delay.initial.ms: is an option of the Debezium Engine, not of the connector", "retriable.restart.connector.wait.ms"}},
		{"name mismatch", "PUT", "/connectors/outbox/config", "application/json", `{"name":"other"}`, 400, "",
			[]string{"Connector name configuration (other) doesn't match connector name in the URL (outbox)"}},
		{"exists", "POST", "/connectors", "application/json", create, 409, `{"error_code":409,"message":"Connector outbox already exists"}`, nil},
		{"bad initial state", "POST", "/connectors", "application/json", `{"name":"y","config":{},"initial_state":"SLEEPING"}`, 400, "", []string{"initial_state"}},
		{"bad restart flag", "POST", "/connectors/outbox/restart?includeTasks=yes", "", "", 400, "", []string{"includeTasks"}},
	}
	_, _, configBefore := e.call(t, "GET", "/connectors/outbox/config", "", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := e.call(t, tt.method, tt.path, tt.contentType, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, body)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Fatalf("Content-Type %q", h.Get("Content-Type"))
			}
			var eb connect.ErrorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.ErrorCode != tt.status || eb.Message == "" {
				t.Fatalf("error body %s", body)
			}
			if tt.want != "" {
				jsonEqual(t, body, tt.want)
			}
			for _, s := range tt.contains {
				if !strings.Contains(eb.Message, s) {
					t.Fatalf("message %q does not contain %q", eb.Message, s)
				}
			}
		})
	}
	// Nothing of the refused requests was created or changed.
	e.expect(t, "GET", "/connectors", "", 200, `["outbox"]`)
	e.expect(t, "GET", "/connectors/outbox/config", "", 200, configBefore)
}

// Kafka Connect reads numbers and booleans in a config as their text.
func TestConfigValuesCoerced(t *testing.T) {
	e := newEnv(t)
	body := strings.Replace(string(mustJSON(connecttest.OutboxConfig(t))), `"tasks.max":"1"`, `"tasks.max":1`, 1)
	if !strings.Contains(body, `"tasks.max":1`) {
		t.Fatal("test config has no tasks.max")
	}
	e.expect(t, "PUT", "/connectors/outbox/config", body, 201, "")
	config, err := e.client.ConnectorConfig(t.Context(), "outbox")
	if err != nil || config["tasks.max"] != "1" {
		t.Fatalf("config %v, %v", config, err)
	}
}

// The client against the server: every method.
func TestClient(t *testing.T) {
	e := newEnv(t)
	c := e.client
	ctx := t.Context()

	si, err := c.ServerInfo(ctx)
	if err != nil || si.Version != rest.DefaultVersion || si.KafkaClusterID != "cluster-1" || si.Commit != "abc123" {
		t.Fatalf("ServerInfo = %+v, %v", si, err)
	}
	plugins, err := c.ConnectorPlugins(ctx, true)
	if err != nil || len(plugins) != 1 || plugins[0].Class != connect.PostgresConnectorClass || plugins[0].Type != "source" {
		t.Fatalf("ConnectorPlugins = %+v, %v", plugins, err)
	}
	if all, err := c.ConnectorPlugins(ctx, false); err != nil || len(all) != 4 {
		t.Fatalf("ConnectorPlugins(all) = %+v, %v", all, err)
	}

	// A name that needs escaping in paths.
	const name = "orders outbox/1"
	info, err := c.CreateConnector(ctx, name, connecttest.OutboxConfig(t))
	if err != nil || info.Name != name || info.Config["name"] != name || len(info.Tasks) != 1 || info.Type != "source" {
		t.Fatalf("CreateConnector = %+v, %v", info, err)
	}
	e.waitStatus(t, name, "RUNNING", "RUNNING")
	_, err = c.CreateConnector(ctx, name, connecttest.OutboxConfig(t))
	var apiErr *rest.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 409 || apiErr.Message != "Connector orders outbox/1 already exists" {
		t.Fatalf("second create: %v", err)
	}

	if names, err := c.Connectors(ctx); err != nil || !reflect.DeepEqual(names, []string{name}) {
		t.Fatalf("Connectors = %v, %v", names, err)
	}
	expanded, err := c.ConnectorsExpanded(ctx, true, true)
	if err != nil || expanded[name].Info == nil || expanded[name].Status == nil ||
		expanded[name].Status.Connector.State != "RUNNING" || expanded[name].Info.Name != name {
		t.Fatalf("ConnectorsExpanded = %+v, %v", expanded, err)
	}
	if only, err := c.ConnectorsExpanded(ctx, true, false); err != nil || only[name].Info != nil || only[name].Status == nil {
		t.Fatalf("ConnectorsExpanded(status) = %+v, %v", only, err)
	}
	if got, err := c.Connector(ctx, name); err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("Connector = %+v, %v", got, err)
	}
	if config, err := c.ConnectorConfig(ctx, name); err != nil || config["database.password"] != "${env:OUTBOX_DB_PASSWORD}" {
		t.Fatalf("ConnectorConfig = %v, %v", config, err)
	}
	tasks, err := c.ConnectorTasks(ctx, name)
	if err != nil || len(tasks) != 1 || tasks[0].ID != (connect.TaskID{Connector: name, Task: 0}) {
		t.Fatalf("ConnectorTasks = %+v, %v", tasks, err)
	}
	ts, err := c.TaskStatus(ctx, name, 0)
	if err != nil || ts.ID != 0 || ts.State != "RUNNING" || ts.WorkerID != connecttest.WorkerID {
		t.Fatalf("TaskStatus = %+v, %v", ts, err)
	}

	config := connecttest.OutboxConfig(t)
	config["heartbeat.interval.ms"] = "20000"
	if info, created, err := c.PutConnectorConfig(ctx, name, config); err != nil || created || info.Config["heartbeat.interval.ms"] != "20000" {
		t.Fatalf("PutConnectorConfig update = %+v, %v, %v", info, created, err)
	}
	if _, created, err := c.PutConnectorConfig(ctx, "other", connecttest.OutboxConfig(t)); err != nil || !created {
		t.Fatalf("PutConnectorConfig create = %v, %v", created, err)
	}
	if err := c.DeleteConnector(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, name, "RUNNING", "RUNNING")

	if st, err := c.RestartConnector(ctx, name, false, false); err != nil || st != nil {
		t.Fatalf("RestartConnector() = %+v, %v; want no status", st, err)
	}
	st, err := c.RestartConnector(ctx, name, true, false)
	if err != nil || st == nil || st.Connector.State != "RESTARTING" || st.Tasks[0].State != "RESTARTING" {
		t.Fatalf("RestartConnector(includeTasks) = %+v, %v", st, err)
	}
	e.waitStatus(t, name, "RUNNING", "RUNNING")
	if err := c.RestartTask(ctx, name, 0); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, name, "RUNNING", "RUNNING")

	if err := c.PauseConnector(ctx, name); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, name, "PAUSED", "PAUSED")
	if err := c.ResumeConnector(ctx, name); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, name, "RUNNING", "RUNNING")
	if err := c.StopConnector(ctx, name); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, name, "STOPPED")
	if err := c.DeleteConnector(ctx, name); err != nil {
		t.Fatal(err)
	}

	_, err = c.ConnectorStatus(ctx, name)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Message != "Connector orders outbox/1 not found" {
		t.Fatalf("status after delete: %v", err)
	}
	_, err = c.CreateConnector(ctx, "bad", map[string]string{"connector.class": connect.PostgresConnectorClass})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "database.hostname") {
		t.Fatalf("invalid create: %v", err)
	}
}

// Error responses that are not Kafka Connect's JSON (a proxy's) still
// become APIErrors.
func TestClientNonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream connect error", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := rest.NewClient(srv.URL+"/", nil).Connectors(t.Context())
	var apiErr *rest.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || apiErr.Message != "upstream connect error" {
		t.Fatalf("err = %v", err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
