package tracker_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/tracker"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Only a record that matches its row marks it PUBLISHED: a forged record
// carrying the id of a row still INIT leaves it INIT.
func TestOnlyMatchingRecordsMarkRows(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	msgs := make([]event.Message, 2)
	for i := range msgs {
		m, err := event.NewOrderPaid(event.OrderPaid{OrderID: int64(i + 1), UserID: 1, Items: []event.Item{{ProductDetailID: 1, Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
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
	rec := func(id uuid.UUID, typ, key string) consume.Record {
		return consume.Record{Topic: event.Topic(event.AggregateOrder), Key: []byte(key), Headers: []kafka.Header{
			{Key: event.HeaderID, Value: []byte(id.String())}, {Key: event.HeaderEventType, Value: []byte(typ)}}}
	}
	status := func(id uuid.UUID) outbox.Status {
		t.Helper()
		var st string
		if err := db.QueryRow(`SELECT status FROM outbox WHERE id = $1`, id).Scan(&st); err != nil {
			t.Fatal(err)
		}
		return outbox.Status(st)
	}
	h := tracker.New(db, nil)
	good := rec(msgs[0].ID, event.TypeOrderPaid, msgs[0].AggregateID)          // as the engine writes it
	forged := rec(msgs[1].ID, event.TypePaymentCompleted, msgs[1].AggregateID) // another type
	unknown := rec(uuid.New(), event.TypeOrderPaid, "3")                       // no row

	// A batch with a forged record fails as a whole, permanently, marking
	// nothing: the group then hands the records over one by one.
	err = h.HandleBatch(ctx, []consume.Record{good, forged, unknown})
	if !errors.Is(err, consume.ErrMismatch) || !consume.IsPermanent(err) {
		t.Fatalf("batch with a forged record: %v, want a permanent mismatch", err)
	}
	if st := status(msgs[0].ID); st != outbox.StatusInit {
		t.Fatalf("the failed batch marked a row %s", st)
	}
	for _, tc := range []struct {
		rec  consume.Record
		want error
	}{{good, nil}, {forged, consume.ErrMismatch}, {unknown, consume.ErrSkipped}} {
		if err := h.Handle(ctx, tc.rec); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.rec.EventType(), err, tc.want)
		}
	}
	for i, want := range []outbox.Status{outbox.StatusPublished, outbox.StatusInit} {
		if st := status(msgs[i].ID); st != want {
			t.Errorf("row %d: %s, want %s", i, st, want)
		}
	}
}
