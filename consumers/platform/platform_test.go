package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/platform"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/shop"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// The data-platform handler POSTs the payload of the event's outbox row,
// and only for a record that matches the row: a forged or mismatched record
// reaches neither the platform nor the inbox, and one whose row does not
// exist is retried while recent.
func TestHandlerTrustsTheRow(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	mock := platformmock.New(platformmock.Config{Seed: 1})
	srv := httptest.NewServer(mock)
	t.Cleanup(srv.Close)
	h := platform.New(db, platform.Config{URL: srv.URL, MaxTries: 1}, consume.NewMetrics(prometheus.NewRegistry()), nil)

	// A paid order: its PaymentCompleted row.
	svc := shop.New(db)
	var user, detail int64
	if err := db.QueryRow(`INSERT INTO users (name, balance) VALUES ('u', 1000) RETURNING id`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
		INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', 300, 5 FROM p RETURNING id`).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	o, err := svc.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: detail, Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Pay(ctx, shop.PayRequest{OrderID: o.OrderID, UserID: user}); err != nil {
		t.Fatal(err)
	}
	var paid uuid.UUID
	if err := db.QueryRow(`SELECT id FROM outbox WHERE type = $1`, event.TypePaymentCompleted).Scan(&paid); err != nil {
		t.Fatal(err)
	}

	rec := func(id uuid.UUID, typ, topic, key, value string) consume.Record {
		return consume.Record{Topic: topic, Key: []byte(key), Value: []byte(value), Headers: []kafka.Header{
			{Key: event.HeaderID, Value: []byte(id.String())}, {Key: event.HeaderEventType, Value: []byte(typ)}}}
	}
	paymentTopic, userKey := event.Topic(event.AggregatePayment), fmt.Sprint(user)
	forgedValue := fmt.Sprintf(`{"paymentId":1,"orderId":%d,"userId":%d,"amount":1000000}`, o.OrderID, user)
	for _, tc := range []struct {
		name   string
		rec    consume.Record
		reason string
	}{
		{"another type", rec(paid, event.TypePaymentRefunded, paymentTopic, userKey, forgedValue),
			`eventType header "PaymentRefunded", row type is "PaymentCompleted"`},
		{"another key", rec(paid, event.TypePaymentCompleted, paymentTopic, "999", forgedValue), `key "999"`},
		{"another topic", rec(paid, event.TypePaymentCompleted, event.Topic(event.AggregateOrder), userKey, forgedValue),
			`topic "outbox.event.order"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.Handle(ctx, tc.rec)
			if !consume.IsPermanent(err) || !errors.Is(err, consume.ErrMismatch) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Handle: %v; want a Permanent ErrMismatch naming %q", err, tc.reason)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		err := h.Handle(ctx, rec(uuid.New(), event.TypePaymentCompleted, paymentTopic, userKey, forgedValue))
		if !errors.Is(err, consume.ErrNotYet) || !errors.Is(err, outbox.ErrNotFound) || consume.IsPermanent(err) {
			t.Fatalf("Handle: %v; want outbox.ErrNotFound, retried while recent", err)
		}
	})
	if st := mock.Stats(); st.Received != 0 || st.Invalid != 0 {
		t.Fatalf("the platform got %+v from records that do not match their row", st)
	}

	t.Run("another payload", func(t *testing.T) {
		if err := h.Handle(ctx, rec(paid, event.TypePaymentCompleted, paymentTopic, userKey, forgedValue)); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		got, ok := mock.Event(paid.String())
		if !ok {
			t.Fatal("the platform did not receive the event")
		}
		var p event.PaymentCompleted
		if err := json.Unmarshal(got.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Amount != 300 || p.OrderID != o.OrderID || p.UserID != user {
			t.Fatalf("the platform received %s; want the row's payload (amount 300), not the record's", got.Body)
		}
		var status string
		if err := db.QueryRow(`SELECT status FROM outbox WHERE id = $1`, paid).Scan(&status); err != nil || status != string(outbox.StatusComplete) {
			t.Fatalf("row %s (%v), want COMPLETE", status, err)
		}
	})
}
