package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgbenchrun"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
)

// pgTools are the client programs of the PostgreSQL that pgcluster runs.
type pgTools struct {
	dir         string
	pgbench     string
	recvlogical string
}

// findPGTools finds pgbench and pg_recvlogical next to the server
// programs pgcluster runs (pgcluster.BinDir).
func findPGTools() (pgTools, error) {
	dir, err := pgcluster.BinDir()
	if err != nil {
		return pgTools{}, err
	}
	return toolsIn(dir)
}

func toolsIn(dir string) (pgTools, error) {
	t := pgTools{dir: dir, pgbench: filepath.Join(dir, "pgbench"), recvlogical: filepath.Join(dir, "pg_recvlogical")}
	for _, p := range []string{t.pgbench, t.recvlogical} {
		if _, err := exec.LookPath(p); err != nil { // an absolute path: is it executable
			return pgTools{}, fmt.Errorf("%s not found next to the server's initdb (in %s)", filepath.Base(p), dir)
		}
	}
	return t, nil
}

// clientEnv is the environment of the Postgres client programs: this
// process's, without PG* variables that could steer them elsewhere.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// outboxScript is one single-row outbox transaction, an OrderPaid event of
// one of aggregateKeys orders (pgbench's default: one transaction per run
// of the script). Its payload carries writtenAtField, the database clock in
// microseconds as the row is inserted, a moment before the commit: records
// are stamped when the engine processes them, not at commit, so the
// latency consumer measures from this instead.
func outboxScript() string {
	return fmt.Sprintf(`\set order random(1, %d)
\set user random(1, 100)
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), '%s', CAST(:order AS text), '%s', jsonb_build_object('orderId', :order, 'userId', :user, 'items', jsonb_build_array(jsonb_build_object('productDetailId', 1, 'quantity', 2)), '%s', CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS bigint)));
`, aggregateKeys, event.AggregateOrder, event.TypeOrderPaid, writtenAtField)
}

// pgbench runs pgbench with the outbox script against the bench database
// with clients clients; o sets the rest (duration or transactions, rate).
func pgbench(ctx context.Context, tools pgTools, dbURL, tmp string, clients int, o pgbenchrun.Options) (pgbenchrun.Result, error) {
	script := filepath.Join(tmp, "outbox.sql")
	if err := os.WriteFile(script, []byte(outboxScript()), 0o644); err != nil {
		return pgbenchrun.Result{}, fmt.Errorf("write pgbench script: %w", err)
	}
	o.Program, o.URL, o.Script, o.Clients = tools.pgbench, dbURL, script, clients
	return pgbenchrun.Run(ctx, o)
}

// backlogResult is the backlog as built.
type backlogResult struct {
	events  int
	elapsed time.Duration
	tps     float64
	endLSN  pglogrepl.LSN
}

// buildBacklog inserts o.events single-row outbox transactions with
// pgbench, and records where the WAL ends after them.
func buildBacklog(ctx context.Context, env *benchEnv, tools pgTools, o options, tmp string, log *slog.Logger) (backlogResult, error) {
	log.Info("building the backlog with pgbench", "transactions", o.events, "clients", o.clients)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	run, err := pgbench(ctx, tools, env.url, tmp, o.clients, pgbenchrun.Options{Transactions: o.events / o.clients})
	if err != nil {
		return backlogResult{}, fmt.Errorf("build backlog: %w", err)
	}
	rows, err := env.outboxRows(ctx)
	if err != nil {
		return backlogResult{}, err
	}
	if rows != o.events || run.Processed != o.events {
		return backlogResult{}, fmt.Errorf("build backlog: pgbench processed %d transactions and the outbox holds %d rows, want %d",
			run.Processed, rows, o.events)
	}
	end, err := env.currentLSN(ctx)
	if err != nil {
		return backlogResult{}, err
	}
	log.Info("backlog built", "rows", rows, "took", run.Elapsed.Round(time.Millisecond), "end_lsn", end.String())
	return backlogResult{events: rows, elapsed: run.Elapsed, tps: run.TPS, endLSN: end}, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
