package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// register-connector against the embedded engine's Kafka Connect API, as the
// compose stack runs it against Debezium's.
func TestRegisterConnector(t *testing.T) {
	sys := sharedDev(t)
	client := rest.NewClient(sys.Connect, &http.Client{Timeout: 10 * time.Second}, rest.BasicAuth(sys.User, sys.Password))
	ctx := context.Background()
	shipped, err := loadConnector("")
	if err != nil {
		t.Fatal(err)
	}
	writeConfig := func(change map[string]string) string {
		req := shipped
		req.Config = map[string]string{}
		for k, v := range shipped.Config {
			req.Config[k] = v
		}
		for k, v := range change {
			req.Config[k] = v
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "connector.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	env := func(extra ...string) []string {
		return append([]string{"CONNECT_URL=" + sys.Connect, "CONNECTOR_WAIT=1m",
			"CONNECT_REST_USERNAME=" + sys.User, "CONNECT_REST_PASSWORD=" + sys.Password}, extra...)
	}
	config := func() map[string]string {
		t.Helper()
		c, err := client.ConnectorConfig(ctx, shipped.Name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("unchanged config is left alone", func(t *testing.T) {
		code, stdout, stderr := run(t, env(), "register-connector")
		if code != 0 || !strings.Contains(stdout, "RUNNING") || !strings.Contains(stderr, "connector config unchanged") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})
	t.Run("a changed config is put, then RUNNING", func(t *testing.T) {
		code, stdout, stderr := run(t, env("CONNECTOR_CONFIG="+writeConfig(map[string]string{"heartbeat.interval.ms": "5000"})), "register-connector")
		if code != 0 || !strings.Contains(stderr, "connector config put") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if got := config()["heartbeat.interval.ms"]; got != "5000" {
			t.Errorf("heartbeat.interval.ms = %q after the put", got)
		}
		// Back to the shipped config, for the other tests of the shared system.
		if code, _, stderr := run(t, env(), "register-connector"); code != 0 {
			t.Fatalf("re-register the shipped config: exit %d\n%s", code, stderr)
		}
	})
	t.Run("an invalid config is refused and changes nothing", func(t *testing.T) {
		before := config()
		code, _, stderr := run(t, env("CONNECTOR_CONFIG="+writeConfig(map[string]string{"snapshot.mode": "sometimes"})), "register-connector")
		if code != 1 || !strings.Contains(stderr, "snapshot.mode") {
			t.Fatalf("exit %d, want 1 with an error naming snapshot.mode\n%s", code, stderr)
		}
		if after := config(); after["snapshot.mode"] != before["snapshot.mode"] {
			t.Errorf("snapshot.mode changed from %q to %q", before["snapshot.mode"], after["snapshot.mode"])
		}
	})
	t.Run("wrong or missing credentials are refused and change nothing", func(t *testing.T) {
		before := config()
		changed := writeConfig(map[string]string{"heartbeat.interval.ms": "7000"})
		for _, creds := range [][]string{
			{"CONNECT_REST_USERNAME=" + sys.User, "CONNECT_REST_PASSWORD=wrong-" + sys.Password},
			{"CONNECT_REST_USERNAME=", "CONNECT_REST_PASSWORD="},
		} {
			code, _, stderr := run(t, append([]string{"CONNECT_URL=" + sys.Connect, "CONNECTOR_WAIT=2s",
				"CONNECTOR_CONFIG=" + changed}, creds...), "register-connector")
			if code != 1 || !strings.Contains(stderr, "401") {
				t.Errorf("exit %d, want 1 with the 401\n%s", code, stderr)
			}
			if strings.Contains(stderr, sys.Password) {
				t.Errorf("register-connector printed the password:\n%s", stderr)
			}
		}
		if after := config(); !maps.Equal(after, before) {
			t.Errorf("config changed by refused calls: %v, was %v", after, before)
		}
	})
	t.Run("unreachable Kafka Connect fails after CONNECTOR_WAIT", func(t *testing.T) {
		code, _, stderr := run(t, []string{"CONNECT_URL=http://" + freeAddr(t), "CONNECTOR_WAIT=2s"}, "register-connector")
		if code != 1 || !strings.Contains(stderr, "connection refused") {
			t.Fatalf("exit %d, want 1 with the connection error\n%s", code, stderr)
		}
	})
}

// fakeConnect is a Kafka Connect REST API that holds configs and reports
// every connector it holds RUNNING with one RUNNING task.
func fakeConnect(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	configs := map[string]map[string]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /connectors/{name}/config", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c, ok := configs[r.PathValue("name")]
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(connect.ErrorBody{ErrorCode: http.StatusNotFound, Message: "not found"})
			return
		}
		_ = json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("PUT /connectors/{name}/config", func(w http.ResponseWriter, r *http.Request) {
		var c map[string]string
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		configs[r.PathValue("name")] = c
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"name": r.PathValue("name"), "config": c, "tasks": []any{}})
	})
	mux.HandleFunc("GET /connectors/{name}/status", func(w http.ResponseWriter, r *http.Request) {
		running := connect.StateInfo{State: connect.StateRunning, WorkerID: "fake"}
		_ = json.NewEncoder(w).Encode(connect.ConnectorStatus{Name: r.PathValue("name"), Connector: running,
			Tasks: []connect.TaskStatus{{ID: 0, StateInfo: running}}, Type: "source"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// dev's registration waits for the connector's slot to stream, for
// CONNECTOR_WAIT and no longer (it waited a hard-coded minute before), and
// says what it waited for.
func TestRegisterConnectorWaitsForTheSlotWithinConnectorWait(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectorWait = 2 * time.Second
	db, url := pgtest.NewDB(t) // no replication slot: the connector never streams
	d := testDeps(cfg, db)
	if d.lookup, err = devLookup(url); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = registerConnector(t.Context(), d, fakeConnect(t), db)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "not streaming yet") {
		t.Errorf("registerConnector: %v, want the slot not streaming", err)
	}
	if took < cfg.ConnectorWait || took > cfg.ConnectorWait+10*time.Second {
		t.Errorf("registerConnector gave up after %v, want CONNECTOR_WAIT %v", took, cfg.ConnectorWait)
	}
	// Without a slot to wait for (register-connector), RUNNING is enough.
	if st, err := registerConnector(t.Context(), d, fakeConnect(t), nil); err != nil || st.Connector.State != connect.StateRunning {
		t.Errorf("registerConnector: %v, %v", st, err)
	}
}
