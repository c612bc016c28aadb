package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// binDir holds the outboxpay binary the tests run as a separate process.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outboxpay-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := pgtest.Run(m)
	if err := stopSharedDev(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the shared dev system:", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// binary builds the outboxpay command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "outboxpay")
	buildOnce.Do(func() {
		buildOut, buildErr = exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return bin
}

// run runs the outboxpay binary with args and env added to a clean
// environment, and returns its exit code, stdout and stderr.
func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("outboxpay %v did not exit within 2 minutes\n%s", args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// testDeps are deps of cfg as newDeps makes them, with a silent logger and
// db (may be nil) as every component's database.
func testDeps(cfg config, db *sql.DB) deps {
	d := newDeps(cfg)
	d.logger = slog.New(slog.DiscardHandler)
	d.dbs = oneDB(db)
	return d
}

// plainKafka is a deps.kafkaAs: every principal the cluster at bootstrap
// without SASL.
func plainKafka(bootstrap string) func(string) kafkaclient.Config {
	return func(string) kafkaclient.Config { return kafkaclient.Config{Bootstrap: bootstrap} }
}

// goServeConnect listens on d's CONNECT_ADDR and runs serveConnect until
// ctx is done, sending its result to done; it returns the REST API's URL.
func goServeConnect(t testing.TB, ctx context.Context, d deps, done chan<- error) string {
	t.Helper()
	auth, err := connectCredentials(d.cfg, d.logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listen(d.logger, "kafka connect REST API", d.cfg.ConnectAddr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- serveConnect(ctx, d, ln, auth) }()
	return "http://" + ln.Addr().String()
}

// startUntilCleanup starts cmd, its output in the returned buffer, and
// stops it when the test ends: SIGTERM, then SIGKILL after 30 s. Its exit
// goes to the returned channel (which holds one value); with clean, an exit
// that is not clean, or a kill, fails the test.
func startUntilCleanup(t *testing.T, cmd *exec.Cmd, clean bool) (*logtest.Buffer, chan error) {
	t.Helper()
	logs := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil && clean {
				t.Errorf("%v: %v after SIGTERM\n%s", cmd.Args, err, logs)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			if clean {
				t.Errorf("%v still running 30 s after SIGTERM", cmd.Args)
			}
		}
	})
	return logs, exited
}

// loadConfigWith sets env for the rest of the test and loads the
// configuration as the subcommands do.
func loadConfigWith(t *testing.T, env map[string]string) (config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	return loadConfig()
}
