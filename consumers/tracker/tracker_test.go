package tracker_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/consume/consumetest"
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
	msgs := []event.Message{consumetest.OrderPaid(t, 1, 1), consumetest.OrderPaid(t, 2, 1), consumetest.OrderPaid(t, 3, 1)}
	consumetest.Insert(t, db, msgs...)
	h := tracker.New(db, nil)
	good := consumetest.Record(msgs[0]) // as the engine writes it
	forgedRow := msgs[1]
	forgedRow.Type = event.TypePaymentCompleted
	forged := consumetest.Record(forgedRow) // another type
	unknownRow := msgs[2]
	unknownRow.ID = uuid.New()
	unknown := consumetest.Record(unknownRow) // no row
	noID := consumetest.Record(msgs[2])
	noID.Headers = noID.Headers[1:]

	// A batch with a forged record fails as a whole, permanently, marking
	// nothing: the group then hands the records over one by one.
	err := h.HandleBatch(ctx, []consume.Record{good, forged, unknown})
	if !errors.Is(err, consume.ErrMismatch) || !consume.IsPermanent(err) {
		t.Fatalf("batch with a forged record: %v, want a permanent mismatch", err)
	}
	if st := consumetest.Status(t, db, msgs[0].ID); st != outbox.StatusInit {
		t.Fatalf("the failed batch marked a row %s", st)
	}
	for _, tc := range []struct {
		name string
		recs []consume.Record
		want error
	}{
		{"matching", []consume.Record{good}, nil},
		{"again: already PUBLISHED", []consume.Record{good}, nil},
		{"forged", []consume.Record{forged}, consume.ErrMismatch},
		{"no row", []consume.Record{unknown}, consume.ErrSkipped},
		{"no id header", []consume.Record{noID}, consume.ErrSkipped},
		{"batch of records without rows", []consume.Record{unknown, noID}, consume.ErrSkipped},
	} {
		var err error
		if len(tc.recs) == 1 {
			err = h.Handle(ctx, tc.recs[0])
		} else {
			err = h.HandleBatch(ctx, tc.recs)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for i, want := range []outbox.Status{outbox.StatusPublished, outbox.StatusInit, outbox.StatusInit} {
		if st := consumetest.Status(t, db, msgs[i].ID); st != want {
			t.Errorf("row %d: %s, want %s", i, st, want)
		}
	}
	// A batch of matching records marks them all in one update.
	if err := h.HandleBatch(ctx, []consume.Record{consumetest.Record(msgs[1]), consumetest.Record(msgs[2])}); err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if st := consumetest.Status(t, db, msgs[i].ID); st != outbox.StatusPublished {
			t.Errorf("row %d: %s, want PUBLISHED", i, st)
		}
	}
}
