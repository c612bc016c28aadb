package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/contractdoc"
)

// The example records of docs/EVENT-CONTRACT.md are what the engine
// writes, byte for byte: their outbox rows (payloads built by the
// product's constructors from the examples' fields) streamed by the engine
// and read back with franz-go have the documented topic, key, value and
// headers. (Partitions: the examples' topics have 6 partitions, this
// Kafka's fewer; internal/event's test checks the documented ones.)
func TestContractDocumentRecordsByteForByte(t *testing.T) {
	recs, err := contractdoc.Records("../../docs/EVENT-CONTRACT.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < len(event.Types()) {
		t.Fatalf("%d example records in the contract document, want one of each event type at least", len(recs))
	}
	r := newRig(t, nil)
	r.start(nil)
	r.waitStreaming()

	want := map[string]contractdoc.Record{} // by id
	var topics []string
	for _, rec := range recs {
		msg, err := contractdoc.Message(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.db.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, $2, $3, $4, $5)`,
			msg.ID, msg.AggregateType, msg.AggregateID, msg.Type, []byte(msg.Payload)); err != nil {
			t.Fatalf("line %d: insert the outbox row: %v", rec.Line, err)
		}
		want[msg.ID.String()] = rec
		if !slices.Contains(topics, rec.Topic) {
			topics = append(topics, rec.Topic)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.kafka.Bootstrap(), ",")...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	got := map[string]*kgo.Record{}
	for len(got) < len(want) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d records before the deadline", len(got), len(want))
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch %s/%d: %v", topic, p, err) // an auto-created topic can be unknown for a moment
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			for _, h := range rec.Headers {
				if h.Key == event.HeaderID {
					if _, ok := want[string(h.Value)]; ok && got[string(h.Value)] == nil {
						got[string(h.Value)] = rec
					}
				}
			}
		})
	}

	for id, doc := range want {
		rec := got[id]
		t.Run(fmt.Sprintf("line %d", doc.Line), func(t *testing.T) {
			if rec.Topic != doc.Topic || string(rec.Key) != doc.Key {
				t.Errorf("topic %s key %q; the document says topic %s key %q", rec.Topic, rec.Key, doc.Topic, doc.Key)
			}
			if string(rec.Value) != doc.Value {
				t.Errorf("value\n  %s\nthe document says\n  %s", rec.Value, doc.Value)
			}
			// Each documented header, in order, with the same bytes.
			var headers []event.Header
			for _, h := range rec.Headers {
				if _, ok := doc.Header(h.Key); ok {
					headers = append(headers, event.Header{Key: h.Key, Value: h.Value})
				}
			}
			if fmt.Sprintf("%q", headers) != fmt.Sprintf("%q", doc.Headers) {
				t.Errorf("headers %q; the document says %q", headers, doc.Headers)
			}
		})
	}
}
