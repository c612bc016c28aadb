package engine_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// Rows committed while the engine is stopped are stamped when it processes
// them, not with their commit time (as Debezium's EventRouter stamps the
// envelope's ts_ms), and a NULL column placed as a header is a header with
// a null value, an empty text an empty one. Read back with kgo, byte for
// byte.
func TestRecordTimestampAndNullHeader(t *testing.T) {
	r := newRig(t, map[string]string{
		"transforms.outbox.table.fields.additional.placement": "type:header:eventType,note:header:note",
	})
	if _, err := r.db.Exec(`ALTER TABLE outbox ADD COLUMN note text`); err != nil {
		t.Fatal(err)
	}
	stop := r.start(nil) // creates the slot: what commits from now on is streamed
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	type row struct {
		id      string
		note    *string
		payload string
	}
	empty, text := "", "gift"
	rows := []row{{id: uuid.NewString()}, {id: uuid.NewString(), note: &empty}, {id: uuid.NewString(), note: &text}}
	for i := range rows {
		err := r.db.QueryRow(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, note)
			VALUES ($1, 'order', '7', 'TestEvent', $2, $3) RETURNING payload::text`,
			rows[i].id, `{"n": `+strconv.Itoa(i)+`}`, rows[i].note).Scan(&rows[i].payload)
		if err != nil {
			t.Fatal(err)
		}
	}
	committed := time.Now() // every row committed before this
	// The engine processes them in a later millisecond than any commit.
	eventually.True(t, time.Second, "the clock past the commits' millisecond", func() (bool, error) {
		return time.Now().Truncate(time.Millisecond).After(committed), nil
	})
	before := time.Now()
	r.start(nil)
	recs := kafkatest.ReadRaw(t, r.kafka.Bootstrap(), []string{event.Topic("order")}, len(rows), time.Minute)
	after := time.Now()

	byID := map[string]*kgo.Record{}
	for _, m := range recs {
		for _, h := range m.Headers {
			if h.Key == event.HeaderID {
				byID[string(h.Value)] = m
			}
		}
	}
	for _, rw := range rows {
		m := byID[rw.id]
		if m == nil {
			t.Fatalf("no record of %s among %d", rw.id, len(recs))
		}
		if ts := m.Timestamp; ts.Before(before.Truncate(time.Millisecond)) || ts.After(after) || !ts.After(committed) {
			t.Errorf("%s: timestamp %v, want when the engine processed it, in [%v, %v], after the commit (before %v)",
				rw.id, ts.UTC(), before.UTC(), after.UTC(), committed.UTC())
		}
		if m.Attrs.TimestampType() != 0 {
			t.Errorf("%s: timestamp type %d, want CreateTime (0)", rw.id, m.Attrs.TimestampType())
		}
		if string(m.Key) != "7" || string(m.Value) != rw.payload {
			t.Errorf("%s: key %q value %q, want 7 and %q", rw.id, m.Key, m.Value, rw.payload)
		}
		want := []event.Header{{Key: "id", Value: []byte(rw.id)}, {Key: "eventType", Value: []byte("TestEvent")},
			{Key: "note", Value: noteValue(rw.note)}}
		if got := headersOf(m); !slices.EqualFunc(got, want, event.Header.Equal) {
			t.Errorf("%s: headers %v, want %v", rw.id, got, want)
		}
	}
}

// noteValue is the header value of a note: nil (Kafka's null) for NULL.
func noteValue(note *string) []byte {
	if note == nil {
		return nil
	}
	return append([]byte{}, *note...)
}

// headersOf returns a record's headers as the contract's, keeping a null
// value null.
func headersOf(m *kgo.Record) []event.Header {
	hs := make([]event.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = event.Header{Key: h.Key, Value: h.Value}
	}
	return hs
}
