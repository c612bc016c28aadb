package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

func TestParseOps(t *testing.T) {
	id := uuid.MustParse("0190b6f4-8c3a-7c2e-9a55-3f1d2e4b5a6c")
	p, o := int32(2), int64(17)
	for _, tc := range []struct {
		args []string
		want opsCall // compared by its %+v, pointers dereferenced
		err  string
	}{
		{args: []string{"summary"}, want: opsCall{name: "summary"}},
		{args: []string{"summary", "--window", "5m"}, want: opsCall{name: "summary", window: 5 * time.Minute}},
		{args: []string{"series", "--minutes", "3", "--step", "10s"}, want: opsCall{name: "series", minutes: 3, step: 10 * time.Second}},
		{args: []string{"events", "--order", "42", "--status", "failed", "--older-than", "1m", "--limit", "5", "--event", id.String()},
			want: opsCall{name: "events", query: ops.Query{OrderID: 42, EventID: id, Status: outbox.StatusFailed, OlderThan: time.Minute, Limit: 5}}},
		{args: []string{"event", id.String()}, want: opsCall{name: "event", id: id}},
		{args: []string{"retry", id.String(), "--reason", "platform healed"}, want: opsCall{name: "retry", id: id, reason: "platform healed"}},
		{args: []string{"park", "--reason", "later", id.String()}, want: opsCall{name: "park", id: id, reason: "later"}},
		{args: []string{"discard", id.String(), "--reason=junk"}, want: opsCall{name: "discard", id: id, reason: "junk"}},
		{args: []string{"dlq", "--topic", "outbox.event.payment.dlq"}, want: opsCall{name: "dlq", dlq: ops.DLQQuery{Topic: "outbox.event.payment.dlq"}}},
		{args: []string{"redrive", "--topic", "t.dlq", "--reason", "fixed"}, want: opsCall{name: "redrive", reason: "fixed", redrive: ops.Redrive{Topic: "t.dlq"}}},
		{args: []string{"redrive", "--topic", "t.dlq", "--partition", "2", "--offset", "17", "--reason", "fixed"},
			want: opsCall{name: "redrive", reason: "fixed", redrive: ops.Redrive{Topic: "t.dlq", Partition: &p, Offset: &o}}},
		{args: []string{"connector", "pause", "--reason", "maintenance"}, want: opsCall{name: "connector", action: "pause", reason: "maintenance"}},
		{args: []string{"audit", "--target", id.String(), "--limit", "3"}, want: opsCall{name: "audit", audit: ops.AuditQuery{Target: id.String(), Limit: 3}}},

		{args: nil, err: "name a subcommand"},
		{args: []string{"reset"}, err: `unknown subcommand "reset"`},
		{args: []string{"summary", "--window", "soon"}, err: "window"},
		{args: []string{"summary", "extra"}, err: "takes 0 argument"},
		{args: []string{"event"}, err: "takes 1 argument"},
		{args: []string{"event", "42"}, err: "not an event id"},
		{args: []string{"retry", id.String()}, err: "--reason is required"},
		{args: []string{"retry", id.String(), "--reason", "  "}, err: "--reason is required"},
		{args: []string{"retry", id.String(), "--password", "x", "--reason", "r"}, err: "password"},
		{args: []string{"events", "--event", "nope"}, err: "not an event id"},
		{args: []string{"events", "--order", "x"}, err: "order"},
		{args: []string{"redrive", "--reason", "r"}, err: "--topic is required"},
		{args: []string{"redrive", "--topic", "t", "--partition", "1", "--reason", "r"}, err: "go together"},
		{args: []string{"connector", "stop", "--reason", "r"}, err: "pause, resume or restart"},
		{args: []string{"connector", "--reason", "r"}, err: "takes 1 argument"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, err := parseOps(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, w := describeCall(got), describeCall(tc.want); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

func describeCall(c opsCall) string {
	var record string
	if c.redrive.Partition != nil {
		record = fmt.Sprintf("record %d/%d", *c.redrive.Partition, *c.redrive.Offset)
	}
	c.redrive.Partition, c.redrive.Offset = nil, nil
	return fmt.Sprintf("%+v %s", c, record)
}

// consoleOps is an in-test operator.Operations: Retry of a known event and
// Summary answer; the other methods are not called by these tests (a call
// would panic, which the API answers 500).
type consoleOps struct {
	operator.Operations
	mu     sync.Mutex
	actors []ops.Actor
	known  uuid.UUID
}

func (o *consoleOps) Summary(_ context.Context, window time.Duration) (ops.Summary, error) {
	return ops.Summary{Window: ops.Window{Seconds: window.Seconds()}, Unavailable: []string{}}, nil
}

func (o *consoleOps) Retry(_ context.Context, a ops.Actor, id uuid.UUID) (ops.Result, error) {
	if id != o.known {
		return ops.Result{}, fmt.Errorf("event %s: %w", id, ops.ErrNotFound)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.actors = append(o.actors, a)
	return ops.Result{Changed: true, Status: outbox.StatusPublished, AuditID: 1}, nil
}

// startConsole serves the console (consoleHandler) on a free port with a
// credentials file of the user ops and password pw, until the test ends.
func startConsole(t *testing.T, o operator.Operations, pw string) (string, deps) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.properties")
	if err := basicauth.WriteFile(path, basicauth.User{Name: "ops", Password: pw}); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConsoleCredentialsFile = path
	d := newDeps(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveConsole(ctx, d, ln, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveConsole: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), d
}

// TestRunOps: `outboxpay ops` against the console: JSON out and status 0
// on success; status 1 and the problem's detail on stderr on an error
// answer; status 2 without credentials.
func TestRunOps(t *testing.T) {
	id := uuid.New()
	o := &consoleOps{known: id}
	url, d := startConsole(t, o, "pw-0123456789")
	cfg := d.cfg
	cfg.ConsoleURL, cfg.ConsoleUsername, cfg.ConsolePassword = url, "ops", "pw-0123456789"
	run := func(cfg config, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := runOps(context.Background(), cfg, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := run(cfg, "retry", id.String(), "--reason", "platform healed")
	var res ops.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.Changed || res.Status != outbox.StatusPublished {
		t.Errorf("retry: %d %q %q", code, out, errOut)
	}
	if len(o.actors) != 1 || o.actors[0] != (ops.Actor{Name: "ops", Reason: "platform healed"}) {
		t.Errorf("retry's actor: %+v", o.actors)
	}
	code, out, _ = run(cfg, "summary", "--window", "2m")
	var s ops.Summary
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Window.Seconds != 120 {
		t.Errorf("summary: %d %q", code, out)
	}

	other := uuid.New()
	code, out, errOut = run(cfg, "retry", other.String(), "--reason", "r")
	if code != 1 || out != "" || !strings.Contains(errOut, "404 Not Found: event "+other.String()) {
		t.Errorf("retry of an unknown event: %d %q %q", code, out, errOut)
	}
	wrong := cfg
	wrong.ConsolePassword = "wrong"
	if code, _, errOut := run(wrong, "summary"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("wrong password: %d %q", code, errOut)
	}
	none := cfg
	none.ConsolePassword = ""
	if code, _, errOut := run(none, "summary"); code != 2 || !strings.Contains(errOut, "CONSOLE_PASSWORD") {
		t.Errorf("no password: %d %q", code, errOut)
	}
	if code, _, errOut := run(cfg, "retry", id.String()); code != 2 || !strings.Contains(errOut, "--reason is required") {
		t.Errorf("no reason: %d %q", code, errOut)
	}
	if len(o.actors) != 1 {
		t.Errorf("refused calls reached the operations: %+v", o.actors)
	}
}

// TestConsoleNeedsCredentials: the console does not start without
// CONSOLE_CREDENTIALS_FILE, and answers 401 without its credentials.
func TestConsoleNeedsCredentials(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := consoleHandler(newDeps(cfg), &consoleOps{}); err == nil || !strings.Contains(err.Error(), "CONSOLE_CREDENTIALS_FILE is not set") {
		t.Errorf("without CONSOLE_CREDENTIALS_FILE: %v", err)
	}
	cfg.ConsoleCredentialsFile = filepath.Join(t.TempDir(), "missing")
	if _, err := consoleHandler(newDeps(cfg), &consoleOps{}); err == nil || !strings.Contains(err.Error(), "CONSOLE_CREDENTIALS_FILE") ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("with a missing file: %v", err)
	}
	if _, err := os.Stat(cfg.ConsoleCredentialsFile); err == nil {
		t.Fatal("the check made the file")
	}

	url, _ := startConsole(t, &consoleOps{}, "pw-0123456789")
	// serveConsole serves on the bound listener at once.
	resp, err := http.Get(url + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="outboxpay operator"`) {
		t.Errorf("GET /console without credentials: %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestRunConsole: `outboxpay console` refuses to start without its
// credentials file or Kafka, opens DATABASE_URL, builds its operations with
// that database and CONNECT_URL, serves the console on CONSOLE_ADDR (and
// /metrics), stops when ctx is done and releases the operations.
func TestRunConsole(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.ConnectURL = dbURL, "http://connect.invalid:8083"
	cfg.ConsoleAddr, cfg.MetricsAddr = freeAddr(t), freeAddr(t)
	never := func(context.Context, deps, string) (operator.Operations, func() error, error) {
		t.Error("operations built before the configuration was checked")
		return nil, nil, errors.New("not to be called")
	}
	if err := runConsole(context.Background(), testDeps(cfg, nil), never); err == nil || !strings.Contains(err.Error(), "KAFKA_BOOTSTRAP_SERVERS") {
		t.Errorf("without Kafka: %v", err)
	}
	cfg.KafkaBootstrap = "kafka.invalid:9092"
	if err := runConsole(context.Background(), testDeps(cfg, nil), never); err == nil || !strings.Contains(err.Error(), "CONSOLE_CREDENTIALS_FILE") {
		t.Errorf("without CONSOLE_CREDENTIALS_FILE: %v", err)
	}
	cfg.ConsoleCredentialsFile = filepath.Join(t.TempDir(), "console.properties")
	if err := basicauth.WriteFile(cfg.ConsoleCredentialsFile, basicauth.User{Name: "ops", Password: "pw-0123456789"}); err != nil {
		t.Fatal(err)
	}

	id := uuid.New()
	var released atomic.Bool
	build := func(ctx context.Context, d deps, connectURL string) (operator.Operations, func() error, error) {
		if connectURL != cfg.ConnectURL {
			t.Errorf("operations of %s, want CONNECT_URL", connectURL)
		}
		if err := d.dbs.operator.PingContext(ctx); err != nil { // withDB: DATABASE_URL is every pool
			t.Errorf("the operator's database: %v", err)
		}
		return &consoleOps{known: id}, func() error { released.Store(true); return nil }, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runConsole(ctx, testDeps(cfg, nil), build) }()
	c := operator.NewClient("http://"+cfg.ConsoleAddr, "ops", "pw-0123456789", nil)
	eventually.True(t, 30*time.Second, "the console answers", func() (bool, error) {
		res, err := c.Retry(ctx, id, "r")
		return err == nil && res.Changed, nil
	})
	resp, err := http.Get("http://" + cfg.MetricsAddr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("runConsole: %v", err)
	}
	if !released.Load() {
		t.Error("the operations were not released")
	}
}
