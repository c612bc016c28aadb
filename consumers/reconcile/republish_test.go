package reconcile_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// A republished record is stamped when the reconciler republishes it, as a
// CDC engine stamps the change it processes (not with created_at), and a
// NULL column placed as a header is a header with a null value, an empty
// text an empty one: the records Debezium's EventRouter would make. Read
// back with kgo, byte for byte.
func TestRepublishTimestampAndNullHeader(t *testing.T) {
	r := newRig(t)
	r.exec(`ALTER TABLE outbox ADD COLUMN note text`)
	msgs := r.insert(2)[:3]
	notes := []*string{nil, new(string), func() *string { s := "gift"; return &s }()}
	for i, m := range msgs {
		r.exec(`UPDATE outbox SET note = $2 WHERE id = $1`, m.ID, notes[i])
	}
	r.set(msgs, `created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'`)
	router := connect.DefaultRouter
	router.Headers = append(slices.Clone(router.Headers), connect.HeaderPlacement{Column: "note", Header: "note"})
	rc := reconcile.New(r.worker, nil, r.pub, router, reconcile.Config{}, nil, testLogger(t))

	ran := time.Now()
	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepublishedInit != len(msgs) {
		t.Fatalf("report %+v, want %d INIT rows republished", rep, len(msgs))
	}
	recs := kafkatest.ReadRaw(t, r.kafka.Bootstrap(), topics, len(msgs), 20*time.Second)
	read := time.Now()
	byID := map[string]*kgo.Record{}
	for _, rec := range recs {
		byID[string(rec.Headers[0].Value)] = rec
	}
	for i, m := range msgs {
		rec := byID[m.ID.String()]
		if rec == nil {
			t.Fatalf("no record of %s among %d", m.ID, len(recs))
		}
		if ts := rec.Timestamp; ts.Before(ran.Truncate(time.Millisecond)) || ts.After(read) {
			t.Errorf("%s: timestamp %v, want when it was republished, in [%v, %v]", m.ID, ts.UTC(), ran.UTC(), read.UTC())
		}
		want := r.expected(m)
		if rec.Topic != want.Topic || !bytes.Equal(rec.Key, want.Key) || !bytes.Equal(rec.Value, want.Value) {
			t.Errorf("%s: %s key %q value %q, want %s %q %q", m.ID, rec.Topic, rec.Key, rec.Value, want.Topic, want.Key, want.Value)
		}
		var note []byte
		if notes[i] != nil {
			note = append([]byte{}, *notes[i]...)
		}
		wantHeaders := append(want.Headers, event.Header{Key: "note", Value: note})
		if got := headersOf(rec); !slices.EqualFunc(got, wantHeaders, event.Header.Equal) {
			t.Errorf("%s: headers %v, want %v", m.ID, got, wantHeaders)
		}
	}
}

func headersOf(rec *kgo.Record) []event.Header {
	var hs []event.Header
	for _, h := range rec.Headers {
		hs = append(hs, event.Header{Key: h.Key, Value: h.Value})
	}
	return hs
}
