package rest_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/connecttest"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

// engineEnv is a worker whose tasks are real CDC engines on a test
// database, behind the REST API, with everything it logs kept.
type engineEnv struct {
	url    string
	client *rest.Client
	db     *sql.DB
	vars   map[string]string // what ${env:...} resolves to: the test database's OUTBOX_DB_*, HOME, PATH
	logs   *logtest.Buffer
}

func newEngineEnv(t *testing.T, factory worker.TaskFactory) *engineEnv {
	t.Helper()
	db, dbURL := pgtest.NewDB(t)
	vars, err := connect.DatabaseEnv(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	vars["HOME"], vars["PATH"] = "/home/secret-home", "/opt/secret-path/bin"
	logger, logs := logtest.New()
	e := &engineEnv{db: db, vars: vars, logs: logs}
	if factory == nil {
		factory = func(name string, cfg connect.Config) (worker.Task, error) {
			// Kafka is never reached: these engines fail or are refused before.
			return engine.New(name, cfg, engine.Options{Kafka: kafkaclient.Config{Bootstrap: "127.0.0.1:1"}, Logger: logger}), nil
		}
	}
	w := worker.New(db, factory, worker.Options{
		WorkerID: connecttest.WorkerID, Logger: logger,
		Lookup: func(name string) (string, bool) { v, ok := vars[name]; return v, ok },
	})
	runtest.Checked(t, time.Minute, w.Run)
	srv := httptest.NewServer(rest.NewServer(w, rest.ServerOptions{Logger: logger}))
	t.Cleanup(srv.Close)
	e.url, e.client = srv.URL, rest.NewClient(srv.URL, srv.Client())
	return e
}

// put sends PUT /connectors/{name}/config and returns the status and the
// error message, if any.
func (e *engineEnv) put(t *testing.T, name string, config map[string]string) (int, string) {
	t.Helper()
	body, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, e.url+"/connectors/"+name+"/config", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb connect.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Message
}

func (e *engineEnv) storedConnectors(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(`SELECT count(*) FROM connect_connectors`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkNoLeak fails if s holds a value resolved from the environment, the
// database's address or a password.
func (e *engineEnv) checkNoLeak(t *testing.T, what, s string, extra ...string) {
	t.Helper()
	leaks := append([]string{
		e.vars["HOME"], e.vars["PATH"], "secret-home", "secret-path",
		net.JoinHostPort(e.vars["OUTBOX_DB_HOST"], e.vars["OUTBOX_DB_PORT"]), ":" + e.vars["OUTBOX_DB_PORT"],
		"goroutine ", ".go:",
	}, extra...)
	for _, leak := range leaks {
		if strings.Contains(s, leak) {
			t.Errorf("%s contains %q:\n%s", what, leak, s)
		}
	}
}

// A heartbeat.action.query that is anything but the heartbeat is a 400
// naming the key; nothing is stored and nothing runs.
func TestConfigWithArbitrarySQLIsRefused(t *testing.T) {
	e := newEngineEnv(t, nil)
	marker := filepath.Join(t.TempDir(), "pwned")
	queries := []string{
		`DO $$ BEGIN CREATE TABLE pwned (); UPDATE users SET balance = balance + 1000000; ` +
			`COPY (SELECT 1) TO PROGRAM 'id > ` + marker + `'; END $$`,
		`SELECT 1; COPY (SELECT 1) TO PROGRAM 'id > ` + marker + `'`,
		`SELECT pg_logical_emit_message(false, 'heartbeat', now()::varchar); CREATE TABLE pwned ()`,
		`SELECT pg_logical_emit_message(false, 'hb', 'x'); CREATE TABLE pwned (); --')`,
		`SELECT pg_logical_emit_message(false, 'hb', (SELECT count(*) FROM users)::text)`,
		`SELECT set_config('log_statement', 'all', false)`,
		`CREATE TABLE pwned ()`,
	}
	for _, q := range queries {
		config := connecttest.OutboxConfig(t)
		config["heartbeat.interval.ms"] = "100"
		config["heartbeat.action.query"] = q
		status, msg := e.put(t, "evil", config)
		if status != http.StatusBadRequest || !strings.Contains(msg, "heartbeat.action.query") {
			t.Fatalf("PUT with %q: %d %q, want 400 naming heartbeat.action.query", q, status, msg)
		}
		if strings.Contains(msg, "pwned") || strings.Contains(msg, "COPY") {
			t.Errorf("the message echoes the query: %q", msg)
		}
		if _, err := e.client.CreateConnector(t.Context(), "evil", config); err == nil {
			t.Fatalf("POST with %q accepted", q)
		}
	}
	if n := e.storedConnectors(t); n != 0 {
		t.Fatalf("%d connectors stored", n)
	}
	var apiErr *rest.APIError
	if _, err := e.client.Connector(t.Context(), "evil"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Fatalf("GET the refused connector: %v, want 404", err)
	}
	var pwned bool
	if err := e.db.QueryRow(`SELECT to_regclass('pwned') IS NOT NULL`).Scan(&pwned); err != nil || pwned {
		t.Fatalf("the SQL ran: table pwned exists %v (%v)", pwned, err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the SQL ran: %s exists (%v)", marker, err)
	}
}

// ${env:NAME} outside the allow-list is a 400 that says the same whether the
// variable is set or not and never shows its value; a validation error never
// shows a value resolved from the environment.
func TestEnvReferencesOutsideTheAllowlist(t *testing.T) {
	e := newEngineEnv(t, nil)
	message := func(name string) string {
		config := connecttest.OutboxConfig(t)
		config["database.password"] = "${env:" + name + "}"
		status, msg := e.put(t, "outbox", config)
		if status != http.StatusBadRequest || !strings.Contains(msg, "database.password") {
			t.Fatalf("${env:%s}: %d %q, want 400 naming database.password", name, status, msg)
		}
		e.checkNoLeak(t, "the answer", msg)
		return strings.ReplaceAll(msg, name, "NAME")
	}
	home, path, unset := message("HOME"), message("PATH"), message("NOT_SET_ANYWHERE")
	if home != unset || path != unset {
		t.Fatalf("answers differ for set and unset names:\n%s\n%s\n%s", home, path, unset)
	}

	config := connecttest.OutboxConfig(t)
	config["database.port"] = "${env:OUTBOX_DB_HOST}"
	config["slot.name"] = "${env:OUTBOX_DB_HOST}"
	status, msg := e.put(t, "outbox", config)
	if status != http.StatusBadRequest || strings.Contains(msg, e.vars["OUTBOX_DB_HOST"]) {
		t.Fatalf("%d %q: want a 400 without the resolved host", status, msg)
	}
	if n := e.storedConnectors(t); n != 0 {
		t.Fatalf("%d connectors stored", n)
	}
	e.checkNoLeak(t, "the log", e.logs.String())
}

// A literal password is shown as [hidden] wherever the API returns the
// config; a reference to the environment is shown as written.
func TestLiteralPasswordIsHidden(t *testing.T) {
	const password = "hunter2-Secret"
	e := newEngineEnv(t, func(name string, cfg connect.Config) (worker.Task, error) {
		return &fakeTask{fail: make(chan error)}, nil
	})
	config := connecttest.OutboxConfig(t)
	config["database.password"] = password
	info, _, err := e.client.PutConnectorConfig(t.Context(), "outbox", config)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config["database.password"] != worker.HiddenPassword {
		t.Errorf("PUT answer password %q", info.Config["database.password"])
	}
	for _, path := range []string{"/connectors/outbox/config", "/connectors/outbox", "/connectors/outbox/tasks",
		"/connectors?expand=info&expand=status", "/connectors/outbox/status"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(b.String(), password) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b.String())
		}
	}
	if got, err := e.client.ConnectorConfig(t.Context(), "outbox"); err != nil || got["database.password"] != worker.HiddenPassword {
		t.Errorf("GET config password %q (%v)", got["database.password"], err)
	}
	var stored []byte
	if err := e.db.QueryRow(`SELECT config FROM connect_connectors WHERE name = 'outbox'`).Scan(&stored); err != nil ||
		!strings.Contains(string(stored), password) {
		t.Errorf("the stored config must keep the password to connect (%v)", err)
	}

	config["database.password"] = "${env:OUTBOX_DB_PASSWORD}"
	if _, _, err := e.client.PutConnectorConfig(t.Context(), "outbox", config); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.client.ConnectorConfig(t.Context(), "outbox"); got["database.password"] != "${env:OUTBOX_DB_PASSWORD}" {
		t.Errorf("a reference is shown as %q", got["database.password"])
	}
	if strings.Contains(e.logs.String(), password) {
		t.Errorf("the log holds the password:\n%s", e.logs.String())
	}
}

// A task that cannot log in fails with a trace that holds neither the
// password nor the database's address, and no Go stack.
func TestFailedTaskTraceHidesTheDatabase(t *testing.T) {
	const password = "hunter2-Secret"
	e := newEngineEnv(t, nil)
	config := connecttest.OutboxConfig(t)
	config["database.user"] = "no_such_role"
	config["database.password"] = password
	config["errors.max.retries"] = "0"
	if _, _, err := e.client.PutConnectorConfig(t.Context(), "outbox", config); err != nil {
		t.Fatal(err)
	}
	var st connect.ConnectorStatus
	eventually.True(t, 30*time.Second, "the task FAILED", func() (bool, error) {
		var err error
		st, err = e.client.ConnectorStatus(t.Context(), "outbox")
		return err == nil && len(st.Tasks) == 1 && st.Tasks[0].State == connect.StateFailed, err
	})
	trace := st.Tasks[0].Trace
	t.Logf("trace: %s", trace)
	if !strings.Contains(trace, "connect to the database") {
		t.Errorf("trace %q does not say what failed", trace)
	}
	e.checkNoLeak(t, "the trace", trace, password, "host=", "user=", "postgres://")
	e.checkNoLeak(t, "the log", e.logs.String(), password, "postgres://")
}
