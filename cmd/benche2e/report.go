package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/benchconsole"
)

// keepUpP99 is the bound on commit-to-COMPLETE p99 (and API p99) under which
// a rate counts as kept up with.
const keepUpP99 = 100 * time.Millisecond

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it. It sorts ds in place; it returns 0 for no values.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	rank = min(max(rank, 1), len(ds))
	return ds[rank-1]
}

// rateResult is what one offered rate gave.
type rateResult struct {
	offered  int           // requests/s offered (open loop)
	duration time.Duration // how long they were offered
	sent     int           // requests sent
	ok       int           // 2xx answers
	codes    map[int]int   // answers by status code (0: no answer)
	sentRate float64       // requests/s actually sent
	okRate   float64       // 2xx answers/s over the attack
	apiP50   time.Duration // latency of every request
	apiP99   time.Duration
	events   int           // outbox rows of the rate's orders
	complete int           // of which COMPLETE when the drain wait ended
	c2cP50   time.Duration // created_at -> completed_at of COMPLETE rows
	c2cP99   time.Duration
	drain    time.Duration // from the last answer to every row COMPLETE
	cpu      cpuWindow     // where the CPU went during the attack
	pgPer1k  float64       // Postgres CPU-seconds per 1,000 2xx payments, attack and drain, the bench's own sessions left out; -1: unknown
	devPer1k float64       // dev's, likewise
	devRSS   int64         // dev's RSS after the attack, bytes
	groups   []groupRate   // by group name
	load     float64       // the machine's 1-minute load average after the attack; -1: unknown
}

// perPayment sets pgPer1k and devPer1k from w, the CPU from the start of
// the attack until every event was COMPLETE (or the drain wait ended).
func (r *rateResult) perPayment(w cpuWindow) {
	r.pgPer1k, r.devPer1k = -1, -1
	if w.unknown || r.ok == 0 {
		return
	}
	secs := w.elapsed.Seconds()
	r.pgPer1k = (w.pg - w.parts[pgPart("client backend", benchAppName)]) * secs / float64(r.ok) * 1000
	r.devPer1k = w.parts[partDev] * secs / float64(r.ok) * 1000
}

// devCPU and postgresCPU are dev's and Postgres's CPU-seconds per second
// during the attack; -1: unknown.
func (r rateResult) devCPU() float64 {
	if r.cpu.unknown {
		return -1
	}
	return r.cpu.parts[partDev]
}

func (r rateResult) postgresCPU() float64 {
	if r.cpu.unknown {
		return -1
	}
	return r.cpu.pg
}

// groupRate is how fast one consumer group handled a rate's events: their
// count over the time from its first to its last inbox row of them.
type groupRate struct {
	group     string
	events    int
	perSecond float64
}

// success is the share of requests answered 2xx, in percent.
func (r rateResult) success() float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * float64(r.ok) / float64(r.sent)
}

// apiClean reports whether every request succeeded with API p99 under keepUpP99.
func (r rateResult) apiClean() bool {
	return r.sent > 0 && r.ok == r.sent && r.apiP99 < keepUpP99
}

// keptUp reports whether the whole pipeline kept up: the API was clean,
// every event became COMPLETE, and commit-to-COMPLETE p99 stayed under
// keepUpP99.
func (r rateResult) keptUp() bool {
	return r.apiClean() && r.events == 2*r.ok && r.complete == r.events && r.c2cP99 < keepUpP99
}

// highest returns the highest offered rate whose result satisfies ok, and
// whether there is one.
func highest(rs []rateResult, ok func(rateResult) bool) (int, bool) {
	best, found := 0, false
	for _, r := range rs {
		if ok(r) && r.offered > best {
			best, found = r.offered, true
		}
	}
	return best, found
}

// bestServed is the most 2xx answers per second of any rate.
func bestServed(rs []rateResult) float64 {
	var best float64
	for _, r := range rs {
		best = max(best, r.okRate)
	}
	return best
}

// sqlResult is the pgbench run of the payment transaction.
type sqlResult struct {
	clients  int
	duration time.Duration
	tps      float64
	payments int
	latency  time.Duration // pgbench's average; 0: not reported
}

// report is the whole run.
type report struct {
	pgVersion string
	cpus      int
	rates     []rateResult
	sql       *sqlResult
	stmts     *statementStats      // pg_stat_statements over the rates; nil: not read
	stopped   string               // why the rates stopped rising early; "" if they did not
	console   *benchconsole.Result // dev's console, open through the rates; nil: none was
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

func cpu(c float64) string {
	if c < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", c)
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%d", b>>20)
}

func codes(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "none"
		}
		parts[i] = fmt.Sprintf("%s:%d", name, m[k])
	}
	return strings.Join(parts, " ")
}

// print writes the report's table and summary.
func (rep report) print(w io.Writer) {
	fmt.Fprintf(w, "\nbench-e2e: payments through `outboxpay dev` (API_RATE_LIMIT=0: the API's rate limit is off), PostgreSQL %s, %d CPUs\n", rep.pgVersion, rep.cpus)
	fmt.Fprintf(w, "console: %s\n", rep.console)
	fmt.Fprintf(w, "commit-to-COMPLETE: outbox.completed_at - outbox.created_at of each event (both now() of their transactions), from the database\n")
	fmt.Fprintf(w, "CPU/s: CPU-seconds per second during the load (pg: the postmaster and its children); CPU-s/1k: CPU-seconds per 1,000 2xx payments from the start of the load until every event was COMPLETE (pg: without the bench's own sessions); load1: the machine's 1-minute load average after it (%d CPUs: more means other work skewed the figures)\n\n", rep.cpus)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered/s\tsent/s\tok/s\tsuccess %\tAPI p50 ms\tAPI p99 ms\tevents\tCOMPLETE\tC2C p50 ms\tC2C p99 ms\tdrain s\tdev CPU/s\tpg CPU/s\tdev CPU-s/1k\tpg CPU-s/1k\tdev RSS MiB\tload1\tkept up\tanswers\t")
	for _, r := range rep.rates {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.2f\t%s\t%s\t%d\t%d\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.offered, r.sentRate, r.okRate, r.success(), ms(r.apiP50), ms(r.apiP99), r.events, r.complete,
			ms(r.c2cP50), ms(r.c2cP99), r.drain.Seconds(), cpu(r.devCPU()), cpu(r.postgresCPU()), cpu(r.devPer1k), cpu(r.pgPer1k),
			mib(r.devRSS), cpu(r.load), yesNo(r.keptUp()), codes(r.codes))
	}
	_ = tw.Flush()
	rep.printCPU(w)
	fmt.Fprintf(w, "\nconsumer groups: events handled/s, from each group's first to its last processed_events row of the rate's events\n")
	for _, r := range rep.rates {
		parts := make([]string, len(r.groups))
		for i, g := range r.groups {
			parts[i] = fmt.Sprintf("%s %.0f/s (%d)", g.group, g.perSecond, g.events)
		}
		fmt.Fprintf(w, "  %5d/s: %s\n", r.offered, strings.Join(parts, ", "))
	}
	rep.printStatements(w)
	if rep.stopped != "" {
		fmt.Fprintf(w, "\nrates stopped rising: %s\n", rep.stopped)
	}
	fmt.Fprintln(w)
	keep, keepOK := highest(rep.rates, rateResult.keptUp)
	clean, cleanOK := highest(rep.rates, rateResult.apiClean)
	if keepOK {
		fmt.Fprintf(w, "highest rate the whole pipeline kept up with (100 %% success, API p99 and commit-to-COMPLETE p99 < %v, all COMPLETE): %d/s\n", keepUpP99, keep)
	} else {
		fmt.Fprintf(w, "the pipeline kept up with none of the rates (100 %% success, API p99 and commit-to-COMPLETE p99 < %v, all COMPLETE)\n", keepUpP99)
	}
	if cleanOK {
		fmt.Fprintf(w, "highest clean API rate (100 %% success, API p99 < %v): %d/s\n", keepUpP99, clean)
	}
	if rep.sql != nil {
		fmt.Fprintf(w, "pgbench, the payment transaction's SQL (prepared statements, as shop.Pay), %d clients for %v: %.0f tps (%d payments), latency average %s ms\n",
			rep.sql.clients, rep.sql.duration, rep.sql.tps, rep.sql.payments, ms(rep.sql.latency))
		switch best := bestServed(rep.rates); {
		case rep.sql.tps <= 0:
		case cleanOK:
			fmt.Fprintf(w, "API / SQL = %d / %.0f = %.2f (the highest clean API rate)\n", clean, rep.sql.tps, float64(clean)/rep.sql.tps)
		case best > 0:
			fmt.Fprintf(w, "API / SQL = %.1f / %.0f = %.2f (no rate was clean: the most 2xx/s of any rate)\n", best, rep.sql.tps, best/rep.sql.tps)
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printCPU writes where the machine's CPU went during each rate's load.
func (rep report) printCPU(w io.Writer) {
	if len(rep.rates) == 0 {
		return
	}
	ws := make([]cpuWindow, len(rep.rates))
	for i, r := range rep.rates {
		ws[i] = r.cpu
	}
	fmt.Fprintf(w, "\nwhere the CPU went during the load, CPU-seconds per second (%d CPUs; /proc/<pid>/stat, sampled every %v: a Postgres process that exited\n", rep.cpus, cpuSampleEvery)
	fmt.Fprintf(w, "between samples counts up to its last one; what each does from pg_stat_activity, by application_name; other: the machine's\n")
	fmt.Fprintf(w, "busy time (/proc/stat) that none of these account for: other programs, the kernel)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "\t"
	for _, r := range rep.rates {
		head += fmt.Sprintf("%d/s\t", r.offered)
	}
	fmt.Fprintln(tw, head)
	row := func(name string, v func(cpuWindow) float64) {
		line := name + "\t"
		for _, cw := range ws {
			if cw.unknown {
				line += "n/a\t"
			} else {
				line += fmt.Sprintf("%.2f\t", v(cw))
			}
		}
		fmt.Fprintln(tw, line)
	}
	for _, p := range sortedParts(ws) {
		row(p, func(cw cpuWindow) float64 { return cw.parts[p] })
	}
	row("pg total", func(cw cpuWindow) float64 { return cw.pg })
	row("other", cpuWindow.other)
	row("machine busy", func(cw cpuWindow) float64 { return cw.busy })
	row("machine idle", func(cw cpuWindow) float64 { return float64(rep.cpus) - cw.busy })
	_ = tw.Flush()
}

// printStatements writes the top statements of pg_stat_statements.
func (rep report) printStatements(w io.Writer) {
	st := rep.stmts
	if st == nil || len(st.top) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntop %d statements by total execution time over the rates (pg_stat_statements, reset after the warm-up; %d payments): the product's statements took %.1f s,\n",
		len(st.top), st.payments, st.product.Seconds())
	fmt.Fprintf(w, "%d more not shown; the bench's own queries (role %s), left out, %.1f s\n", st.others, superuser, st.bench.Seconds())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "role\tcalls\tcalls/payment\ttotal s\tmean ms\tms/payment\tstatement\t")
	for _, s := range st.top {
		perPay, msPerPay := "n/a", "n/a"
		if st.payments > 0 {
			perPay = fmt.Sprintf("%.2f", float64(s.calls)/float64(st.payments))
			msPerPay = fmt.Sprintf("%.3f", float64(s.total)/float64(time.Millisecond)/float64(st.payments))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%.3f\t%s\t%s\t\n", s.role, s.calls, perPay, s.total.Seconds(),
			float64(s.mean)/float64(time.Millisecond), msPerPay, shorten(s.query, 110))
	}
	_ = tw.Flush()
}

// shorten cuts s to at most n runes, marking a cut with "...".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
