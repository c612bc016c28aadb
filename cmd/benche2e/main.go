// Command benche2e is make bench-e2e: payments end to end, from the HTTP
// API to every consumer group's COMPLETE, against the payment
// transaction's SQL alone.
//
// It starts a private Postgres (non-durable settings, as the tests) and
// `outboxpay dev` on it as a child process (DATABASE_URL, every listener
// on a free loopback port, API_RATE_LIMIT=0), seeds one user and one
// ORDERED order per payment directly in the database, and pays them with
// POST /orders/{id}/payment (one order, user token and Idempotency-Key per
// request) at rising open-loop rates with vegeta. After each rate it waits
// until every outbox row of the rate's orders is COMPLETE and reads
// commit-to-COMPLETE from the rows' created_at and completed_at. During
// each rate it follows where the machine's CPU goes (cpu.go): this process,
// dev, each Postgres process by what pg_stat_activity says it is, and the
// rest; over the rates it reads pg_stat_statements (the private cluster
// preloads it; the extension lives in the postgres database). Then it
// runs pgbench with the statements shop.Pay runs, on fresh ORDERED orders,
// while dev still runs, and prints the table and the API/SQL ratio. With
// -console, dev's console is open in headless chromium on its live summary
// from before the warm-up until the last rate drained, and the report says
// how often it polled (from dev's log). It
// exits non-zero only on errors: a rate not kept up with is reported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/benchconsole"
)

// options are the benchmark's knobs.
type options struct {
	rates      []int         // offered payments/s, in order
	duration   time.Duration // per rate
	warmup     time.Duration // unreported payments at warmupRate first; 0: none
	drain      time.Duration // longest wait for a rate's events to become COMPLETE
	timeout    time.Duration // per request
	sqlClients int           // pgbench clients
	sqlFor     time.Duration // pgbench duration
	goTool     string        // to build ./cmd/outboxpay
	bin        string        // a prebuilt outboxpay; "" builds one
	console    bool          // keep dev's console open through the rates
}

// parseRates parses "100,200,400".
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 1 {
			return nil, fmt.Errorf("rates: %q is not a positive number", f)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

func parseFlags() (options, error) {
	var o options
	rates := flag.String("rates", envOr("BENCHE2E_RATES", "100,200,400,800"), "offered payments/s, comma-separated, in order (BENCHE2E_RATES)")
	dur := flag.String("duration", envOr("BENCHE2E_DURATION", "20s"), "how long each rate is offered (BENCHE2E_DURATION)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "pay at 20/s this long first, unreported (the groups join, the pools fill); 0: no warm-up")
	flag.DurationVar(&o.drain, "drain", 3*time.Minute, "longest wait after a rate for its events to become COMPLETE")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "client time-out per request")
	flag.IntVar(&o.sqlClients, "sql-clients", 8, "pgbench clients")
	flag.DurationVar(&o.sqlFor, "sql-duration", 20*time.Second, "pgbench duration")
	flag.StringVar(&o.goTool, "go", "go", "the go command, to build ./cmd/outboxpay")
	flag.StringVar(&o.bin, "bin", "", "a prebuilt outboxpay binary (default: build ./cmd/outboxpay)")
	flag.BoolVar(&o.console, "console", os.Getenv("BENCHE2E_CONSOLE") == "1", "keep dev's console open in headless chromium, on its live summary, through the warm-up and every rate (BENCHE2E_CONSOLE=1)")
	flag.Parse()
	var err error
	if o.rates, err = parseRates(*rates); err != nil {
		return o, err
	}
	if o.duration, err = time.ParseDuration(*dur); err != nil || o.duration < time.Second {
		return o, fmt.Errorf("duration %q: want at least 1s", *dur)
	}
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if o.sqlClients < 1 || o.sqlFor < time.Second {
		return o, errors.New("-sql-clients must be positive and -sql-duration at least 1s")
	}
	return o, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benche2e:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, opts, logger)
	if rep != nil {
		rep.print(os.Stdout)
	}
	if err != nil {
		logger.Error("bench-e2e failed", "err", err)
		stop()
		os.Exit(1)
	}
}

// run sets the system up, runs the rates and pgbench, and tears everything
// down, also when ctx ends. The report holds what was measured, also on error.
func run(ctx context.Context, o options, log *slog.Logger) (rep *report, err error) {
	tmp, err := os.MkdirTemp("", "benche2e-")
	if err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(tmp); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp, rmErr))
		}
	}()
	// The postgres user, which runs the server when this process is root,
	// must be able to enter it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}

	bin := o.bin
	if bin == "" {
		if bin, err = buildOutboxpay(ctx, o.goTool, tmp, log); err != nil {
			return nil, err
		}
	}
	sys, err := startSystem(ctx, bin, tmp, log)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sys.close()) }()

	rep = &report{cpus: runtime.NumCPU()}
	if rep.pgVersion, err = sys.serverVersion(ctx); err != nil {
		return rep, err
	}
	plan := planOrders(o)
	log.Info("seeding users and ORDERED orders", "orders", plan.total)
	if err := sys.seed(ctx, plan.total); err != nil {
		return rep, err
	}
	var page *benchconsole.Page
	if o.console {
		log.Info("opening dev's console in headless chromium", "url", sys.consoleURL+"/console")
		if page, err = benchconsole.Open(ctx, sys.consoleURL, sys.consoleUser, sys.consolePassword, filepath.Join(tmp, "chromium")); err != nil {
			return rep, err
		}
		defer page.Close()
	}
	if o.warmup > 0 {
		w := o
		w.duration = o.warmup
		log.Info("warming up", "rate", warmupRate, "duration", o.warmup)
		r, err := sys.payAt(ctx, warmupRate, w, plan.warmup, log)
		if err != nil {
			return rep, fmt.Errorf("warm-up: %w", err)
		}
		log.Info("warm-up done", "ok", r.ok, "sent", r.sent, "complete", r.complete, "events", r.events,
			"complete_p99", r.c2cP99, "api_p99", r.apiP99)
	}
	if err := sys.resetStatements(ctx); err != nil {
		return rep, err
	}
	for i, rate := range o.rates {
		log.Info("offering payments", "rate", rate, "duration", o.duration)
		r, err := sys.payAt(ctx, rate, o, plan.rates[i], log)
		if err != nil {
			return rep, fmt.Errorf("payments at %d/s: %w", rate, err)
		}
		rep.rates = append(rep.rates, r)
		if r.complete < r.events {
			rep.stopped = fmt.Sprintf("%d of %d events of %d/s were not COMPLETE %v after the load", r.events-r.complete, r.events, rate, o.drain)
			break
		}
	}
	if o.console {
		if rep.console, err = page.Finish(sys.devOut.Name()); err != nil {
			return rep, err
		}
		log.Info("console closed", "console", rep.console)
	}
	stmts, err := sys.statements(ctx, topStatements)
	if err != nil {
		return rep, err
	}
	for _, r := range rep.rates {
		stmts.payments += r.ok
	}
	rep.stmts = &stmts
	log.Info("pgbench: the payment transaction's SQL", "clients", o.sqlClients, "duration", o.sqlFor)
	sql, err := sys.pgbench(ctx, o, plan.sqlFirst, plan.sqlPerClient, tmp)
	if err != nil {
		return rep, err
	}
	rep.sql = &sql
	return rep, nil
}

// topStatements is how many statements of pg_stat_statements the report shows.
const topStatements = 10

// orderRange is a range of order ids [first, first+n); order i belongs to user i.
type orderRange struct{ first, n int64 }

// warmupRate is the warm-up's payments/s.
const warmupRate = 20

// orderPlan assigns the seeded orders: the warm-up's, one range per rate, then
// sqlPerClient orders for each pgbench client from sqlFirst.
type orderPlan struct {
	warmup       orderRange
	rates        []orderRange
	sqlFirst     int64
	sqlPerClient int64
	total        int64
}

// planOrders lays the orders out from id 1. pgbench clients get room for
// 1,500 payments/s each (the issue measured 1,019 tps with 8 clients).
func planOrders(o options) orderPlan {
	var p orderPlan
	next := int64(1)
	p.warmup = orderRange{first: next, n: int64(warmupRate*o.warmup.Seconds()) + warmupRate}
	next += p.warmup.n
	for _, rate := range o.rates {
		n := int64(float64(rate)*o.duration.Seconds()) + int64(rate) // a second's slack
		p.rates = append(p.rates, orderRange{first: next, n: n})
		next += n
	}
	p.sqlFirst = next
	p.sqlPerClient = int64(1500 * o.sqlFor.Seconds())
	p.total = next - 1 + p.sqlPerClient*int64(o.sqlClients)
	return p
}
