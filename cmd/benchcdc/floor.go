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
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outboxpay/outboxpay/connect/engine"
)

// metricState is the engine's state gauge.
const metricState = "outboxpay_cdc_state"

// The floor reader's child process: this program, started with these
// variables set, runs the reader instead of the benchmark.
const (
	envFloorChild = "BENCHCDC_FLOOR_CHILD" // "1"
	envFloorDB    = "BENCHCDC_FLOOR_DATABASE_URL"
	envFloorAddr  = "BENCHCDC_FLOOR_METRICS_ADDR" // loopback host:port of its /metrics
)

// floorReader is the engine's replication reader alone (Options.Discard),
// in a process of its own (this program again) so that it competes for the
// CPU as the engine process does, not with kfake in this one, on slot A once
// (a) has drained it: during the steady load it decodes the same
// transactions as the engine process, without Kafka. Its commit-to-ack
// histogram is then commit-to-decoded: what Postgres (WAL flush, walsender,
// decoding), the reader and the scheduling of this machine cost before the
// engine can hand a record to Kafka; the engine process's commit-to-ack
// minus it is the Kafka side's share. It and its walsender are two more
// processes on the machine during the steady load.
type floorReader struct {
	c       *child
	hc      *http.Client
	url     string // its /metrics
	logPath string
}

// startFloorReader starts the reader and waits until it has caught up with
// the WAL: a new session decodes again from the slot's restart position,
// which may lie well before its confirmed one (the end of the backlog).
func startFloorReader(ctx context.Context, env *benchEnv, tmp string) (f *floorReader, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the floor reader: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	f = &floorReader{
		hc:      &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}},
		url:     "http://" + addr + "/metrics",
		logPath: filepath.Join(tmp, "floor.log"),
	}
	logFile, err := os.Create(f.logPath)
	if err != nil {
		return nil, fmt.Errorf("create the floor reader's log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(self)
	cmd.Env = withVars(clientEnv(), map[string]string{envFloorChild: "1", envFloorDB: env.url, envFloorAddr: addr})
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if f.c, err = startChild("floor reader", cmd); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.close())
		}
	}()

	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_, err = backoff.Retry(waitCtx, func() (struct{}, error) {
		if f.c.exited() {
			return struct{}{}, backoff.Permanent(fmt.Errorf("the floor reader exited: %v%s", f.c.p.Err(), f.logTail()))
		}
		mfs, err := f.metrics(waitCtx)
		if err != nil {
			return struct{}{}, err
		}
		if !streaming(mfs) {
			return struct{}{}, errors.New("not streaming yet")
		}
		return struct{}{}, nil
	}, every(20*time.Millisecond)...)
	if err != nil {
		return f, fmt.Errorf("the floor reader is not streaming: %w", err)
	}
	end, err := env.currentLSN(waitCtx)
	if err != nil {
		return f, err
	}
	_, err = backoff.Retry(waitCtx, func() (struct{}, error) {
		st, err := env.slotStats(waitCtx, slotDecode)
		switch {
		case err != nil:
			return struct{}{}, backoff.Permanent(err)
		case st.confirmed < end:
			return struct{}{}, fmt.Errorf("slot %s confirmed to %s, the WAL ends at %s", slotDecode, st.confirmed, end)
		}
		return struct{}{}, nil
	}, every(50*time.Millisecond)...)
	if err != nil {
		return f, fmt.Errorf("the floor reader has not caught up: %w", err)
	}
	return f, nil
}

// streaming reports whether the engine's state gauge says streaming.
func streaming(mfs families) bool {
	for _, m := range mfs[metricState].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" && l.GetValue() == "streaming" && m.GetGauge().GetValue() == 1 {
				return true
			}
		}
	}
	return false
}

// metrics scrapes the reader's /metrics.
func (f *floorReader) metrics(ctx context.Context) (families, error) {
	return scrape(ctx, f.hc, f.url)
}

func (f *floorReader) logTail() string {
	data, err := os.ReadFile(f.logPath)
	if err != nil || len(data) == 0 {
		return ""
	}
	return "; last lines of its log:\n" + tail(string(data), 20)
}

// close stops the reader: SIGTERM, SIGKILL if it lingers.
func (f *floorReader) close() error { return f.c.stop() }

// runFloorChild is the floor reader's process: the engine's reader on slot
// A, discarding, its metrics on envFloorAddr, until SIGTERM.
func runFloorChild() error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, cfg, err := (&benchEnv{url: os.Getenv(envFloorDB)}).connectorConfig(slotDecode)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	eng := engine.New("bench-floor", cfg, engine.Options{Discard: true, Metrics: engine.NewMetrics(reg), Logger: log})
	ln, err := net.Listen("tcp", os.Getenv(envFloorAddr))
	if err != nil {
		return fmt.Errorf("listen for metrics: %w", err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	runErr := eng.Run(ctx)
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("stop the metrics server: %w", err))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		runErr = errors.Join(runErr, fmt.Errorf("serve metrics: %w", err))
	}
	return runErr
}
