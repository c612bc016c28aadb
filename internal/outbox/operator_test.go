package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/migrations"
)

// rowState is what a transition may change of a row, and what it must not.
type rowState struct {
	Status    string
	Attempts  int
	Published bool
	Failed    bool
	LastError string
	HandledBy string
	Payload   string
}

func readState(t *testing.T, db *sql.DB, id uuid.UUID) rowState {
	t.Helper()
	var s rowState
	if err := db.QueryRow(`SELECT status, attempts, published_at IS NOT NULL, failed_at IS NOT NULL,
		COALESCE(last_error, ''), array_to_string(handled_by, ','), payload::text FROM outbox WHERE id = $1`, id).
		Scan(&s.Status, &s.Attempts, &s.Published, &s.Failed, &s.LastError, &s.HandledBy, &s.Payload); err != nil {
		t.Fatal(err)
	}
	return s
}

// insertRow inserts a row in status with the delivery columns a row of that
// status has after trouble: 3 attempts, a last error, published (unless
// INIT), failed_at when FAILED.
func insertRow(t *testing.T, db *sql.DB, status outbox.Status, published bool) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := db.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, attempts,
			published_at, failed_at, last_error, completed_at)
		VALUES ($1, 'order', '7', 'OrderPaid', '{"orderId": 7}', $2, 3,
			CASE WHEN $3 THEN now() END, CASE WHEN $2 = 'FAILED' THEN now() END, 'broken',
			CASE WHEN $2 = 'COMPLETE' THEN now() END)`, id, string(status), published); err != nil {
		t.Fatal(err)
	}
	return id
}

// Each operator transition, from each status: the new status, whether it
// changed, ErrConflict where refused; a refused or repeated change leaves
// the row exactly as it was, and none touches payload, handled_by or
// last_error. They run as the operator's role.
func TestTransitions(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	op, _ := pgtest.AsRole(t, dbURL, migrations.RoleOperator)
	ctx := context.Background()
	type fn func(context.Context, outbox.Execer, uuid.UUID) (outbox.Transition, error)
	for _, tc := range []struct {
		name      string
		do        fn
		from      outbox.Status
		published bool
		want      outbox.Status // "" for a conflict
		changed   bool
	}{
		{"retry", outbox.Retry, outbox.StatusFailed, true, outbox.StatusPublished, true},
		{"retry", outbox.Retry, outbox.StatusFailed, false, outbox.StatusInit, true},
		{"retry", outbox.Retry, outbox.StatusParked, true, outbox.StatusPublished, true},
		{"retry", outbox.Retry, outbox.StatusParked, false, outbox.StatusInit, true},
		{"retry", outbox.Retry, outbox.StatusInit, false, outbox.StatusInit, false},
		{"retry", outbox.Retry, outbox.StatusPublished, true, outbox.StatusPublished, false},
		{"retry", outbox.Retry, outbox.StatusComplete, true, outbox.StatusComplete, false},
		{"retry", outbox.Retry, outbox.StatusDiscarded, true, "", false},
		{"park", outbox.Park, outbox.StatusInit, false, outbox.StatusParked, true},
		{"park", outbox.Park, outbox.StatusPublished, true, outbox.StatusParked, true},
		{"park", outbox.Park, outbox.StatusFailed, true, outbox.StatusParked, true},
		{"park", outbox.Park, outbox.StatusParked, true, outbox.StatusParked, false},
		{"park", outbox.Park, outbox.StatusComplete, true, "", false},
		{"park", outbox.Park, outbox.StatusDiscarded, true, "", false},
		{"discard", outbox.Discard, outbox.StatusInit, false, outbox.StatusDiscarded, true},
		{"discard", outbox.Discard, outbox.StatusPublished, true, outbox.StatusDiscarded, true},
		{"discard", outbox.Discard, outbox.StatusFailed, true, outbox.StatusDiscarded, true},
		{"discard", outbox.Discard, outbox.StatusParked, true, outbox.StatusDiscarded, true},
		{"discard", outbox.Discard, outbox.StatusDiscarded, true, outbox.StatusDiscarded, false},
		{"discard", outbox.Discard, outbox.StatusComplete, true, "", false},
	} {
		t.Run(fmt.Sprintf("%s %s published=%v", tc.name, tc.from, tc.published), func(t *testing.T) {
			id := insertRow(t, admin, tc.from, tc.published)
			before := readState(t, admin, id)
			tr, err := tc.do(ctx, op, id)
			after := readState(t, admin, id)
			if tc.want == "" {
				if !errors.Is(err, outbox.ErrConflict) || tr.Changed {
					t.Fatalf("%+v, %v; want ErrConflict", tr, err)
				}
				if after != before {
					t.Fatalf("refused, yet the row changed: %+v -> %+v", before, after)
				}
				return
			}
			if err != nil || tr.Was != tc.from || tr.Now != tc.want || tr.Changed != tc.changed {
				t.Fatalf("%+v, %v; want %s -> %s changed=%v", tr, err, tc.from, tc.want, tc.changed)
			}
			if after.Status != string(tc.want) || after.Payload != before.Payload ||
				after.HandledBy != before.HandledBy || after.LastError != before.LastError {
				t.Fatalf("row %+v -> %+v", before, after)
			}
			if !tc.changed && after != before {
				t.Fatalf("unchanged, yet the row changed: %+v -> %+v", before, after)
			}
			if tc.changed && tc.name == "retry" && (after.Attempts != 0 || after.Failed) {
				t.Fatalf("retried row %+v: want attempts 0, no failed_at", after)
			}
			if tc.changed && tc.name != "retry" && (after.Attempts != before.Attempts || after.Failed != before.Failed) {
				t.Fatalf("%s changed the delivery columns: %+v -> %+v", tc.name, before, after)
			}
			// Repeating the change changes nothing more.
			again, err := tc.do(ctx, op, id)
			if err != nil || again.Changed || again.Now != tc.want || readState(t, admin, id) != after {
				t.Fatalf("repeat: %+v, %v", again, err)
			}
		})
	}
	for _, do := range []fn{outbox.Retry, outbox.Park, outbox.Discard} {
		if _, err := do(ctx, op, uuid.New()); !errors.Is(err, outbox.ErrNotFound) {
			t.Errorf("a missing row: %v, want ErrNotFound", err)
		}
	}
}

// The reconciler leaves PARKED and DISCARDED rows alone: they are never
// republished, counted as attempts or marked FAILED. A handler that
// completes the last group of a PARKED row makes it COMPLETE; one that
// does not leaves it PARKED.
func TestParkedAndDiscardedRowsAndTheReconciler(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	ctx := context.Background()
	parked := insertRow(t, admin, outbox.StatusParked, true)
	discarded := insertRow(t, admin, outbox.StatusDiscarded, true)
	if _, err := admin.Exec(`UPDATE outbox SET updated_at = now() - interval '1 day', attempts = 10`); err != nil {
		t.Fatal(err)
	}
	for _, s := range []outbox.Status{outbox.StatusInit, outbox.StatusPublished} {
		tx, err := worker.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := outbox.LockStale(ctx, tx, outbox.StaleQuery{Status: s, Limit: 10, Columns: []string{"id"}})
		if err != nil || len(rows) != 0 {
			t.Errorf("LockStale(%s) = %v, %v; want none", s, rows, err)
		}
		tx.Rollback()
	}
	if n, err := outbox.RecordAttempts(ctx, worker, map[uuid.UUID]string{parked: "x", discarded: "x"}); err != nil || n != 0 {
		t.Errorf("RecordAttempts = %d, %v; want 0", n, err)
	}
	if failed, err := outbox.FailExhausted(ctx, worker, 5, "given up"); err != nil || len(failed) != 0 {
		t.Errorf("FailExhausted = %v, %v; want none", failed, err)
	}
	for id, want := range map[uuid.UUID]string{parked: "PARKED", discarded: "DISCARDED"} {
		if s := readState(t, admin, id); s.Status != want || s.Attempts != 10 {
			t.Errorf("%s row: %+v", want, s)
		}
	}

	// OrderPaid is handled by stock alone: another group's mark keeps the
	// row PARKED, stock's completes it.
	c, err := outbox.MarkHandled(ctx, worker, parked, event.TypeOrderPaid, event.GroupDataPlatform)
	if err != nil || c.Completed || readState(t, admin, parked).Status != "PARKED" {
		t.Fatalf("another group's mark: %+v, %v, %+v", c, err, readState(t, admin, parked))
	}
	c, err = outbox.MarkHandled(ctx, worker, parked, event.TypeOrderPaid, event.GroupStock)
	if err != nil || !c.Completed || readState(t, admin, parked).Status != "COMPLETE" {
		t.Fatalf("stock's mark: %+v, %v, %+v", c, err, readState(t, admin, parked))
	}
}

// Search filters and orders newest first; Get reads one row with its
// payload; HandledAt reads processed_events.
func TestSearchGetHandledAt(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	op, _ := pgtest.AsRole(t, dbURL, migrations.RoleOperator)
	ctx := context.Background()
	ins := func(agg, aggID, typ, status, age string, orderID int) uuid.UUID {
		id := uuid.New()
		if _, err := admin.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at,
				completed_at) VALUES ($1, $2, $3, $4, jsonb_build_object('orderId', $5::int), $6, now() - $7::interval,
				CASE WHEN $6 = 'COMPLETE' THEN now() END)`,
			id, agg, aggID, typ, orderID, status, age); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := ins("order", "1", "OrderPaid", "COMPLETE", "3 hours", 1)
	b := ins("payment", "5", "PaymentCompleted", "FAILED", "2 hours", 1)
	c := ins("order", "2", "OrderPaid", "INIT", "1 minute", 2)
	d := ins("payment", "6", "PaymentRefunded", "PARKED", "30 minutes", 2)
	for _, tc := range []struct {
		f    outbox.Filter
		want []uuid.UUID
	}{
		{outbox.Filter{}, []uuid.UUID{c, d, b, a}},
		{outbox.Filter{OrderID: 1}, []uuid.UUID{b, a}},
		{outbox.Filter{ID: d}, []uuid.UUID{d}},
		{outbox.Filter{AggregateType: "payment"}, []uuid.UUID{d, b}},
		{outbox.Filter{AggregateType: "order", AggregateID: "2"}, []uuid.UUID{c}},
		{outbox.Filter{Type: "OrderPaid"}, []uuid.UUID{c, a}},
		{outbox.Filter{Status: outbox.StatusFailed}, []uuid.UUID{b}},
		{outbox.Filter{Status: outbox.StatusComplete}, []uuid.UUID{a}},
		{outbox.Filter{OlderThan: time.Hour}, []uuid.UUID{b, a}},
		{outbox.Filter{NewerThan: time.Hour}, []uuid.UUID{c, d}},
		{outbox.Filter{OlderThan: 10 * time.Minute, NewerThan: 150 * time.Minute}, []uuid.UUID{d, b}},
		{outbox.Filter{Limit: 1}, []uuid.UUID{c}},
		{outbox.Filter{Status: outbox.StatusDiscarded}, nil},
	} {
		if tc.f.Limit == 0 {
			tc.f.Limit = 50
		}
		rows, err := outbox.Search(ctx, op, tc.f)
		if err != nil {
			t.Fatalf("%+v: %v", tc.f, err)
		}
		var got []uuid.UUID
		for _, r := range rows {
			got = append(got, r.ID)
			if r.Payload != nil || r.HandledBy == nil {
				t.Errorf("%+v: row %+v", tc.f, r)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Search(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	if _, err := admin.Exec(`UPDATE outbox SET handled_by = '{stock}', published_at = now() WHERE id = $1`, a); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`INSERT INTO processed_events (consumer_group, event_id, processed_at) VALUES ('stock', $1, now() - interval '1 hour')`, a); err != nil {
		t.Fatal(err)
	}
	r, err := outbox.Get(ctx, op, a)
	if err != nil || r.ID != a || r.OrderID != 1 || r.Status != outbox.StatusComplete || string(r.Payload) != `{"orderId": 1}` ||
		fmt.Sprint(r.HandledBy) != "[stock]" || r.PublishedAt == nil || r.CompletedAt == nil || r.FailedAt != nil {
		t.Errorf("Get = %+v, %v", r, err)
	}
	if _, err := outbox.Get(ctx, op, uuid.New()); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("Get of a missing row: %v", err)
	}
	at, err := outbox.HandledAt(ctx, op, a)
	if err != nil || len(at) != 1 || time.Since(at["stock"]) < 59*time.Minute {
		t.Errorf("HandledAt = %v, %v", at, err)
	}
}

// CountByStatus counts exactly, or estimates COMPLETE from the statistics
// when they say there are many;
// CompletionsSince and CompletionSeries give counts and percentiles of
// known latencies.
func TestCountsAndCompletions(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	op, _ := pgtest.AsRole(t, dbURL, migrations.RoleOperator)
	ctx := context.Background()
	// 100 rows completed in the last minute with latencies 1..100 ms, 10
	// completed 2 hours ago, 3 INIT (the oldest 10 minutes old), 1 PARKED.
	if _, err := admin.Exec(`
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at, completed_at)
		SELECT gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'COMPLETE',
		       now() - interval '30 seconds' - i * interval '1 millisecond', now() - interval '30 seconds'
		  FROM generate_series(1, 100) i;
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at, completed_at)
		SELECT gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'COMPLETE', now() - interval '3 hours', now() - interval '2 hours'
		  FROM generate_series(1, 10);
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at)
		SELECT gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'INIT', now() - i * interval '5 minutes'
		  FROM generate_series(0, 2) i;
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at)
		VALUES (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'PARKED', now() - interval '1 day');
		ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}
	for _, exact := range []bool{true, false} {
		counts, oldest, err := outbox.CountByStatus(ctx, op, exact)
		if err != nil {
			t.Fatal(err)
		}
		if counts[outbox.StatusComplete] != 110 || counts[outbox.StatusInit] != 3 || counts[outbox.StatusParked] != 1 ||
			counts[outbox.StatusFailed] != 0 || len(counts) != len(outbox.Statuses()) {
			t.Errorf("exact=%v: counts %v", exact, counts)
		}
		if o := oldest[outbox.StatusInit]; o < 10*time.Minute || o > 11*time.Minute {
			t.Errorf("exact=%v: oldest INIT %v, want 10m", exact, o)
		}
	}
	// From EstimateAbove finished rows on, the statistics' figure stands
	// (here faked: 200,000 rows, 4 of them unfinished).
	if _, err := admin.Exec(`UPDATE pg_class SET reltuples = 200000 WHERE oid = 'outbox'::regclass`); err != nil {
		t.Fatal(err)
	}
	for exact, want := range map[bool]int64{true: 110, false: 200000 - 4} {
		if counts, _, err := outbox.CountByStatus(ctx, op, exact); err != nil || counts[outbox.StatusComplete] != want {
			t.Errorf("exact=%v with 200,000 rows in the statistics: COMPLETE %d, %v; want %d", exact, counts[outbox.StatusComplete], err, want)
		}
	}
	c, err := outbox.CompletionsSince(ctx, op, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	near := func(got time.Duration, ms float64) bool {
		return got >= time.Duration((ms-0.5)*float64(time.Millisecond)) && got <= time.Duration((ms+0.5)*float64(time.Millisecond))
	}
	// percentile_cont over 1..100: 50.5, 95.05, 99.01.
	if c.N != 100 || !near(c.P50, 50.5) || !near(c.P95, 95.05) || !near(c.P99, 99.01) {
		t.Errorf("CompletionsSince(1m) = %+v", c)
	}
	if c, err := outbox.CompletionsSince(ctx, op, 10*time.Second); err != nil || c.N != 0 || c.P50 != 0 {
		t.Errorf("CompletionsSince(10s) = %+v, %v", c, err)
	}
	series, err := outbox.CompletionSeries(ctx, op, 3*time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i, b := range series {
		total += b.N
		if b.At.Truncate(time.Hour) != b.At || (i > 0 && !b.At.After(series[i-1].At)) {
			t.Errorf("bucket %d at %v", i, b.At)
		}
	}
	if total != 110 || len(series) < 2 || series[0].N != 10 || !near(series[0].P50, 3600*1000) {
		t.Errorf("CompletionSeries = %+v", series)
	}
}
