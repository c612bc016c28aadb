package tracker_test

import (
	"context"
	"os"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/tracker"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/pgtest"
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
	err = tracker.New(db, nil).HandleBatch(ctx, []consume.Record{
		rec(msgs[0].ID, event.TypeOrderPaid, msgs[0].AggregateID),        // as the engine writes it
		rec(msgs[1].ID, event.TypePaymentCompleted, msgs[1].AggregateID), // forged: another type
		rec(uuid.New(), event.TypeOrderPaid, "3"),                        // no row
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []outbox.Status{outbox.StatusPublished, outbox.StatusInit} {
		var status string
		if err := db.QueryRow(`SELECT status FROM outbox WHERE id = $1`, msgs[i].ID).Scan(&status); err != nil || status != string(want) {
			t.Errorf("row %d: %s (%v), want %s", i, status, err, want)
		}
	}
}
