package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

// devSystem is `outboxpay dev` running as its own process, on free ports,
// with its own Postgres and Kafka under a temporary folder: the whole
// system as `make run` starts it.
type devSystem struct {
	API, Connect, Platform, Kafka, Postgres string // as its banner prints them
	// Metrics is the base URL of dev's /metrics (METRICS_ADDR).
	Metrics string
	// Console is the base URL of the operator API; its page is Console +
	// "/console".
	Console string
	// User and Password are the operator credentials of Connect and the
	// platform mock, from the file dev generated.
	User, Password string
	Banner         string // everything dev printed up to the end of its banner
	dir            string
	cmd            *exec.Cmd
	exited         chan error
	stderr, stdout *logtest.Buffer
}

// kafkaAs returns the settings of a Kafka client of the system's embedded
// cluster as principal, with its password from the users file dev wrote
// (mode 0600).
func (d *devSystem) kafkaAs(t *testing.T, principal string) kafkaclient.Config {
	t.Helper()
	path := filepath.Join(d.dir, "data", "kafka-users")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, st.Mode().Perm())
	}
	users, err := kafkaclient.ReadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	return kafkaclient.Config{Bootstrap: d.Kafka}.WithUser(kafkaclient.EmbeddedMechanism, principal, users[principal])
}

// tokenFile is where dev wrote the demo user's token (every scope).
func (d *devSystem) tokenFile(user int64) string {
	return filepath.Join(d.dir, "data", "tokens", fmt.Sprintf("user-%d.jwt", user))
}

// token is the demo user's token dev wrote.
func (d *devSystem) token(t testing.TB, user int64) string {
	t.Helper()
	b, err := os.ReadFile(d.tokenFile(user))
	if err != nil {
		t.Fatalf("dev's token of user %d: %v", user, err)
	}
	return strings.TrimSpace(string(b))
}

// launchDev starts `outboxpay dev` in dir with env added to the test's
// environment, and returns once its banner says everything serves.
func launchDev(bin, dir string, env ...string) (*devSystem, error) {
	// The postgres user runs the server when the test runs as root: it must
	// be able to enter the folder.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, "dev")
	// DATA_DIR relative to dev's folder, as make run has it (.data).
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "DATA_DIR=data", "API_ADDR=127.0.0.1:0",
		"CONNECT_ADDR=127.0.0.1:0", "KAFKA_PORTS=0,0,0", "PLATFORM_MOCK_ADDR=127.0.0.1:0", "DATABASE_URL=",
		"KAFKA_BOOTSTRAP_SERVERS=", "METRICS_ADDR=127.0.0.1:0", "AUTH_ISSUER_ADDR=127.0.0.1:0", "CONSOLE_ADDR=127.0.0.1:0",
		"AUTH_JWKS_URL=", "AUTH_PUBLIC_KEY_FILE=", "AUTH_ISSUER=", "AUTH_SIGNING_KEY_FILE="), env...)
	d := &devSystem{dir: dir, cmd: cmd, exited: make(chan error, 1), stderr: &logtest.Buffer{}, stdout: &logtest.Buffer{}}
	cmd.Stderr = d.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}

	fields := map[string]*string{"API": &d.API, "Metrics": &d.Metrics, "Kafka Connect": &d.Connect, "Platform": &d.Platform,
		"Kafka": &d.Kafka, "Postgres": &d.Postgres, "Console": &d.Console}
	line := regexp.MustCompile(`^  (API|Metrics|Kafka Connect|Platform|Kafka|Postgres|Console)\s+(\S+)`)
	ready := make(chan struct{})
	var banner strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		// The banner ends with the blank line after its "Try:" section.
		seen, try, done := 0, false, false
		for sc.Scan() {
			text := sc.Text()
			_, _ = fmt.Fprintln(d.stdout, text)
			if done {
				continue
			}
			banner.WriteString(text + "\n")
			if m := line.FindStringSubmatch(text); m != nil && seen < len(fields) {
				*fields[m[1]] = m[2]
				seen++
			}
			try = try || text == "Try:"
			if seen == len(fields) && try && text == "" {
				done = true
				close(ready)
			}
		}
		_, _ = io.Copy(d.stdout, stdout)
		d.exited <- cmd.Wait()
	}()
	select {
	case <-ready:
		d.Platform = regexp.MustCompile(`/events$`).ReplaceAllString(d.Platform, "")
		d.Metrics = regexp.MustCompile(`/metrics$`).ReplaceAllString(d.Metrics, "")
		d.Console = regexp.MustCompile(`/console$`).ReplaceAllString(d.Console, "")
		d.Banner = banner.String()
		users, err := basicauth.ParseFile(filepath.Join(dir, "data", devCredentialsFile))
		if err != nil || len(users) != 1 {
			_ = d.kill()
			return nil, fmt.Errorf("dev's credentials file: %v, %d users", err, len(users))
		}
		d.User, d.Password = users[0].Name, users[0].Password
		return d, nil
	case err := <-d.exited:
		d.exited <- err
		return nil, fmt.Errorf("dev exited before serving: %v\n%s", err, d.stderr)
	case <-time.After(2 * time.Minute):
		_ = d.kill()
		return nil, fmt.Errorf("dev printed no banner within 2 minutes\n%s", d.stderr)
	}
}

// stop interrupts dev, as Ctrl-C does, and waits for it to exit.
func (d *devSystem) stop() error {
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			return fmt.Errorf("dev exited with %v after SIGINT\n%s", err, d.stderr)
		}
		return nil
	case <-time.After(time.Minute):
		_ = d.kill()
		return errors.New("dev still running a minute after SIGINT")
	}
}

// kill kills dev unless it has exited, and waits for it.
func (d *devSystem) kill() error {
	select {
	case err := <-d.exited:
		d.exited <- err
		return nil
	default:
	}
	err := d.cmd.Process.Kill()
	err2 := <-d.exited
	d.exited <- err2
	return err
}

// shared is one dev system for the tests that only read from it or add
// their own orders; TestMain stops it.
var shared struct {
	once sync.Once
	sys  *devSystem
	err  error
	dir  string
}

// sharedDev returns the shared dev system, starting it on first use.
func sharedDev(t *testing.T) *devSystem {
	t.Helper()
	bin := binary(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "outboxpay-dev-")
		if shared.err == nil {
			// A short reconciler interval, so its metrics move while tests look.
			shared.sys, shared.err = launchDev(bin, shared.dir, "RECONCILE_INTERVAL=2s")
		}
	})
	if shared.err != nil {
		t.Fatalf("start the shared dev system: %v", shared.err)
	}
	return shared.sys
}

// stopSharedDev stops the shared dev system, if it was started.
func stopSharedDev() error {
	var err error
	if shared.sys != nil {
		err = shared.sys.stop()
	}
	if shared.dir != "" {
		err = errors.Join(err, os.RemoveAll(shared.dir))
	}
	return err
}
