package engine_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
)

// Records read back with a plain consumer match docs/EVENT-CONTRACT.md field by
// field: topic, key, value (the payload JSON, once), headers, timestamp
// (when the engine processed the row), partition (murmur2 of the key).
func TestRecordsFollowTheContract(t *testing.T) {
	r := newRig(t, nil)
	reg := prometheus.NewRegistry()
	r.start(reg)

	type row struct {
		id, aggType, key, typ, payload string
		committed                      time.Time
	}
	var rows []row
	for i := range 30 {
		msg, err := event.NewOrderPaid(event.OrderPaid{OrderID: int64(1000 + i), UserID: int64(i % 4),
			Items: []event.Item{{ProductDetailID: 7, Quantity: i + 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			msg.AggregateType, msg.Type = event.AggregatePayment, event.TypePaymentCompleted
			msg.AggregateID = fmt.Sprint(i % 4)
		}
		before := time.Now()
		tx, err := r.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var payloadText string
		err = tx.QueryRow(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, $2, $3, $4, $5)
			RETURNING payload::text`, msg.ID, msg.AggregateType, msg.AggregateID, msg.Type, []byte(msg.Payload)).Scan(&payloadText)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{msg.ID.String(), msg.AggregateType, msg.AggregateID, msg.Type, payloadText, before})
	}

	ids := make([]string, len(rows))
	for i, rw := range rows {
		ids[i] = rw.id
	}
	byID, dups := r.waitIDs([]string{"outbox.event.order", "outbox.event.payment"}, ids, time.Minute)
	read := time.Now()
	if dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	for _, rw := range rows {
		m := byID[rw.id]
		if *m.TopicPartition.Topic != event.Topic(rw.aggType) {
			t.Errorf("%s: topic %s, want %s", rw.id, *m.TopicPartition.Topic, event.Topic(rw.aggType))
		}
		if string(m.Key) != rw.key {
			t.Errorf("%s: key %q, want %q", rw.id, m.Key, rw.key)
		}
		if string(m.Value) != rw.payload {
			t.Errorf("%s: value %s, want the payload %s", rw.id, m.Value, rw.payload)
		}
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Errorf("%s: value is not a JSON object (double-encoded?): %s", rw.id, m.Value)
		}
		if got := kafkatest.Header(m, "id"); got != rw.id || uuid.MustParse(got).String() != got {
			t.Errorf("%s: header id %q", rw.id, got)
		}
		if got := kafkatest.Header(m, "eventType"); got != rw.typ {
			t.Errorf("%s: header eventType %q, want %q", rw.id, got, rw.typ)
		}
		if len(m.Headers) != 2 {
			t.Errorf("%s: headers %v, want id and eventType", rw.id, m.Headers)
		}
		if want := kafkatest.Partition(m.Key, 3); m.TopicPartition.Partition != want {
			t.Errorf("%s: key %q on partition %d, want murmur2 partition %d", rw.id, m.Key, m.TopicPartition.Partition, want)
		}
		if ts := m.Timestamp; ts.Before(rw.committed.Truncate(time.Millisecond)) || ts.After(read) {
			t.Errorf("%s: timestamp %v, want when the engine processed it, in [%v, %v]", rw.id, ts, rw.committed, read)
		}
	}
	// Counted when the producer handles the acknowledgement, which can be
	// a moment after a consumer already reads the records.
	eventually.True(t, 10*time.Second, "events counted as produced", func() (bool, error) {
		got := promtest.Value(t, reg, "outboxpay_cdc_events_produced_total")
		return got >= float64(len(rows)), fmt.Errorf("events_produced_total = %v, want at least %d", got, len(rows))
	})
}

// Events of one key arrive in commit order, also when several keys are
// written at once.
func TestOrderPerKey(t *testing.T) {
	r := newRig(t, nil)
	r.start(nil)
	keys := []string{"k1", "k2", "k3", "k4"}
	const perKey = 150
	done := make(chan []string, len(keys))
	for _, k := range keys {
		go func() { done <- r.insert("order", k, perKey) }()
	}
	var ids []string
	for range keys {
		ids = append(ids, <-done...)
	}
	r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
	msgs := kafkatest.ReadAll(t, r.kafka.Bootstrap(), []string{"outbox.event.order"}, len(ids), time.Minute)
	next := map[string]int{}
	for _, m := range msgs {
		var p struct {
			Seq int    `json:"seq"`
			Key string `json:"key"`
		}
		if err := json.Unmarshal(m.Value, &p); err != nil {
			t.Fatal(err)
		}
		if p.Seq != next[p.Key] {
			t.Fatalf("key %s: event %d after %d", p.Key, p.Seq, next[p.Key]-1)
		}
		next[p.Key]++
	}
	for _, k := range keys {
		if next[k] != perKey {
			t.Errorf("key %s: %d events, want %d", k, next[k], perKey)
		}
	}
}

// Rolled-back transactions, updates and deletes of outbox rows produce no
// record.
func TestOnlyCommittedInsertsAreProduced(t *testing.T) {
	r := newRig(t, nil)
	r.start(nil)
	first := r.insert("order", "a", 3)

	tx, err := r.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	rolledBack := uuid.NewString()
	if _, err := tx.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', 'a', 'TestEvent', '{}')`, rolledBack); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE outbox SET status = 'PUBLISHED', attempts = attempts + 1`,
		`UPDATE outbox SET payload = '{"changed": true}'`,
		`DELETE FROM outbox WHERE id = '` + first[0] + `'`,
	} {
		if _, err := r.db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	last := r.insert("order", "a", 1)

	all := append(first, last...)
	byID, dups := r.waitIDs([]string{"outbox.event.order"}, all, time.Minute)
	msgs := kafkatest.ReadAll(t, r.kafka.Bootstrap(), []string{"outbox.event.order"}, len(all)+1, 3*time.Second)
	if len(msgs) != len(all) || dups != 0 {
		t.Fatalf("%d records, want %d (one per committed insert)", len(msgs), len(all))
	}
	if byID[rolledBack] != nil {
		t.Fatal("the rolled-back insert was produced")
	}
	for _, m := range msgs {
		if strings.Contains(string(m.Value), "changed") {
			t.Fatalf("an update was produced: %s", m.Value)
		}
	}
}

// A transaction of many rows and a TOASTed 1 MB payload both arrive whole.
func TestBigTransactionAndLargePayload(t *testing.T) {
	r := newRig(t, nil)
	r.start(nil)
	const n = 20000
	tx, err := r.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	if _, err := tx.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
		SELECT id::uuid, 'order', (ord % 97)::text, 'TestEvent', jsonb_build_object('seq', ord)
		FROM unnest($1::text[]) WITH ORDINALITY AS t(id, ord)`, pqArray(ids)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	big := uuid.NewString()
	blob := strings.Repeat(uuid.NewString(), 1_000_000/36) // ~1 MB, TOASTed
	if _, err := r.db.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
		VALUES ($1, 'payment', 'big', 'TestEvent', jsonb_build_object('blob', $2::text))`, big, blob); err != nil {
		t.Fatal(err)
	}
	r.waitIDs([]string{"outbox.event.order"}, ids, 2*time.Minute)
	byID, _ := r.waitIDs([]string{"outbox.event.payment"}, []string{big}, time.Minute)
	var p struct{ Blob string }
	if err := json.Unmarshal(byID[big].Value, &p); err != nil || p.Blob != blob {
		t.Fatalf("large payload arrived as %d bytes (%v)", len(byID[big].Value), err)
	}
}

// A producer queue smaller than a transaction fills up: the engine waits
// for acknowledgements and goes on, losing nothing.
func TestBackpressure(t *testing.T) {
	r := newRig(t, nil)
	r.producer = map[string]any{"queue.buffering.max.messages": 5}
	r.start(nil)
	const n = 500
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	if _, err := r.db.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
		SELECT id::uuid, 'order', (ord % 7)::text, 'TestEvent', jsonb_build_object('seq', ord)
		FROM unnest($1::text[]) WITH ORDINALITY AS t(id, ord)`, pqArray(ids)); err != nil {
		t.Fatal(err)
	}
	r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
}
