package chaos

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[Kind]int
		wantErr string
	}{
		{"", map[Kind]int{}, ""},
		{"kill-api=2, restart-kafka=1", map[Kind]int{KillAPI: 2, RestartKafka: 1}, ""},
		{"kill-api=0", map[Kind]int{KillAPI: 0}, ""},
		{"kill-everything=1", nil, "unknown fault kind"},
		{"kill-api", nil, "want kind=count"},
		{"kill-api=-1", nil, "want kind=count"},
		{"kill-api=x", nil, "want kind=count"},
		{"kill-api=101", nil, "want kind=count"},
	} {
		got, err := ParseSchedule(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSchedule(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseSchedule(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for k, n := range tc.want {
			if got[k] != n {
				t.Errorf("ParseSchedule(%q)[%s] = %d, want %d", tc.in, k, got[k], n)
			}
		}
	}
}

// The schedule is the seed's: the same seed gives the same faults at the
// same times, inside the run's middle, in time order.
func TestScheduleIsSeededAndBounded(t *testing.T) {
	counts := DefaultFaults()
	a := schedule(counts, 10*time.Minute, rand.New(rand.NewPCG(7, 7)))
	b := schedule(counts, 10*time.Minute, rand.New(rand.NewPCG(7, 7)))
	c := schedule(counts, 10*time.Minute, rand.New(rand.NewPCG(8, 8)))
	total := 0
	for _, n := range counts {
		total += n
	}
	if len(a) != total {
		t.Fatalf("%d faults, want %d", len(a), total)
	}
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, fault %d differs: %+v vs %+v", i, a[i], b[i])
		}
		if a[i] != c[i] {
			same = false
		}
		if a[i].at < time.Minute || a[i].at > 8*time.Minute || (i > 0 && a[i].at < a[i-1].at) {
			t.Errorf("fault %d at %v: want inside [1m, 8m], in order", i, a[i].at)
		}
	}
	if same {
		t.Error("another seed gave the same schedule")
	}
}

// runShort builds the binary and runs a short profile with cfg's duration,
// faults, replicas and drain, and the short profiles' other settings (seed
// 42, 4 payments/s); it fails the test, with the processes' logs, unless
// every invariant held, and returns the report.
func runShort(t *testing.T, cfg Config) *Report {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "outboxpay")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/outboxpay/outboxpay/cmd/outboxpay").CombinedOutput(); err != nil {
		t.Fatalf("build outboxpay: %v\n%s", err, out)
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cfg.Binary, cfg.Dir, cfg.Seed, cfg.Rate = bin, filepath.Join(dir, "run"), 42, 4
	cfg.StuckAfter, cfg.Pause, cfg.Degrade, cfg.ConvergeTimeout = 8*time.Second, 30*time.Second, 10*time.Second, 3*time.Minute
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	report, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	var out bytes.Buffer
	report.Print(&out)
	t.Log("\n" + out.String())
	if !report.OK() {
		dumpLogs(t, filepath.Join(dir, "run", "logs"))
		t.Fatalf("invariants broken\n%s", logs.String())
	}
	return report
}

// The short, fixed-seed profile of `make chaos`: every kind of fault once,
// under load, then every invariant must hold.
func TestShortProfile(t *testing.T) {
	faults := map[Kind]int{}
	for _, k := range Kinds {
		if k != KillMidRebalance { // needs replicas: TestShortReplicasProfile
			faults[k] = 1
		}
	}
	report := runShort(t, Config{Duration: 90 * time.Second, Faults: faults})
	if report.Payments == 0 || report.Refunds == 0 || report.DuplicatesApplied != 0 {
		t.Errorf("payments %d, refunds %d, duplicates applied %d: want payments, refunds and no duplicate applied",
			report.Payments, report.Refunds, report.DuplicatesApplied)
	}
}

// The short replicas profile: two processes of each consumer group and two
// API instances on one database, a replica of each kind killed, one killed
// while its group rebalances, then a small throughput phase; every
// invariant must hold and every replica must have handled records.
func TestShortReplicasProfile(t *testing.T) {
	faults := map[Kind]int{KillStock: 1, KillDataPlatform: 1, KillTracker: 1, KillAPI: 1, KillMidRebalance: 1}
	report := runShort(t, Config{Duration: 60 * time.Second, Faults: faults, Replicas: 2, DrainPayments: 100})
	if report.Payments == 0 || report.DuplicatesApplied != 0 || report.Replicas != 2 {
		t.Errorf("payments %d, duplicates applied %d, replicas %d: want payments, no duplicate applied, 2 replicas",
			report.Payments, report.DuplicatesApplied, report.Replicas)
	}
	for group, reps := range report.Shares {
		if len(reps) != 2 {
			t.Errorf("group %s: %d replicas reported, want 2", group, len(reps))
		}
	}
	if len(report.Shares) != 3 {
		t.Errorf("shares of %d groups, want 3", len(report.Shares))
	}
	if len(report.Drains) != 2 || report.Drains[0].Replicas != 1 || report.Drains[1].Replicas != 2 {
		t.Fatalf("drains %+v: want a pass with 1 replica, then one with 2", report.Drains)
	}
	for _, d := range report.Drains {
		for _, g := range d.Groups {
			if d.Payments < 100 || g.Events == 0 || g.Rate() <= 0 || len(g.PerReplica) != d.Replicas {
				t.Errorf("drain with %d replicas, %d payments: group %s %d events at %.1f/s by %v: want 100 payments drained, a count per replica",
					d.Replicas, d.Payments, g.Group, g.Events, g.Rate(), g.PerReplica)
			}
			for name, n := range g.PerReplica {
				if n == 0 {
					t.Errorf("drain with %d replicas: %s handled no record of the backlog, want the group to share it", d.Replicas, name)
				}
			}
		}
	}
}

// A mid-rebalance kill needs replicas to kill.
func TestMidRebalanceNeedsReplicas(t *testing.T) {
	_, err := Run(t.Context(), Config{Binary: "outboxpay", Dir: t.TempDir(), Duration: time.Minute, Rate: 1,
		Faults: map[Kind]int{KillMidRebalance: 1}})
	if err == nil || !strings.Contains(err.Error(), "needs Replicas >= 2") {
		t.Fatalf("Run with %s and one replica: %v, want an error", KillMidRebalance, err)
	}
}

// dumpLogs prints the tail of every process log, for a failed run.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("--- %s (tail)\n%s", filepath.Base(f), b)
	}
}

// An interrupted run stops every process it started, Postgres included.
func TestInterruptedRunStopsEverything(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "outboxpay")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/outboxpay/outboxpay/cmd/outboxpay").CombinedOutput(); err != nil {
		t.Fatalf("build outboxpay: %v\n%s", err, out)
	}
	runDir := filepath.Join(dir, "run")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		report *Report
		err    error
	}
	done := make(chan result, 1)
	go func() {
		r, err := Run(ctx, Config{Binary: bin, Dir: runDir, Duration: 10 * time.Minute, Seed: 1, Rate: 2,
			Faults: DefaultFaults(), StuckAfter: 10 * time.Second, Pause: 45 * time.Second, Degrade: 20 * time.Second,
			ConvergeTimeout: time.Minute})
		done <- result{r, err}
	}()
	// Interrupt once the load runs: the API has taken payments.
	pidFile := filepath.Join(runDir, "postgres", "postmaster.pid")
	deadline := time.Now().Add(2 * time.Minute)
	for !processRuns(bin) || !fileHas(filepath.Join(runDir, "logs", "api.log"), `"status":201`) {
		if time.Now().After(deadline) {
			t.Fatal("the run did not get to its load within 2 minutes")
		}
		select {
		case r := <-done:
			t.Fatalf("run ended before the interrupt: %v", r.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	pg, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case r := <-done:
		if r.err == nil || !strings.Contains(r.err.Error(), "interrupted") {
			t.Errorf("interrupted run: %v, want an interrupted error", r.err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not stop within 2 minutes of the interrupt")
	}
	if processRuns(bin) {
		t.Error("an outboxpay process still runs after the run returned")
	}
	var pid int
	if _, err := fmt.Sscan(string(pg), &pid); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("postgres (pid %d) still runs after the run returned", pid)
	}
}

// processRuns reports whether a process runs the executable at path.
func processRuns(path string) bool {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && target == path {
			return true
		}
	}
	return false
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

// poll returns once the condition holds, and otherwise, when its timeout
// passes or its context ends, an error naming what it awaited and the
// condition's last error.
func TestPoll(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		trueOn  int // the call on which the condition first holds; 0: never
		wantErr []string
	}{
		{"at once", context.Background(), 1, nil},
		{"on the third call", context.Background(), 3, nil},
		{"never", context.Background(), 0, []string{"the thing: not within 1s", "last error: call"}},
		{"context ended", canceled, 0, []string{"the thing: not within 1s", "last error: call 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := poll(tc.ctx, time.Second, "the thing", func() (bool, error) {
				calls++
				return calls == tc.trueOn, fmt.Errorf("call %d", calls)
			})
			if tc.wantErr == nil {
				if err != nil || calls != tc.trueOn {
					t.Fatalf("poll: %v after %d calls, want nil after %d", err, calls, tc.trueOn)
				}
				return
			}
			if err == nil {
				t.Fatalf("poll: nil after %d calls, want an error", calls)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("poll: %q, want it to hold %q", err, want)
				}
			}
		})
	}
}
