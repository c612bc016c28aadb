// Package consumetest holds the fixtures of the consumer handlers' tests:
// outbox rows and the records a CDC engine writes for them. For _test.go
// files only.
package consumetest

import (
	"context"
	"database/sql"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Record is the record a CDC engine writes for row (the Outbox Event
// Router of connect/outbox-connector.json): the row's topic, its aggregate
// id as key, its payload as value, its id and type as headers.
func Record(row event.Message) consume.Record {
	return consume.Record{Topic: row.Topic(), Key: []byte(row.AggregateID), Value: row.Payload, Headers: []kafka.Header{
		{Key: event.HeaderID, Value: []byte(row.ID.String())}, {Key: event.HeaderEventType, Value: []byte(row.Type)}}}
}

// Insert commits outbox rows for msgs, as a payment's transaction does.
func Insert(t testing.TB, db *sql.DB, msgs ...event.Message) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := outbox.Insert(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// OrderPaid is an OrderPaid event of one item, for order and user.
func OrderPaid(t testing.TB, order, user int64) event.Message {
	t.Helper()
	m, err := event.NewOrderPaid(event.OrderPaid{OrderID: order, UserID: user, Items: []event.Item{{ProductDetailID: 1, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Status returns the status of an event's outbox row.
func Status(t testing.TB, db *sql.DB, id any) outbox.Status {
	t.Helper()
	var st string
	if err := db.QueryRow(`SELECT status FROM outbox WHERE id = $1`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return outbox.Status(st)
}

// Claimed reports whether group has claimed the event in the inbox.
func Claimed(t testing.TB, db *sql.DB, group string, id any) bool {
	t.Helper()
	var claimed bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer_group = $1 AND event_id = $2)`,
		group, id).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	return claimed
}
