package engine_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

// The heartbeat runs as pg_logical_emit_message with the configured values
// bound as parameters: a literal that looks like SQL is emitted as text,
// never run, and the heartbeat messages really reach the slot.
func TestHeartbeatIsBoundNotRun(t *testing.T) {
	const content = `x'); CREATE TABLE pwned (); --`
	r := newRig(t, map[string]string{
		"heartbeat.interval.ms":       "100",
		"heartbeat.action.query":      `SELECT pg_logical_emit_message(false, 'hb_test', '` + strings.ReplaceAll(content, "'", "''") + `')`,
		"message.prefix.exclude.list": "hb_test",
	})
	// A second slot, decoded with test_decoding, shows what the heartbeat
	// emits; the engine's own slot consumes its messages.
	observer := r.slot + "_obs"
	if _, err := r.db.Exec(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, observer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eventually.True(t, 30*time.Second, "drop slot "+observer, func() (bool, error) {
			_, err := r.db.Exec(`SELECT pg_drop_replication_slot($1)`, observer)
			return err == nil, err
		})
	})
	r.start(nil)
	want := fmt.Sprintf("message: transactional: 0 prefix: hb_test, sz: %d content:%s", len(content), content)
	eventually.True(t, 30*time.Second, "a heartbeat message on the slot", func() (bool, error) {
		var n int
		err := r.db.QueryRow(`SELECT count(*) FROM pg_logical_slot_peek_changes($1, NULL, NULL) WHERE data = $2`,
			observer, want).Scan(&n)
		return err == nil && n > 0, err
	})
	var pwned bool
	if err := r.db.QueryRow(`SELECT to_regclass('pwned') IS NOT NULL`).Scan(&pwned); err != nil || pwned {
		t.Fatalf("the heartbeat's literal was run as SQL (table exists: %v, %v)", pwned, err)
	}
}

// database.sslmode is honoured on both of the engine's connections: prefer
// falls back to plaintext against the test cluster, which has no TLS, and
// require fails with a trace that says why.
func TestSSLMode(t *testing.T) {
	t.Run("prefer", func(t *testing.T) {
		r := newRig(t, map[string]string{"database.sslmode": "prefer"})
		r.start(nil)
		ids := r.insert("order", "k1", 3)
		r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
	})
	for _, mode := range []string{"require", "verify-ca", "verify-full"} {
		t.Run(mode, func(t *testing.T) {
			r := newRig(t, map[string]string{"database.sslmode": mode, "errors.max.retries": "0"})
			err := runToFailure(t, r)
			if !strings.Contains(err.Error(), "connect to the database: the server does not accept TLS connections") {
				t.Fatalf("error %q does not say the server has no TLS", err)
			}
			r.checkNoSecrets(t, err.Error())
		})
	}
}

// A task that cannot connect fails with an error that names neither the
// password nor the database's address, and carries no Go stack.
func TestConnectErrorsHideTheDatabase(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := fmt.Sprint(free.Addr().(*net.TCPAddr).Port)
	free.Close()
	cases := []struct {
		name      string
		overrides map[string]string
		want      string
	}{
		{"wrong user and password", map[string]string{"database.user": "no_such_role", "database.password": "hunter2-Secret"},
			"connect to the database: "},
		{"nothing listening", map[string]string{"database.port": closedPort, "database.password": "hunter2-Secret"},
			"connect to the database: connection refused"},
		{"wrong password", map[string]string{"database.password": "hunter2-Secret"},
			"connect to the database: authentication failed (SQLSTATE 28P01)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.overrides["errors.max.retries"] = "0"
			r := newRig(t, c.overrides)
			err := runToFailure(t, r)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
			r.checkNoSecrets(t, err.Error())
			for _, leak := range []string{"hunter2", closedPort} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("error %q contains %q", err, leak)
				}
			}
		})
	}
}

// The engine connects with the config's password only: the worker's
// PGPASSWORD (or .pgpass), which a config pointing database.hostname
// elsewhere would otherwise send there, is never used.
func TestWorkerPasswordEnvironmentIsNotUsed(t *testing.T) {
	r := newRig(t, map[string]string{"errors.max.retries": "0"})
	password := r.raw["database.password"]
	if password == "" {
		t.Fatal("the rig's role has no password")
	}
	r.raw["database.password"] = ""
	t.Setenv("PGPASSWORD", password)
	passfile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passfile, []byte("*:*:*:*:"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", passfile)
	err := runToFailure(t, r)
	if !strings.Contains(err.Error(), "connect to the database: ") {
		t.Fatalf("error %q, want a failed connection", err)
	}
	r.checkNoSecrets(t, err.Error())
}

// runToFailure runs an engine that must fail (errors.max.retries=0) and
// returns its error.
func runToFailure(t *testing.T, r *rig) error {
	t.Helper()
	cfg, err := connect.ParseConfig(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New("outbox", cfg, engine.Options{Kafka: kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()}, Logger: testLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = e.Run(ctx)
	if err == nil {
		t.Fatal("the engine did not fail")
	}
	t.Logf("engine error: %v", err)
	return err
}

// checkNoSecrets fails if msg holds the database's address, its connection
// string's fields, or a Go stack.
func (r *rig) checkNoSecrets(t *testing.T, msg string) {
	t.Helper()
	for _, leak := range []string{
		net.JoinHostPort(r.raw["database.hostname"], r.raw["database.port"]), ":" + r.raw["database.port"],
		"host=", "user=", "password", "postgres://", ".go:", "goroutine ",
	} {
		if strings.Contains(msg, leak) {
			t.Fatalf("%q contains %q", msg, leak)
		}
	}
}
