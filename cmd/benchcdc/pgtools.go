package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/outboxpay/outboxpay/internal/event"
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
// of the script).
func outboxScript() string {
	return fmt.Sprintf(`\set order random(1, %d)
\set user random(1, 100)
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), '%s', CAST(:order AS text), '%s', jsonb_build_object('orderId', :order, 'userId', :user, 'items', jsonb_build_array(jsonb_build_object('productDetailId', 1, 'quantity', 2))));
`, aggregateKeys, event.AggregateOrder, event.TypeOrderPaid)
}

// pgbenchRun is what pgbench reports.
type pgbenchRun struct {
	processed int
	tps       float64
	elapsed   time.Duration
	output    string
}

var (
	processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	tpsRe       = regexp.MustCompile(`tps = ([0-9.]+)`)
)

// pgbench runs pgbench with the outbox script against the bench database,
// with args (-t, -T, -R ...) after the common ones.
func pgbench(ctx context.Context, tools pgTools, dbURL, tmp string, clients int, args ...string) (pgbenchRun, error) {
	script := filepath.Join(tmp, "outbox.sql")
	if err := os.WriteFile(script, []byte(outboxScript()), 0o644); err != nil {
		return pgbenchRun{}, fmt.Errorf("write pgbench script: %w", err)
	}
	host, port, user, db, err := splitURL(dbURL)
	if err != nil {
		return pgbenchRun{}, err
	}
	all := append([]string{"-n", "-h", host, "-p", port, "-U", user,
		"-c", strconv.Itoa(clients), "-j", strconv.Itoa(max(1, clients/2)), "-f", script}, args...)
	all = append(all, db)
	cmd := exec.Command(tools.pgbench, all...)
	cmd.Env = clientEnv()
	if u, err := url.Parse(dbURL); err == nil {
		if pw, ok := u.User.Password(); ok { // the cluster asks for a password (scram-sha-256)
			cmd.Env = append(cmd.Env, "PGPASSWORD="+pw)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	c, err := startChild("pgbench", cmd)
	if err != nil {
		return pgbenchRun{}, err
	}
	if err := c.wait(ctx); err != nil {
		return pgbenchRun{}, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 20))
	}
	run := pgbenchRun{elapsed: time.Since(start), output: out.String()}
	m := processedRe.FindStringSubmatch(run.output)
	if m == nil {
		return run, fmt.Errorf("pgbench: no transaction count in its output:\n%s", tail(run.output, 20))
	}
	run.processed, _ = strconv.Atoi(m[1])
	if m := tpsRe.FindStringSubmatch(run.output); m != nil {
		run.tps, _ = strconv.ParseFloat(m[1], 64)
	}
	return run, nil
}

// splitURL splits a postgres:// URL into pgbench's connection options.
func splitURL(dbURL string) (host, port, user, db string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", "", "", fmt.Errorf("database URL: %w", err)
	}
	return u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), nil
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
	perClient := strconv.Itoa(o.events / o.clients)
	run, err := pgbench(ctx, tools, env.url, tmp, o.clients, "-t", perClient)
	if err != nil {
		return backlogResult{}, fmt.Errorf("build backlog: %w", err)
	}
	rows, err := env.outboxRows(ctx)
	if err != nil {
		return backlogResult{}, err
	}
	if rows != o.events || run.processed != o.events {
		return backlogResult{}, fmt.Errorf("build backlog: pgbench processed %d transactions and the outbox holds %d rows, want %d",
			run.processed, rows, o.events)
	}
	end, err := env.currentLSN(ctx)
	if err != nil {
		return backlogResult{}, err
	}
	log.Info("backlog built", "rows", rows, "took", run.elapsed.Round(time.Millisecond), "end_lsn", end.String())
	return backlogResult{events: rows, elapsed: run.elapsed, tps: run.tps, endLSN: end}, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
