package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kit/benchconsole"
)

// consoleUser is the console's only operator in the benchmark.
const consoleUser = "bench"

// consoleProc is `outboxpay console` as a child process on the bench's
// database (as the superuser), Kafka and the engine's Kafka Connect REST
// API, with its summary view open in headless chromium (-console).
type consoleProc struct {
	c       *child
	logPath string
	logFile *os.File
	page    *benchconsole.Page
}

// startConsole starts the console, waits until it answers and opens its
// page. On error nothing is left running.
func startConsole(ctx context.Context, bin string, env *benchEnv, eng *engineProc, tmp string, log *slog.Logger) (_ *consoleProc, err error) {
	password, err := basicauth.RandomPassword()
	if err != nil {
		return nil, err
	}
	creds := filepath.Join(tmp, "console-credentials.properties")
	if err := basicauth.WriteFile(creds, basicauth.User{Name: consoleUser, Password: password}); err != nil {
		return nil, err
	}
	ports := make([]string, 2)
	for i := range ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	base := "http://" + ports[0]
	c := &consoleProc{logPath: filepath.Join(tmp, "console.log")}
	if c.logFile, err = os.Create(c.logPath); err != nil {
		return nil, fmt.Errorf("create console log: %w", err)
	}
	cmd := exec.Command(bin, "console")
	cmd.Env = withVars(clientEnv(), map[string]string{
		"DATABASE_URL":             env.url,
		"KAFKA_BOOTSTRAP_SERVERS":  env.kafka.Bootstrap(),
		"CONNECT_URL":              eng.base,
		"CONNECTOR_NAME":           connectorName,
		"CONSOLE_ADDR":             ports[0],
		"METRICS_ADDR":             ports[1],
		"CONSOLE_CREDENTIALS_FILE": creds,
		"LOG_LEVEL":                "info",
		"LOG_FORMAT":               "text",
	})
	cmd.Stdout, cmd.Stderr = c.logFile, c.logFile
	if c.c, err = startChild("outboxpay console", cmd); err != nil {
		c.logFile.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop())
		}
	}()
	env.sampler.console.Store(int64(c.c.p.Pid()))
	log.Info("console process started", "pid", c.c.p.Pid(), "url", base+"/console", "log", c.logPath)
	if err := c.waitListening(ctx, base); err != nil {
		return c, err
	}
	if c.page, err = benchconsole.Open(ctx, base, consoleUser, password, filepath.Join(tmp, "chromium")); err != nil {
		return c, fmt.Errorf("%w%s", err, logTail(c.logPath))
	}
	return c, nil
}

// waitListening waits until the console answers (401 without credentials).
func (c *consoleProc) waitListening(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if c.c.exited() {
			return struct{}{}, backoff.Permanent(fmt.Errorf("console process exited: %v%s", c.c.p.Err(), logTail(c.logPath)))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/console", nil)
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return struct{}{}, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return struct{}{}, backoff.Permanent(fmt.Errorf("console: GET /console without credentials: %s, want 401", resp.Status))
		}
		return struct{}{}, nil
	}, every(50*time.Millisecond)...)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("console at %s not answering: %w%s", base, ctx.Err(), logTail(c.logPath))
	}
	return err
}

// finish closes the page, counts its polls and stops the console.
func (c *consoleProc) finish() (*benchconsole.Result, error) {
	res, err := c.page.Finish(c.logPath)
	return res, errors.Join(err, c.stop())
}

// stop closes the page if it is open and ends the console.
func (c *consoleProc) stop() error {
	if c.page != nil {
		c.page.Close()
	}
	err := c.c.stop()
	if cerr := c.logFile.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}
