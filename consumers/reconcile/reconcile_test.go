package reconcile_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

func TestRepublishesStuckInitRows(t *testing.T) {
	r := newRig(t)
	stuck := r.insert(2) // 2 OrderPaid + 2 PaymentCompleted
	fresh := r.insert(1)
	r.set(stuck, `created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	rc, reg := r.reconciler(reconcile.Config{}, nil) // RepublishAfter 10m

	ran := time.Now()
	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedInit != len(stuck) || rep.RepublishedPublished != 0 || rep.RepublishFailed != 0 {
		t.Fatalf("report %+v, want %d INIT rows republished", rep, len(stuck))
	}
	got := r.records(len(stuck))
	read := time.Now()
	if len(got) != len(stuck) {
		t.Fatalf("records of %d events on Kafka, want %d", len(got), len(stuck))
	}
	for _, m := range stuck {
		recs := got[m.ID.String()]
		if len(recs) != 1 {
			t.Fatalf("event %s: %d records, want 1", m.ID, len(recs))
		}
		assertRecord(t, recs[0], r.expected(m), ran, read)
		s := r.row(m)
		if s.Status != "INIT" || s.Attempts != 1 || !strings.HasPrefix(s.LastError, "republished by the reconciler: INIT for 1h0m") {
			t.Errorf("row %s after republish: %+v", m.ID, s)
		}
	}
	if s := r.row(fresh[0]); s.Attempts != 0 || s.LastError != "" {
		t.Errorf("fresh row touched: %+v", s)
	}

	// Not again before RepublishAfter has passed since the attempt.
	rep, err = rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedInit != 0 {
		t.Fatalf("republished %d rows again right away", rep.RepublishedInit)
	}
	if n := r.count(); n != int64(len(stuck)) {
		t.Fatalf("%d records on Kafka, want still %d", n, len(stuck))
	}

	// Once it has, again.
	r.set(stuck, `updated_at = now() - interval '11 minutes'`)
	rep, err = rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedInit != len(stuck) {
		t.Fatalf("second round republished %d rows, want %d", rep.RepublishedInit, len(stuck))
	}
	for id, recs := range r.records(2 * len(stuck)) {
		if len(recs) != 2 {
			t.Errorf("event %s: %d records, want 2", id, len(recs))
		}
	}
	for _, m := range stuck {
		if s := r.row(m); s.Attempts != 2 {
			t.Errorf("row %s: attempts %d, want 2", m.ID, s.Attempts)
		}
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", reconcile.ActionRepublishInit); v != float64(2*len(stuck)) {
		t.Errorf("republish_init actions %v, want %d", v, 2*len(stuck))
	}
}

func TestRepublishesStuckPublishedRowsNeverComplete(t *testing.T) {
	r := newRig(t)
	msgs := r.insert(3)
	stuck, recent, complete, failed := msgs[0:1], msgs[1:2], msgs[2:4], msgs[4:5]
	r.set(msgs, `created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	r.set(stuck, `status = 'PUBLISHED', published_at = now() - interval '50 minutes', updated_at = now() - interval '50 minutes'`)
	r.set(recent, `status = 'PUBLISHED', published_at = now() - interval '1 minute', updated_at = now() - interval '1 minute'`)
	r.set(complete, `status = 'COMPLETE', completed_at = now() - interval '50 minutes', attempts = 9`)
	r.set(failed, `status = 'FAILED', failed_at = now() - interval '50 minutes'`)
	r.exec(`DELETE FROM outbox WHERE id = $1`, msgs[5].ID)
	others := slices.Concat(recent, complete, failed)
	before := make([]rowState, len(others))
	for i, m := range others {
		before[i] = r.row(m)
	}
	rc, _ := r.reconciler(reconcile.Config{}, nil) // PublishedStuckAfter 5m

	ran := time.Now()
	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedPublished != 1 || rep.RepublishedInit != 0 || rep.MarkedFailed != 0 {
		t.Fatalf("report %+v, want one PUBLISHED row republished and nothing else", rep)
	}
	got := r.records(1)
	read := time.Now()
	if len(got) != 1 || len(got[stuck[0].ID.String()]) != 1 {
		t.Fatalf("records on Kafka: %v, want one of %s", got, stuck[0].ID)
	}
	assertRecord(t, got[stuck[0].ID.String()][0], r.expected(stuck[0]), ran, read)
	s := r.row(stuck[0])
	if s.Status != "PUBLISHED" || s.Attempts != 1 || !strings.HasPrefix(s.LastError, "republished by the reconciler: PUBLISHED for 50m") {
		t.Errorf("stuck PUBLISHED row after republish: %+v", s)
	}
	for i, m := range others {
		if a, b := r.row(m), before[i]; !a.same(b) {
			t.Errorf("row %s (%s) changed: %+v -> %+v", m.ID, b.Status, b, a)
		}
	}
	if n := r.count(); n != 1 {
		t.Errorf("%d records on Kafka, want 1", n)
	}
}

func TestMarksRowsFailedAfterMaxAttempts(t *testing.T) {
	r := newRig(t)
	msgs := r.insert(3)
	lastTry, exhausted, exhaustedPublished, complete, untouched := msgs[0:1], msgs[1:2], msgs[2:3], msgs[3:4], msgs[4:5]
	r.set(lastTry, `attempts = 2, created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	r.set(exhausted, `attempts = 3, last_error = 'boom'`)
	r.set(exhaustedPublished, `attempts = 5, status = 'PUBLISHED', published_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	r.set(complete, `attempts = 5, status = 'COMPLETE', completed_at = now()`)
	rc, reg := r.reconciler(reconcile.Config{MaxAttempts: 3}, nil)

	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedInit != 1 || rep.RepublishedPublished != 0 || rep.MarkedFailed != 3 || rep.FailedRows != 3 {
		t.Fatalf("report %+v, want the last try republished and 3 rows FAILED", rep)
	}
	// The row that had attempts left got its last one; the others none.
	if got := r.records(1); len(got) != 1 || len(got[lastTry[0].ID.String()]) != 1 {
		t.Fatalf("records on Kafka: %v, want the last try of %s only", got, lastTry[0].ID)
	}
	for _, m := range slices.Concat(lastTry, exhausted, exhaustedPublished) {
		s := r.row(m)
		if s.Status != "FAILED" || !s.FailedAt.Valid || !strings.Contains(s.LastError, "FAILED by the reconciler: not COMPLETE after 3 attempts") {
			t.Errorf("row %s: %+v, want FAILED with the reason", m.ID, s)
		}
	}
	if s := r.row(exhausted[0]); !strings.HasPrefix(s.LastError, "boom; FAILED by the reconciler") {
		t.Errorf("last_error %q does not keep the previous error", s.LastError)
	}
	if s := r.row(complete[0]); s.Status != "COMPLETE" {
		t.Errorf("COMPLETE row became %s", s.Status)
	}
	if s := r.row(untouched[0]); s.Status != "INIT" || s.Attempts != 0 {
		t.Errorf("fresh row: %+v", s)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_failed_rows"); v != 3 {
		t.Errorf("failed_rows gauge %v, want 3", v)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", reconcile.ActionMarkFailed); v != 3 {
		t.Errorf("mark_failed actions %v, want 3", v)
	}

	// A FAILED row whose event is handled after all becomes COMPLETE, and the
	// gauge follows at the next cycle.
	if _, err := outbox.MarkHandled(t.Context(), r.db, lastTry[0].ID, lastTry[0].Type, event.GroupStock); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_failed_rows"); v != 2 {
		t.Errorf("failed_rows gauge %v after one FAILED row completed, want 2", v)
	}
}

// TestRunRepublishesThenGivesUp runs the reconciler with its timers, at
// short thresholds: a row nobody publishes is republished MaxAttempts times,
// RepublishAfter apart, then FAILED.
func TestRunRepublishesThenGivesUp(t *testing.T) {
	r := newRig(t)
	start := time.Now() // before the rows' updated_at, which paces the attempts
	msgs := r.insert(1)
	cfg := reconcile.Config{
		Interval:            50 * time.Millisecond,
		StuckAfter:          100 * time.Millisecond,
		RepublishAfter:      200 * time.Millisecond,
		PublishedStuckAfter: 200 * time.Millisecond,
		MaxAttempts:         3,
	}
	rc, reg := r.reconciler(cfg, nil)
	stop := runtest.Background(t, rc.Run)

	eventually.True(t, 20*time.Second, "rows FAILED", func() (bool, error) {
		return r.row(msgs[0]).Status == "FAILED" && r.row(msgs[1]).Status == "FAILED", nil
	})
	if took := time.Since(start); took < 3*cfg.RepublishAfter {
		t.Errorf("3 attempts %v apart took only %v", cfg.RepublishAfter, took)
	}
	for _, m := range msgs {
		if s := r.row(m); s.Attempts != 3 {
			t.Errorf("row %s: attempts %d, want 3", m.ID, s.Attempts)
		}
	}
	got := r.records(3 * len(msgs))
	read := time.Now()
	for _, m := range msgs {
		recs := got[m.ID.String()]
		if len(recs) != 3 {
			t.Fatalf("event %s: %d records, want 3", m.ID, len(recs))
		}
		for _, rec := range recs {
			assertRecord(t, rec, r.expected(m), start, read)
		}
	}
	eventually.True(t, 5*time.Second, "failed_rows gauge", func() (bool, error) {
		return promtest.Value(t, reg, "outboxpay_reconciler_failed_rows") == 2, nil
	})
	if v := promtest.Value(t, reg, "outboxpay_reconciler_leader"); v != 1 {
		t.Errorf("leader gauge %v while running alone, want 1", v)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_leader"); v != 0 {
		t.Errorf("leader gauge %v after Run returned, want 0", v)
	}
}

func TestRetentionDeletesOldCompleteRowsInBatches(t *testing.T) {
	r := newRig(t)
	insert := func(n int, status, extra string) {
		r.exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at, updated_at, completed_at)
			SELECT gen_random_uuid(), 'order', i::text, 'OrderPaid', jsonb_build_object('orderId', i), $1, `+extra+`
			FROM generate_series(1, $2) AS i`, status, n)
	}
	old := `now() - interval '300 hours', now(), now() - interval '200 hours'`
	insert(2500, "COMPLETE", old)
	insert(7, "COMPLETE", `now() - interval '300 hours', now(), now() - interval '100 hours'`)
	insert(5, "INIT", `now() - interval '300 hours', now(), NULL`)
	insert(3, "FAILED", `now() - interval '300 hours', now(), NULL`)
	rc, reg := r.reconciler(reconcile.Config{Retention: 168 * time.Hour, DeleteBatch: 1000}, nil)

	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != 2500 || rep.DeleteBatches != 3 {
		t.Fatalf("deleted %d rows in %d batches, want 2500 in 3", rep.Deleted, rep.DeleteBatches)
	}
	var complete, others int
	if err := r.db.QueryRow(`SELECT count(*) FILTER (WHERE status = 'COMPLETE'), count(*) FILTER (WHERE status <> 'COMPLETE') FROM outbox`).
		Scan(&complete, &others); err != nil {
		t.Fatal(err)
	}
	if complete != 7 || others != 8 {
		t.Errorf("left %d COMPLETE and %d other rows, want 7 and 8", complete, others)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", reconcile.ActionDeleteComplete); v != 2500 {
		t.Errorf("delete_complete actions %v, want 2500", v)
	}
	if rep, err = rc.RunOnce(t.Context()); err != nil || rep.Deleted != 0 {
		t.Errorf("second cycle deleted %d rows (err %v), want 0", rep.Deleted, err)
	}
}

// Idempotency keys older than IdempotencyKeyRetention are deleted in
// batches by the reconciler's role; younger ones stay.
func TestRetentionDeletesExpiredIdempotencyKeysInBatches(t *testing.T) {
	r := newRig(t)
	insert := func(n int, user int64, age string) {
		r.exec(`INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, response, created_at)
			SELECT 'key-' || i, $1, i, 'POST /orders/:orderId/payment', '{}', now() - $3::interval
			FROM generate_series(1, $2) AS i`, user, n, age)
	}
	insert(2500, 5, "25 hours")
	insert(7, 6, "23 hours")
	insert(3, 7, "1 minute")
	rc, reg := r.reconciler(reconcile.Config{IdempotencyKeyRetention: 24 * time.Hour, DeleteBatch: 1000}, nil)

	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.KeysDeleted != 2500 || rep.KeyDeleteBatches != 3 {
		t.Fatalf("deleted %d keys in %d batches, want 2500 in 3", rep.KeysDeleted, rep.KeyDeleteBatches)
	}
	var expired, kept int
	if err := r.db.QueryRow(`SELECT count(*) FILTER (WHERE user_id = 5), count(*) FILTER (WHERE user_id <> 5) FROM idempotency_keys`).
		Scan(&expired, &kept); err != nil {
		t.Fatal(err)
	}
	if expired != 0 || kept != 10 {
		t.Errorf("left %d expired and %d unexpired keys, want 0 and 10", expired, kept)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", reconcile.ActionDeleteIdempotencyKeys); v != 2500 {
		t.Errorf("delete_idempotency_keys actions %v, want 2500", v)
	}
	if rep, err = rc.RunOnce(t.Context()); err != nil || rep.KeysDeleted != 0 {
		t.Errorf("second cycle deleted %d keys (err %v), want 0", rep.KeysDeleted, err)
	}
}

// TestUnreachableConnectIsCountedAndTheCycleGoesOn points the reconciler at
// a Kafka Connect that is not there: the check fails, is counted, and the
// stuck rows are still republished.
func TestUnreachableConnectIsCountedAndTheCycleGoesOn(t *testing.T) {
	r := newRig(t)
	msgs := r.insert(1)
	r.set(msgs, `created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	rc, reg := r.reconciler(reconcile.Config{}, rest.NewClient("http://127.0.0.1:1", nil))

	rep, err := rc.RunOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "check connector outbox") {
		t.Fatalf("RunOnce error %v, want the connector check's", err)
	}
	if rep.StuckInit != 2 || rep.RepublishedInit != 2 || rep.RestartedConnector {
		t.Fatalf("report %+v, want 2 stuck rows republished and no restart", rep)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_errors_total", "step", "connector"); v != 1 {
		t.Errorf("connector errors %v, want 1", v)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_cycle_seconds"); v != 1 {
		t.Errorf("%v cycles observed, want 1", v)
	}
}

// TestRecordKafkaRefusesCountsAsAnAttempt gives the reconciler a row whose
// record is larger than Kafka takes: the others of its batch are
// republished, the refusal is an attempt with its error, and the row ends
// FAILED instead of being retried forever.
func TestRecordKafkaRefusesCountsAsAnAttempt(t *testing.T) {
	r := newRig(t)
	msgs := r.insert(1)
	huge, fine := msgs[0:1], msgs[1:2]
	r.set(huge, `payload = jsonb_build_object('orderId', 100, 'pad', repeat('x', 1100000))`)
	r.set(msgs, `created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	rc, _ := r.reconciler(reconcile.Config{MaxAttempts: 1}, nil)

	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedInit != 1 || rep.RepublishFailed != 1 || rep.MarkedFailed != 2 {
		t.Fatalf("report %+v, want 1 republished, 1 refused, both FAILED (MaxAttempts 1)", rep)
	}
	if got := r.records(1); len(got) != 1 || len(got[fine[0].ID.String()]) != 1 {
		t.Fatalf("records on Kafka: %v, want one of %s", got, fine[0].ID)
	}
	s := r.row(huge[0])
	if s.Attempts != 1 || s.Status != "FAILED" || !strings.HasPrefix(s.LastError, "republish by the reconciler failed (INIT for 1h0m") {
		t.Errorf("refused row: %+v", s)
	}
	t.Logf("last_error of the refused row: %s", s.LastError)
}
