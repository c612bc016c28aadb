package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
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

func TestPostgresCPU(t *testing.T) {
	s := func(m map[int]time.Duration) cpuSample { return cpuSample{postgres: m} }
	for _, tc := range []struct {
		name          string
		before, after cpuSample
		elapsed       time.Duration
		want          float64
	}{
		{"growth of the same processes", s(map[int]time.Duration{1: time.Second, 2: 2 * time.Second}),
			s(map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second}), 2 * time.Second, 1.5},
		{"a backend started since counts whole, one that exited is left out",
			s(map[int]time.Duration{1: time.Second, 2: 5 * time.Second}),
			s(map[int]time.Duration{1: 2 * time.Second, 3: time.Second}), time.Second, 2},
		{"unknown before", cpuSample{}, s(map[int]time.Duration{1: time.Second}), time.Second, -1},
		{"unknown after", s(map[int]time.Duration{1: time.Second}), cpuSample{}, time.Second, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.after.postgresCPU(tc.before, tc.elapsed); got != tc.want {
				t.Errorf("postgresCPU = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReport(t *testing.T) {
	rep := report{pgVersion: "15.8", cpus: 2, rates: []rateResult{
		{offered: 100, duration: 20 * time.Second, sent: 2000, ok: 2000, codes: map[int]int{201: 2000},
			sentRate: 100, okRate: 100, apiP50: 4 * time.Millisecond, apiP99: 12 * time.Millisecond,
			events: 4000, complete: 4000, c2cP50: 15 * time.Millisecond, c2cP99: 67 * time.Millisecond, devRSS: 150 << 20, load: 1.5,
			groups: []groupRate{{"data-platform", 2000, 101.4}, {"stock", 2000, 100.2}}},
		{offered: 200, duration: 20 * time.Second, sent: 4000, ok: 3990, codes: map[int]int{201: 3990, 0: 4, 503: 6},
			sentRate: 200, okRate: 199.5, apiP50: 5 * time.Millisecond, apiP99: 300 * time.Millisecond,
			events: 7980, complete: 7980, c2cP50: 94 * time.Millisecond, c2cP99: 1850 * time.Millisecond},
	}, sql: &sqlResult{clients: 8, duration: 20 * time.Second, tps: 1000, payments: 20000}}
	var b bytes.Buffer
	rep.print(&b)
	out := b.String()
	for _, want := range []string{
		"API_RATE_LIMIT=0",
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
	want := []string{"100", "100.0", "100.0", "100.00", "4.0", "12.0", "4000", "4000", "15.0", "67.0", "0.0", "0.00", "0.00", "150", "1.50", "yes", "201:2000"}
	if strings.Join(row, " ") != strings.Join(want, " ") {
		t.Errorf("row of 100/s = %q, want %q", row, want)
	}
	if strings.Contains(out, "stopped rising") {
		t.Errorf("report says the rates stopped early:\n%s", out)
	}

	none := report{rates: []rateResult{rep.rates[1]}, stopped: "200/s did not drain in 3m0s", sql: rep.sql}
	b.Reset()
	none.print(&b)
	for _, want := range []string{"kept up with none of the rates", "rates stopped rising: 200/s did not drain in 3m0s",
		"API / SQL = 199.5 / 1000 = 0.20 (no rate was clean: the most 2xx/s of any rate)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
