package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// MarkHandled of a row that is not there (or not visible yet: a CDC engine
// can publish a commit a moment before other sessions see it) is
// ErrNotFound, never a silent success: `make chaos` found an event recorded
// as handled whose row then stayed PUBLISHED for good.
func TestMarkHandledWithoutTheRow(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	_, err := outbox.MarkHandled(ctx, db, uuid.New(), event.TypeOrderPaid, event.GroupStock)
	if !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("MarkHandled of a missing row: %v, want ErrNotFound", err)
	}
}

func TestMarkHandledCompletesOnce(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	id := uuid.New()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Insert(ctx, tx, event.Message{ID: id, AggregateType: event.AggregatePayment, AggregateID: "1",
		Type: event.TypePaymentCompleted, Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker) // the consumers' role marks
	for i, want := range []bool{true, false} {
		c, err := outbox.MarkHandled(ctx, worker, id, event.TypePaymentCompleted, event.GroupDataPlatform)
		if err != nil || c.Completed != want {
			t.Fatalf("call %d: %+v, %v; want Completed %v", i+1, c, err, want)
		}
	}
	var status string
	if err := db.QueryRow(`SELECT status FROM outbox WHERE id = $1`, id).Scan(&status); err != nil || status != "COMPLETE" {
		t.Fatalf("status %q, %v", status, err)
	}
}

// Load returns the row as written, and ErrNotFound for an id with no row.
func TestLoad(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	if _, err := outbox.Load(ctx, db, uuid.New()); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("Load of a missing row: %v, want ErrNotFound", err)
	}
	msg, err := event.NewOrderPaid(event.OrderPaid{OrderID: 7, UserID: 3, Items: []event.Item{{ProductDetailID: 2, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Insert(ctx, tx, msg); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := outbox.Load(ctx, db, msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	var p event.OrderPaid
	if err := json.Unmarshal(got.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if got.ID != msg.ID || got.Type != event.TypeOrderPaid || got.AggregateType != event.AggregateOrder ||
		got.AggregateID != "7" || p.OrderID != 7 || p.UserID != 3 || len(p.Items) != 1 {
		t.Fatalf("Load: %+v (payload %+v), want the row of %+v", got, p, msg)
	}
}

// MarkHandledAll marks a batch in one statement and says, in the batch's
// order, which rows it made COMPLETE: a row its group completes, not one
// COMPLETE before, nor one that still waits for another group; a batch
// naming a row that is not there is ErrNotFound. LoadAll reads the visible
// rows of a batch.
func TestMarkHandledAll(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	payment := func() event.Message {
		return event.Message{ID: uuid.New(), AggregateType: event.AggregatePayment, AggregateID: "1",
			Type: event.TypePaymentCompleted, Payload: []byte(`{"paymentId": 1}`)}
	}
	fresh, done := payment(), payment()
	order, err := event.NewOrderPaid(event.OrderPaid{OrderID: 7, UserID: 3, Items: []event.Item{{ProductDetailID: 2, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Insert(ctx, tx, fresh, done, order); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	if _, err := outbox.MarkHandled(ctx, worker, done.ID, done.Type, event.GroupDataPlatform); err != nil {
		t.Fatal(err)
	}

	rows, err := outbox.LoadAll(ctx, worker, []uuid.UUID{fresh.ID, uuid.New(), order.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[fresh.ID].Type != fresh.Type || string(rows[fresh.ID].Payload) != string(fresh.Payload) ||
		rows[order.ID].AggregateID != "7" {
		t.Fatalf("LoadAll: %+v, want the two rows there", rows)
	}

	// The caller rolls back a batch with a row missing, as the inbox does.
	rollback, err := worker.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.MarkHandledAll(ctx, rollback, []event.Message{fresh, {ID: uuid.New(), Type: fresh.Type}},
		event.GroupDataPlatform); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("a batch with a missing row: %v, want ErrNotFound", err)
	}
	if err := rollback.Rollback(); err != nil {
		t.Fatal(err)
	}
	// order waits for the stock group: the data-platform group's mark does not
	// complete it, but a handled event was seen on Kafka, so it is PUBLISHED.
	cs, err := outbox.MarkHandledAll(ctx, worker, []event.Message{done, order, fresh}, event.GroupDataPlatform)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].Completed || cs[1].Completed || !cs[2].Completed || cs[2].Latency <= 0 {
		t.Fatalf("completions %+v, want only the third", cs)
	}
	for _, want := range []struct {
		id     uuid.UUID
		status outbox.Status
	}{{fresh.ID, outbox.StatusComplete}, {done.ID, outbox.StatusComplete}, {order.ID, outbox.StatusPublished}} {
		var status string
		var published bool
		if err := db.QueryRow(`SELECT status, published_at IS NOT NULL FROM outbox WHERE id = $1`, want.id).Scan(&status, &published); err != nil ||
			outbox.Status(status) != want.status || !published {
			t.Fatalf("row %s: %q, published_at set %v, %v; want %s, set", want.id, status, published, err, want.status)
		}
	}
}

// The tracker's PUBLISHED mark and a handler's MarkHandledAll lock the same
// rows at once: they must lock them in the same order (id order), or
// Postgres breaks the cycle by failing one with "deadlock detected" after
// deadlock_timeout (a second of latency; bench-e2e saw it several times a
// second). Row b is stored before row a although a's id is lower, and a
// third transaction holds a until both statements wait for it.
func TestMarkPublishedAndHandledDoNotDeadlock(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	a := event.Message{ID: uuid.MustParse("00000000-0000-4000-8000-000000000001"), AggregateType: event.AggregatePayment,
		AggregateID: "1", Type: event.TypePaymentCompleted, Payload: []byte(`{}`)}
	b := a
	b.ID = uuid.MustParse("ffffffff-ffff-4fff-bfff-ffffffffffff")
	for _, m := range []event.Message{b, a} { // b first in the table's physical order
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Insert(ctx, tx, m); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, `SELECT 1 FROM outbox WHERE id = $1 FOR UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	waiting := func(n int) func() (bool, error) {
		return func() (bool, error) {
			var got int
			err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&got)
			return got == n, err
		}
	}
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	errs := make(chan error, 2)
	go func() { // the handler: a, then b
		tx, err := worker.BeginTx(ctx, nil)
		if err != nil {
			errs <- err
			return
		}
		defer tx.Rollback()
		if _, err := outbox.MarkHandledAll(ctx, tx, []event.Message{b, a}, event.GroupDataPlatform); err != nil {
			errs <- err
			return
		}
		errs <- tx.Commit()
	}()
	eventually.True(t, 10*time.Second, "the handler waits for row a", waiting(1))
	go func() {
		_, err := outbox.MarkPublished(ctx, worker, []uuid.UUID{b.ID, a.ID})
		errs <- err
	}()
	eventually.True(t, 10*time.Second, "the mark waits too", waiting(2))
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
