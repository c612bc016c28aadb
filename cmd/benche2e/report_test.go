package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/benchconsole"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		ds := make([]time.Duration, len(vs))
		for i, v := range vs {
			ds[i] = time.Duration(v) * time.Millisecond
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"median of odd count", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100 is the maximum", ms(3, 9, 1), 100, 9 * time.Millisecond},
		{"p99 of two values is the larger", ms(1, 1000), 99, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.ds, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestKeptUp(t *testing.T) {
	good := rateResult{offered: 100, sent: 2000, ok: 2000, apiP99: 20 * time.Millisecond,
		events: 4000, complete: 4000, c2cP99: 60 * time.Millisecond}
	for _, tc := range []struct {
		name        string
		change      func(*rateResult)
		clean, kept bool
	}{
		{"all good", func(*rateResult) {}, true, true},
		{"one failure", func(r *rateResult) { r.ok--; r.events -= 2; r.complete -= 2 }, false, false},
		{"API p99 at the bound", func(r *rateResult) { r.apiP99 = keepUpP99 }, false, false},
		{"COMPLETE p99 at the bound", func(r *rateResult) { r.c2cP99 = keepUpP99 }, true, false},
		{"an event never completed", func(r *rateResult) { r.complete-- }, true, false},
		{"events missing", func(r *rateResult) { r.events -= 2; r.complete -= 2 }, true, false},
		{"nothing sent", func(r *rateResult) { *r = rateResult{offered: 100} }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			if got := r.apiClean(); got != tc.clean {
				t.Errorf("apiClean() = %v, want %v", got, tc.clean)
			}
			if got := r.keptUp(); got != tc.kept {
				t.Errorf("keptUp() = %v, want %v", got, tc.kept)
			}
		})
	}
}

func TestPgPart(t *testing.T) {
	for _, tc := range []struct{ typ, app, want string }{
		{"client backend", "outboxpay-api", "pg backend outboxpay-api"},
		{"client backend", "", "pg backend (no application_name)"},
		{"walsender", "outboxpay-cdc", "pg walsender"},
		{"autovacuum worker", "", "pg autovacuum"},
		{"autovacuum launcher", "", "pg autovacuum"},
		{"checkpointer", "", "pg checkpointer"},
		{"walwriter", "", "pg walwriter"},
		{"", "", "pg unidentified"},
	} {
		if got := pgPart(tc.typ, tc.app); got != tc.want {
			t.Errorf("pgPart(%q, %q) = %q, want %q", tc.typ, tc.app, got, tc.want)
		}
	}
	for _, tc := range []struct {
		title      string
		postmaster bool
		want       string
	}{
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/tmp/d\x00", true, "pg postmaster"},
		{"postgres: walwriter \x00", false, "pg walwriter"},
		{"postgres: checkpointer ", false, "pg checkpointer"},
		{"postgres: walsender outboxpay_cdc 127.0.0.1(5432) START_REPLICATION", false, "pg walsender"},
		{"postgres: autovacuum worker outboxpay", false, "pg autovacuum"},
		{"postgres: outboxpay_api outboxpay 127.0.0.1(40000) idle", false, "pg backend of role outboxpay_api (gone before a sample)"},
		{"something else", false, "pg unidentified"},
	} {
		if got := pgPartOfTitle([]byte(tc.title), tc.postmaster); got != tc.want {
			t.Errorf("pgPartOfTitle(%q) = %q, want %q", tc.title, got, tc.want)
		}
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := cpuSnapshot{at: t0, busy: time.Second, bench: 100 * time.Millisecond, dev: time.Second,
		pg: map[string]time.Duration{"pg walsender": 0}}
	b := cpuSnapshot{at: t0.Add(2 * time.Second), busy: 4 * time.Second, bench: 300 * time.Millisecond, dev: 2 * time.Second,
		pg: map[string]time.Duration{"pg walsender": 400 * time.Millisecond, "pg backend outboxpay-api": time.Second, "pg backend benche2e": 200 * time.Millisecond}}
	w := window(a, b)
	want := map[string]float64{partBench: 0.1, partDev: 0.5, "pg walsender": 0.2, "pg backend outboxpay-api": 0.5, "pg backend benche2e": 0.1}
	for p, v := range want {
		if !near(w.parts[p], v) {
			t.Errorf("%s = %v, want %v", p, w.parts[p], v)
		}
	}
	if !near(w.pg, 0.8) || !near(w.busy, 1.5) || !near(w.other(), 0.1) || w.elapsed != 2*time.Second {
		t.Errorf("pg %v, busy %v, other %v over %v; want 0.8, 1.5, 0.1 over 2s", w.pg, w.busy, w.other(), w.elapsed)
	}
	if got := sortedParts([]cpuWindow{w}); strings.Join(got, "|") != partBench+"|"+partDev+"|pg backend benche2e|pg backend outboxpay-api|pg walsender" {
		t.Errorf("sortedParts = %q", got)
	}

	r := rateResult{ok: 400}
	r.perPayment(w)
	// Postgres without the bench's sessions: 0.7 CPU-s/s over 2 s for 400 payments.
	if !near(r.pgPer1k, 3.5) || !near(r.devPer1k, 2.5) {
		t.Errorf("per 1,000 payments: pg %v, dev %v; want 3.5, 2.5", r.pgPer1k, r.devPer1k)
	}
	r = rateResult{}
	r.perPayment(w)
	if r.pgPer1k != -1 || r.devPer1k != -1 {
		t.Errorf("per 1,000 of no payments: pg %v, dev %v; want -1 (unknown)", r.pgPer1k, r.devPer1k)
	}
	if u := window(cpuSnapshot{unknown: true}, b); !u.unknown {
		t.Error("a window from an unknown snapshot is known")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestReport(t *testing.T) {
	rep := report{pgVersion: "15.8", cpus: 2, rates: []rateResult{
		{offered: 100, duration: 20 * time.Second, sent: 2000, ok: 2000, codes: map[int]int{201: 2000},
			sentRate: 100, okRate: 100, apiP50: 4 * time.Millisecond, apiP99: 12 * time.Millisecond,
			events: 4000, complete: 4000, c2cP50: 15 * time.Millisecond, c2cP99: 67 * time.Millisecond, devRSS: 150 << 20, load: 1.5,
			groups: []groupRate{{"data-platform", 2000, 101.4}, {"stock", 2000, 100.2}}},
		{offered: 200, duration: 20 * time.Second, sent: 4000, ok: 3990, codes: map[int]int{201: 3990, 0: 4, 503: 6},
			sentRate: 200, okRate: 199.5, apiP50: 5 * time.Millisecond, apiP99: 300 * time.Millisecond,
			events: 7980, complete: 7980, c2cP50: 94 * time.Millisecond, c2cP99: 1850 * time.Millisecond},
	}, sql: &sqlResult{clients: 8, duration: 20 * time.Second, tps: 1000, payments: 20000},
		stmts: &statementStats{payments: 2000, product: 3 * time.Second, bench: time.Second, others: 12, top: []statement{
			{role: "outboxpay_api", query: "UPDATE users SET balance = balance - $1 WHERE id = $2 " + strings.Repeat("x", 100), calls: 2000, total: 1500 * time.Millisecond, mean: 750 * time.Microsecond},
		}}}
	rep.rates[0].cpu = cpuWindow{elapsed: 20 * time.Second, parts: map[string]float64{partBench: 0.1, partDev: 0.5, "pg walsender": 0.05}, pg: 0.05, busy: 1}
	rep.rates[0].pgPer1k, rep.rates[0].devPer1k = 0.5, 5
	rep.rates[1].cpu = cpuWindow{unknown: true}
	var b bytes.Buffer
	rep.print(&b)
	out := b.String()
	for _, want := range []string{
		"API_RATE_LIMIT=0",
		"console: none open (-console opens one)",
		"outbox.completed_at - outbox.created_at",
		"201:2000",
		"none:4 201:3990 503:6",
		"67.0",
		"1850.0",
		"highest rate the whole pipeline kept up with (100 % success, API p99 and commit-to-COMPLETE p99 < 100ms, all COMPLETE): 100/s",
		"highest clean API rate (100 % success, API p99 < 100ms): 100/s",
		"8 clients for 20s: 1000 tps (20000 payments)",
		"API / SQL = 100 / 1000 = 0.10 (the highest clean API rate)",
		"    100/s: data-platform 101/s (2000), stock 100/s (2000)",
		"latency average 0.0 ms",
		"top 1 statements by total execution time over the rates (pg_stat_statements, reset after the warm-up; 2000 payments): the product's statements took 3.0 s,",
		"12 more not shown; the bench's own queries (role postgres), left out, 1.0 s",
		"outboxpay_api  2000   1.00           1.50     0.750    0.750       UPDATE users SET balance = balance - $1 WHERE id = $2 xxx",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "100" {
			row = f
		}
	}
	want := []string{"100", "100.0", "100.0", "100.00", "4.0", "12.0", "4000", "4000", "15.0", "67.0", "0.0", "0.50", "0.05", "5.00", "0.50", "150", "1.50", "yes", "201:2000"}
	if strings.Join(row, " ") != strings.Join(want, " ") {
		t.Errorf("row of 100/s = %q, want %q", row, want)
	}
	// The CPU table: one column per rate, n/a where unknown.
	for name, want := range map[string]string{
		"pg walsender": "0.05 n/a",
		"pg total":     "0.05 n/a",
		"other":        "0.35 n/a",
		"machine busy": "1.00 n/a",
		"machine idle": "1.00 n/a",
	} {
		var got string
		for _, line := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+"  "); ok {
				got = strings.Join(strings.Fields(rest), " ")
			}
		}
		if got != want {
			t.Errorf("CPU row %q = %q, want %q:\n%s", name, got, want, out)
		}
	}
	if strings.Contains(out, "stopped rising") {
		t.Errorf("report says the rates stopped early:\n%s", out)
	}

	none := report{rates: []rateResult{rep.rates[1]}, stopped: "200/s did not drain in 3m0s", sql: rep.sql,
		console: &benchconsole.Result{Live: benchconsole.Live{First: "live · 12:00:01", Last: "live · 12:01:55", Open: 115 * time.Second}, Polls: benchconsole.Polls{OK: 57, Failed: 1}}}
	b.Reset()
	none.print(&b)
	for _, want := range []string{`console: open in headless chromium on its summary view for 1m55s: 57 GET /ops/summary answered 200, 1 not (the page polls every 2 s); its live indicator went from "live · 12:00:01" to "live · 12:01:55"`, "kept up with none of the rates", "rates stopped rising: 200/s did not drain in 3m0s",
		"API / SQL = 199.5 / 1000 = 0.20 (no rate was clean: the most 2xx/s of any rate)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
