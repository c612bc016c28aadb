package reconcile_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

// leaderConfig is fast: cycles 50ms apart, rows republished every 200ms,
// attempts never exhausted within a test.
var leaderConfig = reconcile.Config{
	Interval:            50 * time.Millisecond,
	StuckAfter:          100 * time.Millisecond,
	RepublishAfter:      200 * time.Millisecond,
	PublishedStuckAfter: 200 * time.Millisecond,
	MaxAttempts:         1_000_000,
}

func TestOnlyOneLeaderActs(t *testing.T) {
	r := newRig(t)
	r.insert(1)
	a, regA := r.reconciler(leaderConfig, nil)
	b, regB := r.reconciler(leaderConfig, nil)
	actions := func(reg *prometheus.Registry) float64 {
		return promtest.Value(t, reg, "outboxpay_reconciler_actions_total")
	}
	cycles := func(reg *prometheus.Registry) float64 {
		return promtest.Value(t, reg, "outboxpay_reconciler_cycle_seconds")
	}
	leaders := func() (float64, float64) {
		return promtest.Value(t, regA, "outboxpay_reconciler_leader"), promtest.Value(t, regB, "outboxpay_reconciler_leader")
	}

	stopA := runtest.Background(t, a.Run)
	eventually.True(t, 10*time.Second, "a leads", func() (bool, error) {
		la, _ := leaders()
		return la == 1, nil
	})
	runtest.Background(t, b.Run)
	// While a leads, b stands by: it runs no cycle and does nothing, for
	// many of a's cycles.
	cyclesA := cycles(regA)
	eventually.True(t, 20*time.Second, "a acts for 20 cycles and 2 republish rounds", func() (bool, error) {
		la, lb := leaders()
		if la+lb > 1 {
			t.Fatalf("two leaders at once")
		}
		return cycles(regA) >= cyclesA+20 && actions(regA) >= 4, nil
	})
	if la, lb := leaders(); la != 1 || lb != 0 {
		t.Fatalf("leader gauges a=%v b=%v, want 1 and 0", la, lb)
	}
	if n, c := actions(regB), cycles(regB); n != 0 || c != 0 {
		t.Fatalf("the standby did %v actions in %v cycles, want none", n, c)
	}

	// a stops: b takes over and acts.
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if la, _ := leaders(); la != 0 {
		t.Errorf("a's leader gauge %v after its Run returned, want 0", la)
	}
	afterA := actions(regA)
	eventually.True(t, 20*time.Second, "b takes over and republishes", func() (bool, error) {
		_, lb := leaders()
		return lb == 1 && promtest.Value(t, regB, "outboxpay_reconciler_actions_total", "action", reconcile.ActionRepublishInit) >= 2, nil
	})
	if n := actions(regA); n != afterA {
		t.Errorf("a acted after its Run returned: %v -> %v", afterA, n)
	}
}

// TestLockConnectionLossStandsBy kills the session that holds the lock: the
// leader notices, stops acting, and takes the lock again on a new session.
func TestLockConnectionLossStandsBy(t *testing.T) {
	r := newRig(t)
	rc, reg := r.reconciler(leaderConfig, nil)
	runtest.Background(t, rc.Run)

	lockHolder := func() (int, error) {
		var pid int
		err := r.db.QueryRow(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
		return pid, err
	}
	var first int
	eventually.True(t, 10*time.Second, "lock taken", func() (bool, error) {
		var err error
		first, err = lockHolder()
		return err == nil, err
	})
	r.exec(`SELECT pg_terminate_backend($1)`, first)

	eventually.True(t, 10*time.Second, "lock loss noticed and the lock taken again", func() (bool, error) {
		pid, err := lockHolder()
		return err == nil && pid != first && promtest.Value(t, reg, "outboxpay_reconciler_errors_total", "step", "lock") >= 1, nil
	})
	eventually.True(t, 10*time.Second, "leading again", func() (bool, error) {
		return promtest.Value(t, reg, "outboxpay_reconciler_leader") == 1, nil
	})
}
