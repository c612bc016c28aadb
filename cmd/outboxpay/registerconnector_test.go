package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect/rest"
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
