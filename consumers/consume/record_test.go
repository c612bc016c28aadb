package consume

import (
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
)

func TestMatch(t *testing.T) {
	row := event.Message{ID: uuid.New(), AggregateType: event.AggregateOrder, AggregateID: "42",
		Type: event.TypeOrderPaid, Payload: []byte(`{"orderId":42}`)}
	// engine is the record a CDC engine writes for row.
	engine := func() Record {
		return Record{Topic: event.Topic(event.AggregateOrder), Key: []byte("42"), Value: []byte(`{"orderId":42}`),
			Headers: []kafka.Header{
				{Key: event.HeaderID, Value: []byte(row.ID.String())},
				{Key: event.HeaderEventType, Value: []byte(event.TypeOrderPaid)},
			}}
	}
	without := func(r Record, header string) Record {
		var hs []kafka.Header
		for _, h := range r.Headers {
			if h.Key != header {
				hs = append(hs, h)
			}
		}
		r.Headers = hs
		return r
	}
	with := func(r Record, header, value string) Record {
		r = without(r, header)
		r.Headers = append(r.Headers, kafka.Header{Key: header, Value: []byte(value)})
		return r
	}
	for _, tc := range []struct {
		name   string
		rec    func() Record
		reason string // "" = matches
	}{
		{"as the engine writes it", engine, ""},
		{"another payload (the row's is used)", func() Record { r := engine(); r.Value = []byte(`{"orderId":1}`); return r }, ""},
		{"upper-case id", func() Record { return with(engine(), event.HeaderID, strings.ToUpper(row.ID.String())) }, ""},
		{"wrong type", func() Record { return with(engine(), event.HeaderEventType, event.TypePaymentCompleted) },
			`eventType header "PaymentCompleted", row type is "OrderPaid"`},
		{"wrong topic", func() Record { r := engine(); r.Topic = event.Topic(event.AggregatePayment); return r },
			`topic "outbox.event.payment", row's is "outbox.event.order" (aggregatetype "order")`},
		{"wrong key", func() Record { r := engine(); r.Key = []byte("7"); return r }, `key "7", row aggregateid is "42"`},
		{"no key", func() Record { r := engine(); r.Key = nil; return r }, "record has no key"},
		{"another id", func() Record { return with(engine(), event.HeaderID, uuid.NewString()) }, "names another row"},
		{"no eventType header", func() Record { return without(engine(), event.HeaderEventType) }, "record has no eventType header"},
		{"no id header", func() Record { return without(engine(), event.HeaderID) }, "record has no id header"},
		{"id not a uuid", func() Record { return with(engine(), event.HeaderID, "x") }, "is not a uuid"},
		{"long forged type is cut short", func() Record { return with(engine(), event.HeaderEventType, strings.Repeat("A", 1000)) },
			`"` + strings.Repeat("A", 64) + `"...`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rec().Match(row)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Match: %v, want nil", err)
				}
				return
			}
			if !IsPermanent(err) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Match: %v; want a permanent error with %q in it", err, tc.reason)
			}
			if len(err.Error()) > 300 {
				t.Errorf("reason is %d bytes long", len(err.Error()))
			}
		})
	}
}
