package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/migrations"
)

// Insert writes every message in one statement; MarkPublished makes them
// PUBLISHED once, and its update is HOT (a heap-only tuple: no index
// mentions what it changes, and the page has room), so it writes no index
// entries.
func TestInsertAndMarkPublishedHOT(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	ctx := context.Background()

	const n = 5
	msgs := make([]event.Message, n)
	ids := make([]uuid.UUID, n)
	for i := range msgs {
		m, err := event.NewOrderPaid(event.OrderPaid{OrderID: 7, UserID: int64(i + 1), Items: []event.Item{{ProductDetailID: 1, Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		msgs[i], ids[i] = m, m.ID
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Insert(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	entries, err := outbox.ForOrder(ctx, db, 7)
	if err != nil || len(entries) != n {
		t.Fatalf("ForOrder after inserting %d rows: %v, %v", n, entries, err)
	}
	for _, m := range msgs {
		got, err := outbox.Load(ctx, db, m.ID)
		if err != nil || got.Type != m.Type || got.AggregateType != m.AggregateType || got.AggregateID != m.AggregateID {
			t.Fatalf("row of %s: %+v, %v", m.ID, got, err)
		}
	}

	for _, want := range []int64{n, 0} { // the second call finds nothing left to mark
		if got, err := outbox.MarkPublished(ctx, worker, ids); err != nil || got != want {
			t.Fatalf("MarkPublished: %d rows, %v; want %d", got, err, want)
		}
	}
	var published int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE status = 'PUBLISHED' AND published_at IS NOT NULL`).Scan(&published); err != nil || published != n {
		t.Fatalf("%d rows PUBLISHED (%v), want %d", published, err, n)
	}

	// The statistics arrive when the worker's session is idle (at most a
	// second or so later).
	var upd, hot int64
	eventually.True(t, 30*time.Second, "the updates in pg_stat_user_tables", func() (bool, error) {
		err := db.QueryRow(`SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'outbox'`).Scan(&upd, &hot)
		return err == nil && upd >= n, err
	})
	if upd != n || hot != n {
		t.Fatalf("outbox: %d updates, %d of them HOT; want %d and %d", upd, hot, n, n)
	}
}
