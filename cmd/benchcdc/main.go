// Command benchcdc is make bench-cdc: it measures the embedded CDC engine
// against the rate at which Postgres itself can decode the outbox.
//
// On a private Postgres (non-durable settings) and an in-memory Kafka
// (kfake, in this process), it creates three pgoutput slots, builds a
// backlog of single-row outbox transactions with pgbench, and drains the
// same backlog four times, one slot each:
//
//	(a) the engine's own replication reader, in this process, discarding
//	    every record it builds (engine.Options.Discard): the physical limit;
//	(a2) a minimal pgoutput reader, in this process, that lets the socket
//	    buffer fill (it pauses 1 ms whenever it has drained it), so the
//	    walsender sends full TCP segments: the walsender's ceiling, which
//	    (a) does not reach because it takes every message at once;
//	(b) pg_recvlogical to /dev/null;
//	(c) `outboxpay connect` as a separate process, producing to Kafka with
//	    acks=all, its connector registered over the Kafka Connect REST API.
//
// It prints events/s for each, (c)/(a), (c)/(a2), (c)/(b) and the engine's peak RSS,
// then runs a steady load (pgbench -R) while the engine streams and prints
// the commit-to-Kafka-ack latency, beside the commit-to-decoded latency of
// the engine's reader alone on slot A (what Postgres, the reader and the
// machine cost before the engine can produce anything) and the machine's load average.
// With -console, `outboxpay console` runs too, on the same database, Kafka
// and engine, its summary view open in headless chromium (polling every
// 2 s) during (c) and the steady load; the report says how often it polled.
// It exits non-zero only on errors: a missed target is reported, not failed.
//
// Environment (optional):
//
//	BENCHCDC_PROFILE_DIR  write CPU profiles there: the in-process decode pass
//	                      and this process (kfake) during (c) as pprof files,
//	                      and the engine process during (c) with perf record
//	BENCHCDC_PPROF_ADDR   serve net/http/pprof of this process on that address
//
// BENCHCDC_FLOOR_* are set by the benchmark itself, for the child process
// that runs the steady load's floor reader (floor.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only when BENCHCDC_PPROF_ADDR is set
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The benchmark's fixed shape.
const (
	dbName        = "bench"
	slotDecode    = "bench_decode"
	slotRecv      = "bench_recvlogical"
	slotChunked   = "bench_chunked"
	slotEngine    = "bench_engine"
	connectorName = "bench-engine"
	aggregateKeys = 1000
)

// options are the benchmark's knobs; the defaults are the numbers.
type options struct {
	events     int           // backlog size, single-row transactions
	clients    int           // pgbench clients (and -j clients/2)
	rate       int           // steady load, events/s
	duration   time.Duration // steady load duration
	timeout    time.Duration // bound on the whole run
	goTool     string        // the go command, to build the engine
	engineBin  string        // a prebuilt outboxpay binary; "" builds one
	profileDir string        // BENCHCDC_PROFILE_DIR
	console    bool          // an operator console open during (c) and the steady load
}

func parseFlags() (options, error) {
	o := options{profileDir: os.Getenv("BENCHCDC_PROFILE_DIR")}
	flag.IntVar(&o.events, "events", 200_000, "backlog size: single-row outbox transactions")
	flag.IntVar(&o.clients, "clients", 4, "pgbench clients")
	flag.IntVar(&o.rate, "rate", 5_000, "steady load: events per second")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "steady load: how long")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "bound on the whole run")
	flag.StringVar(&o.goTool, "go", "go", "the go command, to build ./cmd/outboxpay")
	flag.StringVar(&o.engineBin, "engine-bin", "", "a prebuilt outboxpay binary (default: build ./cmd/outboxpay)")
	flag.BoolVar(&o.console, "console", false, "run `outboxpay console` on the bench's database, Kafka and engine, its summary open in headless chromium, during (c) and the steady load")
	flag.Parse()
	switch {
	case flag.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	case o.clients < 2 || o.events < o.clients || o.events%o.clients != 0:
		return o, fmt.Errorf("-events (%d) must be a positive multiple of -clients (%d >= 2)", o.events, o.clients)
	case o.rate < 1 || o.duration < time.Second:
		return o, errors.New("-rate must be positive and -duration at least 1s")
	}
	return o, nil
}

func main() {
	if os.Getenv(envFloorChild) == "1" { // the steady load's floor reader (floor.go)
		if err := runFloorChild(); err != nil {
			fmt.Fprintln(os.Stderr, "benchcdc floor reader:", err)
			os.Exit(1)
		}
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcdc:", err)
		os.Exit(2)
	}
	if addr := os.Getenv("BENCHCDC_PPROF_ADDR"); addr != "" {
		go func() {
			logger.Info("pprof listening", "addr", addr)
			if err := http.ListenAndServe(addr, nil); err != nil {
				logger.Warn("pprof listener stopped", "err", err)
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	res, err := run(ctx, opts, logger)
	if err != nil {
		logger.Error("bench-cdc failed", "err", err, "after", time.Since(began).Round(time.Second))
		stop()
		os.Exit(1)
	}
	res.took = time.Since(began)
	printReport(os.Stdout, res)
}

// run sets everything up, runs the stages in order and tears everything
// down, also when ctx ends.
func run(ctx context.Context, o options, log *slog.Logger) (res *results, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	tmp, err := makeTempDir()
	if err != nil {
		return nil, err
	}
	defer func() {
		if rmErr := os.RemoveAll(tmp); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp, rmErr))
		}
	}()

	tools, err := findPGTools()
	if err != nil {
		return nil, err
	}
	engineBin := o.engineBin
	if engineBin == "" {
		if engineBin, err = buildEngine(ctx, o.goTool, tmp, log); err != nil {
			return nil, err
		}
	}

	env, err := startEnv(ctx, tmp, log)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, env.close()) }()

	res = &results{opts: o, tools: tools, cpus: numCPU()}
	if err := stages(ctx, env, tools, engineBin, tmp, res, log); err != nil {
		return nil, err
	}
	return res, nil
}

// stages runs the benchmark proper on a ready environment.
func stages(ctx context.Context, env *benchEnv, tools pgTools, engineBin, tmp string, res *results, log *slog.Logger) (err error) {
	o := res.opts
	if res.pgVersion, err = env.serverVersion(ctx); err != nil {
		return err
	}
	if err := env.createSlots(ctx, slotDecode, slotChunked, slotRecv, slotEngine); err != nil {
		return err
	}
	if res.backlog, err = buildBacklog(ctx, env, tools, o, tmp, log); err != nil {
		return err
	}
	prof := newProfiler(o.profileDir, log)

	log.Info("(a) decode-only pass: the engine's reader, discarding records", "slot", slotDecode)
	if res.decode, err = decodePass(ctx, env, o.events, prof, log); err != nil {
		return fmt.Errorf("(a) decode-only pass: %w", err)
	}
	log.Info("(a2) the walsender's ceiling: a minimal reader that lets the socket fill", "slot", slotChunked)
	if res.chunked, err = chunkedPass(ctx, env, o.events); err != nil {
		return fmt.Errorf("(a2) chunked reader pass: %w", err)
	}
	log.Info("(b) pg_recvlogical to /dev/null", "slot", slotRecv)
	if res.recv, err = recvlogicalPass(ctx, env, tools, res.backlog.endLSN, o.events); err != nil {
		return fmt.Errorf("(b) pg_recvlogical pass: %w", err)
	}

	log.Info("(c) engine process draining to Kafka (acks=all)", "slot", slotEngine)
	eng, err := startEngine(ctx, engineBin, env, tmp, log)
	if err != nil {
		return fmt.Errorf("(c) start engine: %w", err)
	}
	defer func() {
		if stopErr := eng.stop(); stopErr != nil {
			log.Warn("stop engine", "err", stopErr)
		}
	}()
	var cons *consoleProc
	if o.console {
		log.Info("opening an operator console for (c) and the steady load")
		if cons, err = startConsole(ctx, engineBin, env, eng, tmp, log); err != nil {
			return fmt.Errorf("start console: %w", err)
		}
		defer func() { // a no-op after finish
			if stopErr := cons.stop(); stopErr != nil {
				log.Warn("stop console", "err", stopErr)
			}
		}()
	}
	if res.engine, res.rssDrain, err = enginePass(ctx, env, eng, o.events, prof, log); err != nil {
		return fmt.Errorf("(c) engine pass: %w", err)
	}

	log.Info("steady load", "rate", o.rate, "duration", o.duration)
	if res.steady, err = steadyLoad(ctx, env, eng, tools, o, tmp, prof, log); err != nil {
		return fmt.Errorf("steady load: %w", err)
	}
	if cons != nil {
		if res.console, err = cons.finish(); err != nil {
			return fmt.Errorf("console: %w", err)
		}
		log.Info("console closed", "console", res.console)
	}
	if res.rssEnd, err = eng.peakRSS(); err != nil {
		return fmt.Errorf("engine peak RSS: %w", err)
	}
	res.profiles = prof.written
	return nil
}

// makeTempDir creates the run's folder. The postgres user, which runs the
// server when this process is root, must be able to enter it.
func makeTempDir() (string, error) {
	dir, err := os.MkdirTemp("", "benchcdc-")
	if err != nil {
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	return dir, nil
}
