// Package pgbenchrun runs pgbench, PostgreSQL's load generator, with a
// custom script against a database given by URL, and reads its summary:
// the one runner of the benchmarks (make bench-e2e, make bench-cdc).
//
// pgbench runs as a child that this process owns: in its own process group,
// on Linux killed with this process, stopped when the context ends. Its
// environment is this process's without PG* variables (nothing may steer it
// to another server), plus PGPASSWORD from the URL, if it has one.
package pgbenchrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
)

// stopGrace is how long pgbench gets to exit after SIGTERM when the context
// ends, before it is killed.
const stopGrace = 10 * time.Second

// Options are one pgbench run. Exactly one of Duration and Transactions is set.
type Options struct {
	// Program is the pgbench to run; "" is the one next to the server
	// programs pgcluster runs (pgcluster.BinDir).
	Program string
	// URL is the database: postgres://user[:password]@host:port/dbname.
	URL string
	// Script is the path of the script file (-f).
	Script string
	// Clients is the number of clients (-c), at least 1; Threads (-j) is
	// max(1, Clients/2) when 0.
	Clients, Threads int
	// Duration (-T, whole seconds, at least 1) or Transactions per client (-t).
	Duration     time.Duration
	Transactions int
	// Rate throttles to this many transactions per second in all (-R); 0:
	// as fast as possible.
	Rate int
	// Protocol is the query protocol (-M): "simple" (the default when ""),
	// "extended" (as lib/pq) or "prepared".
	Protocol string
	// Vars are the script's variables (-D name=value).
	Vars map[string]string
}

// Result is pgbench's summary of a run.
type Result struct {
	Processed int           // transactions actually processed
	Failed    int           // failed transactions (pgbench 15 and later; 0 if not reported)
	TPS       float64       // transactions per second, without the initial connection time
	Latency   time.Duration // average latency of a transaction; 0 if not reported
	Elapsed   time.Duration // from start to exit, as this process measured it
	Output    string        // everything pgbench printed
}

// ErrNoSummary is returned when pgbench exited successfully but printed no
// transaction count or tps.
var ErrNoSummary = errors.New("pgbench printed no summary")

// args are the command-line arguments of o (without the program), and the
// password of its URL, if any.
func (o Options) args() (args []string, password string, err error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		// The error would quote the URL, password included.
		return nil, "", errors.New("pgbench: the database URL is not a postgres:// URL")
	}
	switch {
	case o.Script == "":
		return nil, "", errors.New("pgbench: no script")
	case o.Clients < 1:
		return nil, "", fmt.Errorf("pgbench: %d clients, want at least 1", o.Clients)
	case (o.Duration > 0) == (o.Transactions > 0):
		return nil, "", errors.New("pgbench: set exactly one of a duration and a transaction count")
	case o.Duration > 0 && o.Duration < time.Second:
		return nil, "", fmt.Errorf("pgbench: duration %v, want at least 1s", o.Duration)
	case o.Rate < 0:
		return nil, "", fmt.Errorf("pgbench: rate %d, want 0 or more", o.Rate)
	}
	threads := o.Threads
	if threads <= 0 {
		threads = max(1, o.Clients/2)
	}
	args = []string{"-n", "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(),
		"-c", strconv.Itoa(o.Clients), "-j", strconv.Itoa(threads), "-f", o.Script}
	if o.Duration > 0 {
		args = append(args, "-T", strconv.Itoa(int(o.Duration.Seconds())))
	} else {
		args = append(args, "-t", strconv.Itoa(o.Transactions))
	}
	if o.Rate > 0 {
		args = append(args, "-R", strconv.Itoa(o.Rate))
	}
	if o.Protocol != "" {
		args = append(args, "-M", o.Protocol)
	}
	names := make([]string, 0, len(o.Vars))
	for name := range o.Vars {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		args = append(args, "-D", name+"="+o.Vars[name])
	}
	args = append(args, strings.TrimPrefix(u.Path, "/"))
	password, _ = u.User.Password()
	return args, password, nil
}

// env is environ without PG* variables, plus PGPASSWORD=password if set.
func env(environ []string, password string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	if password != "" {
		out = append(out, "PGPASSWORD="+password)
	}
	return out
}

// Run runs pgbench as o says and returns its summary. A failed run's error
// holds the end of pgbench's output (which never holds the password). When
// ctx ends, pgbench is stopped (SIGTERM, then SIGKILL after 10 s) and ctx's
// error returned.
func Run(ctx context.Context, o Options) (Result, error) {
	args, password, err := o.args()
	if err != nil {
		return Result{}, err
	}
	prog := o.Program
	if prog == "" {
		dir, err := pgcluster.BinDir()
		if err != nil {
			return Result{}, fmt.Errorf("pgbench: %w", err)
		}
		prog = filepath.Join(dir, "pgbench")
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = env(os.Environ(), password)
	cmd.SysProcAttr = sysProcAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	p, err := pgcluster.StartProcess(cmd, nil)
	if err != nil {
		return Result{}, fmt.Errorf("start pgbench: %w", err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(stopGrace):
			_ = p.Kill()
			<-p.Done()
		}
		return Result{}, fmt.Errorf("pgbench: %w", ctx.Err())
	}
	elapsed := time.Since(start)
	// p.Done is closed: the output is complete.
	if err := p.Err(); err != nil {
		return Result{}, fmt.Errorf("pgbench: %w\n%s", err, tail(out.String(), 20))
	}
	res, err := Parse(out.String())
	if err != nil {
		return Result{}, err
	}
	res.Elapsed = elapsed
	return res, nil
}

var (
	processedRe = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	failedRe    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	tpsRe       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	latencyRe   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// Parse reads pgbench's summary from its output: the transactions
// processed are required (ErrNoSummary otherwise), and so is the tps unless
// none were (pgbench prints none then); the failed transactions and the
// average latency are read when present.
func Parse(out string) (Result, error) {
	res := Result{Output: out}
	m := processedRe.FindStringSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("%w:\n%s", ErrNoSummary, tail(out, 20))
	}
	var err error
	if res.Processed, err = strconv.Atoi(m[1]); err != nil {
		return res, fmt.Errorf("pgbench: transaction count %q: %w", m[1], err)
	}
	t := tpsRe.FindStringSubmatch(out)
	if t == nil && res.Processed > 0 {
		return res, fmt.Errorf("%w (no tps):\n%s", ErrNoSummary, tail(out, 20))
	}
	if t != nil {
		if res.TPS, err = strconv.ParseFloat(t[1], 64); err != nil {
			return res, fmt.Errorf("pgbench: tps %q: %w", t[1], err)
		}
	}
	if f := failedRe.FindStringSubmatch(out); f != nil {
		res.Failed, _ = strconv.Atoi(f[1])
	}
	if l := latencyRe.FindStringSubmatch(out); l != nil {
		ms, _ := strconv.ParseFloat(l[1], 64)
		res.Latency = time.Duration(ms * float64(time.Millisecond))
	}
	return res, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
