package chaos

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// The short, fixed-seed profile of `make chaos`: every kind of fault once,
// under load, then every invariant must hold.
func TestShortProfile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "outboxpay")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/outboxpay").CombinedOutput(); err != nil {
		t.Fatalf("build outboxpay: %v\n%s", err, out)
	}
	faults := map[Kind]int{}
	for _, k := range Kinds {
		faults[k] = 1
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	report, err := Run(ctx, Config{
		Binary: bin, Dir: filepath.Join(dir, "run"), Duration: 90 * time.Second, Seed: 42, Rate: 4,
		Faults: faults, StuckAfter: 8 * time.Second, Pause: 30 * time.Second, Degrade: 10 * time.Second,
		ConvergeTimeout: 3 * time.Minute,
		Logger:          slog.New(slog.NewTextHandler(&logs, nil)),
	})
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
	if report.Payments == 0 || report.Refunds == 0 || report.DuplicatesApplied != 0 {
		t.Errorf("payments %d, refunds %d, duplicates applied %d: want payments, refunds and no duplicate applied",
			report.Payments, report.Refunds, report.DuplicatesApplied)
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
