package ops_test

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// rig is a database (as the superuser and as the operator's role) and a
// Kafka cluster that enforces the product's ACLs, with the service on them
// as the operator's role and principal.
type rig struct {
	t     *testing.T
	admin *sql.DB
	url   string
	op    *sql.DB
	kafka *kafkacluster.Cluster
	sasl  *kafkacluster.SASL
	svc   *ops.Service
}

func newRig(t *testing.T, cfg ops.Config) *rig {
	t.Helper()
	sasl := &kafkacluster.SASL{Mechanism: kafkaclient.ScramSHA512, Superuser: kafkaclient.PrincipalAdmin,
		SuperuserPassword: "admin-pw", Users: map[string]string{}, ACLs: kafkaclient.ACLs()}
	for _, p := range kafkaclient.Principals() {
		sasl.Users[p] = p + "-pw"
	}
	r := &rig{t: t, sasl: sasl}
	r.kafka = kafkaclustertest.Start(t, kafkacluster.Options{SASL: sasl})
	r.admin, r.url = pgtest.NewDB(t)
	r.op, _ = pgtest.AsRole(t, r.url, migrations.RoleOperator)
	cfg.DB, cfg.Kafka = r.op, r.as(kafkaclient.PrincipalOperator)
	if cfg.Logger == nil {
		cfg.Logger = logtest.T(t, slog.LevelDebug)
	}
	svc, err := ops.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	r.svc = svc
	return r
}

// as is the cluster as principal p.
func (r *rig) as(p string) kafkaclient.Config {
	if p == kafkaclient.PrincipalAdmin {
		return kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()}.WithUser(r.sasl.Mechanism, p, r.sasl.SuperuserPassword)
	}
	return kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()}.WithUser(r.sasl.Mechanism, p, r.sasl.Users[p])
}

// insert writes an OrderPaid event of order orderID and sets its row's
// status with the delivery columns such a row has after trouble.
func (r *rig) insert(orderID int64, status outbox.Status, published bool) event.Message {
	r.t.Helper()
	m, err := event.NewOrderPaid(event.OrderPaid{OrderID: orderID, UserID: 3, Items: []event.Item{{ProductDetailID: 2, Quantity: 1}}})
	if err != nil {
		r.t.Fatal(err)
	}
	tx, err := r.admin.Begin()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := outbox.Insert(r.t.Context(), tx, m); err != nil {
		r.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		r.t.Fatal(err)
	}
	r.exec(`UPDATE outbox SET status = $2, attempts = 5, last_error = 'broken',
		published_at = CASE WHEN $3 THEN now() END, failed_at = CASE WHEN $2 = 'FAILED' THEN now() END,
		completed_at = CASE WHEN $2 = 'COMPLETE' THEN now() END WHERE id = $1`, m.ID, string(status), published)
	return m
}

func (r *rig) exec(query string, args ...any) {
	r.t.Helper()
	if _, err := r.admin.ExecContext(r.t.Context(), query, args...); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
}

func (r *rig) status(id uuid.UUID) (status string, attempts int) {
	r.t.Helper()
	if err := r.admin.QueryRow(`SELECT status, attempts FROM outbox WHERE id = $1`, id).Scan(&status, &attempts); err != nil {
		r.t.Fatal(err)
	}
	return status, attempts
}

func (r *rig) auditRows() int {
	r.t.Helper()
	var n int
	if err := r.admin.QueryRow(`SELECT count(*) FROM operator_audit`).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// produceDLQ writes dead-lettered records of events to topic's DLQ, as
// consume's DLQ writes them, and returns them as written (with offsets).
func (r *rig) produceDLQ(topic string, ids ...uuid.UUID) []*kafka.Message {
	r.t.Helper()
	cm := r.as(kafkaclient.PrincipalAdmin).ProducerConfigMap(nil)
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		r.t.Fatal(err)
	}
	defer p.Close()
	dlq := event.DLQTopic(topic)
	var out []*kafka.Message
	for i, id := range ids {
		delivered := make(chan kafka.Event, 1)
		err := p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &dlq, Partition: kafka.PartitionAny},
			Key:            []byte(fmt.Sprint(i)), Value: fmt.Appendf(nil, `{"n": %d}`, i),
			Headers: []kafka.Header{
				{Key: event.HeaderID, Value: []byte(id.String())},
				{Key: event.HeaderEventType, Value: []byte(event.TypeOrderPaid)},
				{Key: event.HeaderDLQReason, Value: []byte("no such product")},
				{Key: event.HeaderDLQHandler, Value: []byte(event.GroupStock)},
				{Key: event.HeaderDLQTopic, Value: []byte(topic)},
				{Key: event.HeaderDLQPartition, Value: []byte("0")},
				{Key: event.HeaderDLQOffset, Value: []byte(fmt.Sprint(i))},
				{Key: event.HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
			},
		}, delivered)
		if err != nil {
			r.t.Fatal(err)
		}
		m := (<-delivered).(*kafka.Message)
		if m.TopicPartition.Error != nil {
			r.t.Fatal(m.TopicPartition.Error)
		}
		out = append(out, m)
	}
	return out
}

// count is how many records topics hold.
func (r *rig) count(topics ...string) int64 {
	r.t.Helper()
	n, err := kafkatest.CountAs(r.as(kafkaclient.PrincipalAdmin), topics)
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

var actor = ops.Actor{Name: "alice", Reason: "  the platform is healed  "}

// Each row action from each status, through the service as the operator's
// role: the resulting status, changed, an audit row each time it is
// allowed (reason trimmed, actor, changed), ErrConflict with neither a
// change nor an audit row where it is not. Bad input (a blank or too long
// reason, no actor) is ErrInvalid and changes nothing; a missing row is
// ErrNotFound.
func TestRowActions(t *testing.T) {
	r := newRig(t, ops.Config{})
	ctx := t.Context()
	do := map[string]func(uuid.UUID, ops.Actor) (ops.Result, error){
		ops.ActionRetry:   func(id uuid.UUID, a ops.Actor) (ops.Result, error) { return r.svc.Retry(ctx, a, id) },
		ops.ActionPark:    func(id uuid.UUID, a ops.Actor) (ops.Result, error) { return r.svc.Park(ctx, a, id) },
		ops.ActionDiscard: func(id uuid.UUID, a ops.Actor) (ops.Result, error) { return r.svc.Discard(ctx, a, id) },
	}
	for i, tc := range []struct {
		action  string
		from    outbox.Status
		want    outbox.Status // "" for a conflict
		changed bool
	}{
		{ops.ActionRetry, outbox.StatusParked, outbox.StatusPublished, true},
		{ops.ActionRetry, outbox.StatusPublished, outbox.StatusPublished, false},
		{ops.ActionRetry, outbox.StatusComplete, outbox.StatusComplete, false},
		{ops.ActionRetry, outbox.StatusDiscarded, "", false},
		{ops.ActionPark, outbox.StatusFailed, outbox.StatusParked, true},
		{ops.ActionPark, outbox.StatusParked, outbox.StatusParked, false},
		{ops.ActionPark, outbox.StatusComplete, "", false},
		{ops.ActionDiscard, outbox.StatusParked, outbox.StatusDiscarded, true},
		{ops.ActionDiscard, outbox.StatusDiscarded, outbox.StatusDiscarded, false},
		{ops.ActionDiscard, outbox.StatusComplete, "", false},
	} {
		t.Run(fmt.Sprintf("%s %s", tc.action, tc.from), func(t *testing.T) {
			m := r.insert(int64(100+i), tc.from, true)
			before := r.auditRows()
			res, err := do[tc.action](m.ID, actor)
			if tc.want == "" {
				if !errors.Is(err, ops.ErrConflict) {
					t.Fatalf("%+v, %v; want ErrConflict", res, err)
				}
				if s, _ := r.status(m.ID); s != string(tc.from) || r.auditRows() != before {
					t.Fatalf("refused, yet status %s, %d audit rows (had %d)", s, r.auditRows(), before)
				}
				return
			}
			if err != nil || res.Status != tc.want || res.Changed != tc.changed || res.AuditID == 0 {
				t.Fatalf("%+v, %v; want %s changed=%v", res, err, tc.want, tc.changed)
			}
			if s, _ := r.status(m.ID); s != string(tc.want) {
				t.Fatalf("status %s, want %s", s, tc.want)
			}
			entries, err := r.svc.Audit(ctx, ops.AuditQuery{Target: m.ID.String()})
			if err != nil || len(entries) != 1 {
				t.Fatalf("audit of %s: %+v, %v", m.ID, entries, err)
			}
			if e := entries[0]; e.ID != res.AuditID || e.Actor != "alice" || e.Action != tc.action ||
				e.Reason != "the platform is healed" || e.Changed != tc.changed || e.Target != m.ID.String() {
				t.Fatalf("audit row %+v", e)
			}
		})
	}

	m := r.insert(200, outbox.StatusFailed, true)
	long := strings.Repeat("é", ops.MaxReasonLen+1)
	for _, a := range []ops.Actor{{Name: "alice"}, {Name: "alice", Reason: " \t "}, {Name: "alice", Reason: long}, {Reason: "why"}} {
		for name, f := range do {
			if _, err := f(m.ID, a); !errors.Is(err, ops.ErrInvalid) {
				t.Errorf("%s with %q/%d characters: %v, want ErrInvalid", name, a.Name, len([]rune(a.Reason)), err)
			}
		}
	}
	if s, attempts := r.status(m.ID); s != "FAILED" || attempts != 5 {
		t.Errorf("after bad input: %s, %d attempts", s, attempts)
	}
	if _, err := r.svc.Park(ctx, ops.Actor{Name: "alice", Reason: strings.Repeat("é", ops.MaxReasonLen)}, m.ID); err != nil {
		t.Errorf("a reason of MaxReasonLen characters: %v", err)
	}
	for name, f := range do {
		if _, err := f(uuid.New(), actor); !errors.Is(err, ops.ErrNotFound) {
			t.Errorf("%s of a missing row: %v, want ErrNotFound", name, err)
		}
	}
	entries, err := r.svc.Audit(ctx, ops.AuditQuery{Limit: 3})
	if err != nil || len(entries) != 3 || entries[0].ID <= entries[1].ID {
		t.Errorf("the audit log, newest first, limit 3: %+v, %v", entries, err)
	}
	if _, err := r.svc.Audit(ctx, ops.AuditQuery{Limit: 501}); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("limit 501: %v", err)
	}
}

// A retry of a FAILED row makes it PUBLISHED with no attempts and
// publishes at once the record the reconciler would republish (the
// router's, of the row as Postgres holds it); one of a never published row
// makes it INIT.
func TestRetryPublishes(t *testing.T) {
	r := newRig(t, ops.Config{})
	ctx := t.Context()
	m := r.insert(7, outbox.StatusFailed, true)
	start := time.Now()
	res, err := r.svc.Retry(ctx, actor, m.ID)
	if err != nil || !res.Changed || res.Status != outbox.StatusPublished {
		t.Fatalf("%+v, %v", res, err)
	}
	if s, attempts := r.status(m.ID); s != "PUBLISHED" || attempts != 0 {
		t.Fatalf("row %s, %d attempts; want PUBLISHED, 0", s, attempts)
	}
	var payload string
	if err := r.admin.QueryRow(`SELECT payload::text FROM outbox WHERE id = $1`, m.ID).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	want, err := connect.DefaultRouter.Route(connect.Columns{"id": m.ID.String(), "aggregatetype": m.AggregateType,
		"aggregateid": m.AggregateID, "type": m.Type, "payload": payload}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := kafkatest.ReadAllAs(t, r.as(kafkaclient.PrincipalAdmin), []string{want.Topic}, 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d records", len(got))
	}
	g := got[0]
	if string(g.Key) != string(want.Key) || string(g.Value) != string(want.Value) || len(g.Headers) != len(want.Headers) ||
		g.Timestamp.Before(start.Truncate(time.Millisecond)) || g.TopicPartition.Partition != kafkatest.Partition(want.Key, 3) {
		t.Fatalf("record %v (headers %v), want %+v", g, g.Headers, want)
	}
	for i, h := range want.Headers {
		if g.Headers[i].Key != h.Key || string(g.Headers[i].Value) != string(h.Value) {
			t.Errorf("header %d: %s=%s, want %s=%s", i, g.Headers[i].Key, g.Headers[i].Value, h.Key, h.Value)
		}
	}

	never := r.insert(8, outbox.StatusFailed, false)
	if res, err := r.svc.Retry(ctx, actor, never.ID); err != nil || res.Status != outbox.StatusInit {
		t.Fatalf("retry of a never published row: %+v, %v", res, err)
	}
}

// The DLQ list reads dead-lettered records with their headers, newest
// first, by event when asked. Re-driving one record produces it on its
// original topic without the dlq.* headers; again, it is skipped. Re-driving
// the topic produces the others once, then nothing; `outboxpay replay`
// (consume.Replay) shares the replay group's offsets, so neither re-drives
// what the other did. The summary's DLQ depth follows.
func TestRedrive(t *testing.T) {
	r := newRig(t, ops.Config{})
	ctx := t.Context()
	topic := event.Topic(event.AggregateOrder)
	dlq := event.DLQTopic(topic)
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	written := r.produceDLQ(topic, ids...)
	depth := func() int64 {
		t.Helper()
		s, err := r.svc.Summary(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range s.DLQ {
			if d.Topic == dlq {
				return d.Depth
			}
		}
		t.Fatalf("no depth of %s in %+v", dlq, s.DLQ)
		return 0
	}
	if d := depth(); d != 3 {
		t.Errorf("depth %d, want 3", d)
	}

	recs, err := r.svc.DLQ(ctx, ops.DLQQuery{})
	if err != nil || len(recs) != 3 {
		t.Fatalf("DLQ: %+v, %v", recs, err)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Timestamp.After(recs[i-1].Timestamp) {
			t.Errorf("not newest first: %+v", recs)
		}
	}
	one, err := r.svc.DLQ(ctx, ops.DLQQuery{EventID: ids[1], Topic: dlq})
	if err != nil || len(one) != 1 {
		t.Fatalf("DLQ of %s: %+v, %v", ids[1], one, err)
	}
	rec := one[0]
	w := written[1]
	if rec.Topic != dlq || rec.Partition != w.TopicPartition.Partition || rec.Offset != int64(w.TopicPartition.Offset) ||
		*rec.EventID != ids[1] || rec.OriginalTopic != topic || rec.Handler != event.GroupStock ||
		rec.Reason != "no such product" || rec.DeadLetteredAt == nil || rec.RedrivenAt != nil {
		t.Fatalf("record %+v", rec)
	}
	if _, err := r.svc.DLQ(ctx, ops.DLQQuery{Topic: topic}); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("DLQ of a topic that is no DLQ: %v", err)
	}

	p, o := rec.Partition, rec.Offset
	res, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq, Partition: &p, Offset: &o})
	if err != nil || !res.Changed || res.Redriven != 1 {
		t.Fatalf("redrive one: %+v, %v", res, err)
	}
	back := kafkatest.ReadAllAs(t, r.as(kafkaclient.PrincipalAdmin), []string{topic}, 1, 20*time.Second)
	if len(back) != 1 || string(back[0].Value) != string(w.Value) || string(back[0].Key) != string(w.Key) ||
		kafkatest.Header(back[0], event.HeaderID) != ids[1].String() || len(back[0].Headers) != 2 {
		t.Fatalf("re-driven record %v, headers %v", back, back[0].Headers)
	}
	if res, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq, Partition: &p, Offset: &o}); err != nil || res.Changed || res.Redriven != 0 {
		t.Fatalf("redrive one again: %+v, %v", res, err)
	}
	if d := depth(); d != 2 {
		t.Errorf("depth %d after one re-drive, want 2", d)
	}
	far := int64(1000)
	if _, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq, Partition: &p, Offset: &far}); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("redrive past the end: %v", err)
	}
	if _, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: topic}); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("redrive of a topic that is no DLQ: %v", err)
	}
	if _, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq, Partition: &p}); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("redrive with a partition alone: %v", err)
	}

	res, err = r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq})
	if err != nil || !res.Changed || res.Redriven != 2 {
		t.Fatalf("redrive all: %+v, %v", res, err)
	}
	if res, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq}); err != nil || res.Changed || res.Redriven != 0 {
		t.Fatalf("redrive all again: %+v, %v", res, err)
	}
	if n := r.count(topic); n != 3 {
		t.Errorf("%d records on %s, want each of the 3 once", n, topic)
	}
	if d := depth(); d != 0 {
		t.Errorf("depth %d after re-driving all, want 0", d)
	}
	recs, err = r.svc.DLQ(ctx, ops.DLQQuery{Topic: dlq})
	if err != nil || len(recs) != 3 {
		t.Fatalf("DLQ: %+v, %v", recs, err)
	}
	for _, rec := range recs {
		if rec.RedrivenAt == nil {
			t.Errorf("record %+v: no redriven_at", rec)
		}
	}

	// replay shares the offsets: it re-drives the record written since,
	// and the console's re-drive of all then finds nothing.
	late := r.produceDLQ(topic, uuid.New())[0]
	n, err := consume.Replay(ctx, r.as(kafkaclient.PrincipalReplay), []string{dlq}, nil)
	if err != nil || n != 1 {
		t.Fatalf("replay: %d, %v; want 1", n, err)
	}
	if res, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq}); err != nil || res.Redriven != 0 {
		t.Fatalf("redrive all after replay: %+v, %v", res, err)
	}
	// Nor does a re-drive of one record the replay group has passed.
	lp, lo := late.TopicPartition.Partition, int64(late.TopicPartition.Offset)
	if res, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: dlq, Partition: &lp, Offset: &lo}); err != nil || res.Changed {
		t.Fatalf("redrive one after replay: %+v, %v", res, err)
	}
	if n := r.count(topic); n != 4 {
		t.Errorf("%d records on %s, want 4", n, topic)
	}
	entries, err := r.svc.Audit(ctx, ops.AuditQuery{Target: dlq})
	if err != nil || len(entries) != 3 || entries[2].Detail != "2 re-driven, 1 re-driven before" {
		t.Errorf("audit of %s: %+v, %v", dlq, entries, err)
	}
}

// The summary of known rows: counts by status (COMPLETE estimated from the
// statistics), the oldest INIT or PUBLISHED row's age, FAILED, the window's
// completions and percentiles, every consumer group, and the connector
// UNKNOWN and unavailable without Kafka Connect. The series buckets the
// same completions. Out-of-range windows, spans and steps are ErrInvalid.
func TestSummaryAndSeries(t *testing.T) {
	r := newRig(t, ops.Config{})
	ctx := t.Context()
	// 100 completions 20 s ago with latencies 1..100 ms, 10 an hour ago;
	// INIT rows 1 and 10 minutes old, a PARKED one a day old, 2 FAILED.
	r.exec(`
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at, completed_at)
		SELECT gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'COMPLETE',
		       now() - interval '20 seconds' - i * interval '1 millisecond', now() - interval '20 seconds'
		  FROM generate_series(1, 100) i;
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at, completed_at)
		SELECT gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'COMPLETE', now() - interval '61 minutes', now() - interval '59 minutes'
		  FROM generate_series(1, 10);
		INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status, created_at) VALUES
		  (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'INIT', now() - interval '1 minute'),
		  (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'INIT', now() - interval '10 minutes'),
		  (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'PARKED', now() - interval '1 day'),
		  (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'FAILED', now() - interval '2 days'),
		  (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', 'FAILED', now() - interval '2 days');
		ANALYZE outbox`)
	s, err := r.svc.Summary(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := map[outbox.Status]int64{"COMPLETE": 110, "INIT": 2, "PUBLISHED": 0, "FAILED": 2, "PARKED": 1, "DISCARDED": 0}
	if fmt.Sprint(s.Outbox.Rows) != fmt.Sprint(want) || s.Outbox.Failed != 2 {
		t.Errorf("rows %v, failed %d; want %v, 2", s.Outbox.Rows, s.Outbox.Failed, want)
	}
	if o := s.Outbox.OldestUnfinishedSeconds; o < 600 || o > 660 {
		t.Errorf("oldest unfinished %vs, want 600 (the PARKED and FAILED rows do not count)", o)
	}
	near := func(got, want float64) bool { return got > want-0.5 && got < want+0.5 }
	if w := s.Window; w.Seconds != 60 || w.Completed != 100 || !near(w.PerSecond, 100.0/60) ||
		!near(w.P50ms, 50.5) || !near(w.P95ms, 95.05) || !near(w.P99ms, 99.01) {
		t.Errorf("window %+v", w)
	}
	if s.Connector.State != "UNKNOWN" || fmt.Sprint(s.Unavailable) != "[connector]" {
		t.Errorf("connector %+v, unavailable %v; want UNKNOWN, [connector]", s.Connector, s.Unavailable)
	}
	if len(s.Consumers) != len(kafkaclient.ConsumerGroups()) || len(s.DLQ) != len(event.DLQTopics()) || s.Slots == nil {
		t.Errorf("consumers %+v, dlq %+v, slots %v", s.Consumers, s.DLQ, s.Slots)
	}

	series, err := r.svc.Series(ctx, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range series.Buckets {
		total += b.Completed
		if b.At.Truncate(time.Minute) != b.At || b.PerSecond != float64(b.Completed)/60 {
			t.Errorf("bucket %+v", b)
		}
	}
	if series.StepSeconds != 60 || total != 110 || len(series.Buckets) != 2 || series.Buckets[0].Completed != 10 ||
		!near(series.Buckets[0].P50ms, 2*60*1000) {
		t.Errorf("series %+v", series)
	}

	for _, w := range []time.Duration{9 * time.Second, time.Hour + time.Second} {
		if _, err := r.svc.Summary(ctx, w); !errors.Is(err, ops.ErrInvalid) {
			t.Errorf("window %v: %v", w, err)
		}
	}
	for _, sp := range [][2]time.Duration{{30 * time.Second, time.Second}, {61 * time.Minute, time.Second},
		{time.Minute, 500 * time.Millisecond}, {time.Minute, 6 * time.Minute}} {
		if _, err := r.svc.Series(ctx, sp[0], sp[1]); !errors.Is(err, ops.ErrInvalid) {
			t.Errorf("series %v by %v: %v", sp[0], sp[1], err)
		}
	}
}

// With Kafka unreachable the summary still answers, naming kafka in
// Unavailable, without an address in what it returns.
func TestSummaryWithoutKafka(t *testing.T) {
	_, url := pgtest.NewDB(t)
	op, _ := pgtest.AsRole(t, url, migrations.RoleOperator)
	svc, err := ops.New(ops.Config{DB: op, Kafka: kafkaclient.Config{Bootstrap: "127.0.0.1:1"}, Logger: logtest.T(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	s, err := svc.Summary(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.Unavailable) != "[connector kafka]" || len(s.Consumers) != 0 || s.Outbox.Rows == nil {
		t.Errorf("summary %+v", s)
	}
	if _, err := svc.DLQ(t.Context(), ops.DLQQuery{}); !errors.Is(err, ops.ErrUpstream) || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("DLQ without Kafka: %v", err)
	}
}

// An event's life: its row and payload, its handler and when it handled,
// its dead-lettered record (with its re-drive), the audit rows of actions
// on it, and the timeline of all of it, oldest first.
func TestLife(t *testing.T) {
	r := newRig(t, ops.Config{})
	ctx := t.Context()
	m := r.insert(9, outbox.StatusFailed, true)
	r.exec(`UPDATE outbox SET created_at = now() - interval '1 hour', published_at = now() - interval '59 minutes',
		failed_at = now() - interval '30 minutes' WHERE id = $1`, m.ID)
	w := r.produceDLQ(event.Topic(event.AggregateOrder), m.ID)[0]
	p, o := w.TopicPartition.Partition, int64(w.TopicPartition.Offset)
	if _, err := r.svc.Redrive(ctx, actor, ops.Redrive{Topic: *w.TopicPartition.Topic, Partition: &p, Offset: &o}); err != nil {
		t.Fatal(err)
	}
	failed, err := r.svc.Life(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(failed.Timeline); n != 5 || failed.Timeline[2].What != ops.MomentFailed || failed.Timeline[2].Detail != "broken" {
		t.Errorf("timeline of the FAILED row %+v", failed.Timeline)
	}
	if _, err := r.svc.Park(ctx, actor, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Retry(ctx, actor, m.ID); err != nil {
		t.Fatal(err)
	}
	r.exec(`INSERT INTO processed_events (consumer_group, event_id) VALUES ('stock', $1)`, m.ID)
	r.exec(`UPDATE outbox SET status = 'COMPLETE', completed_at = now(), handled_by = '{stock}' WHERE id = $1`, m.ID)

	life, err := r.svc.Life(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if life.Event.ID != m.ID || life.Event.Status != outbox.StatusComplete || life.Event.OrderID != 9 ||
		life.Event.Topic != event.Topic(event.AggregateOrder) || string(life.Payload) == "" {
		t.Errorf("event %+v, payload %s", life.Event, life.Payload)
	}
	if len(life.Handlers) != 1 || life.Handlers[0].Group != event.GroupStock || life.Handlers[0].ProcessedAt == nil {
		t.Errorf("handlers %+v", life.Handlers)
	}
	if len(life.DLQ) != 1 || life.DLQ[0].RedrivenAt == nil || len(life.Audit) != 2 {
		t.Errorf("dlq %+v, audit %+v", life.DLQ, life.Audit)
	}
	var whats []string
	for i, mo := range life.Timeline {
		whats = append(whats, mo.What)
		if i > 0 && mo.At.Before(life.Timeline[i-1].At) {
			t.Errorf("timeline not in order: %+v", life.Timeline)
		}
	}
	// The retry cleared failed_at: the failure shows in last_error and
	// the audit rows.
	want := "[committed published dead-lettered redriven park retry handled complete]"
	if fmt.Sprint(whats) != want {
		t.Errorf("timeline %v, want %v", whats, want)
	}
	// An action's moment names who, why and the change it made.
	for _, mo := range life.Timeline {
		if mo.What == ops.ActionRetry && !strings.HasSuffix(mo.Detail, "(PARKED -> PUBLISHED)") ||
			mo.What == ops.ActionPark && !strings.HasSuffix(mo.Detail, "(FAILED -> PARKED)") {
			t.Errorf("moment %s: detail %q", mo.What, mo.Detail)
		}
	}
	if _, err := r.svc.Life(ctx, uuid.New()); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("life of a missing event: %v", err)
	}
}

// Pause, resume and restart go to the real Kafka Connect worker (with the
// embedded engine) through its REST API: the connector's state follows, a
// pause of a PAUSED connector changes nothing, every action is audited
// under the connector's name, and the summary shows the state. An unknown
// action is ErrInvalid; an unreachable Kafka Connect is ErrUpstream, its
// address in no error.
func TestConnectorActions(t *testing.T) {
	r := newRig(t, ops.Config{})
	var dbName string
	if err := r.admin.QueryRow(`SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	slot := "ops_" + dbName
	t.Cleanup(func() {
		eventually.True(t, 30*time.Second, "drop slot "+slot, func() (bool, error) {
			_, err := r.admin.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
			return err == nil, err
		})
	})
	env, err := connect.DatabaseEnv(r.url)
	if err != nil {
		t.Fatal(err)
	}
	logger := logtest.T(t, slog.LevelDebug)
	w := worker.New(r.admin, func(name string, c connect.Config) (worker.Task, error) {
		return engine.New(name, c, engine.Options{Kafka: r.as(kafkaclient.PrincipalConnector),
			ProducerConfig: map[string]any{"broker.address.family": "v4"}, Logger: logger}), nil
	}, worker.Options{WorkerID: "127.0.0.1:8083", Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Logger: logger})
	srv := httptest.NewServer(rest.NewServer(w, rest.ServerOptions{Logger: logger}))
	t.Cleanup(srv.Close)
	runtest.Checked(t, time.Minute, w.Run)
	cc := rest.NewClient(srv.URL, srv.Client())
	req, err := connect.OutboxConnector()
	if err != nil {
		t.Fatal(err)
	}
	req.Config["slot.name"] = slot
	if _, err := cc.CreateConnector(t.Context(), req.Name, req.Config); err != nil {
		t.Fatal(err)
	}
	svc, err := ops.New(ops.Config{DB: r.op, Kafka: r.as(kafkaclient.PrincipalOperator), Connect: cc, ConnectorName: req.Name, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := t.Context()
	waitState := func(want string) {
		t.Helper()
		eventually.True(t, 30*time.Second, "connector "+want, func() (bool, error) {
			s, err := svc.Summary(ctx, time.Minute)
			return err == nil && s.Connector.State == want && len(s.Unavailable) == 0, err
		})
	}
	waitState(connect.StateRunning)

	for _, step := range []struct {
		action  string
		changed bool
		state   string
	}{
		{ops.ActionConnectorPause, true, connect.StatePaused},
		{ops.ActionConnectorPause, false, connect.StatePaused},
		{ops.ActionConnectorResume, true, connect.StateRunning},
		{ops.ActionConnectorRestart, true, connect.StateRunning},
	} {
		res, err := svc.Connector(ctx, actor, step.action)
		if err != nil || res.Changed != step.changed || res.AuditID == 0 {
			t.Fatalf("%s: %+v, %v; want changed=%v", step.action, res, err, step.changed)
		}
		waitState(step.state)
	}
	entries, err := svc.Audit(ctx, ops.AuditQuery{Target: req.Name})
	if err != nil || len(entries) != 4 || entries[0].Action != ops.ActionConnectorRestart || entries[2].Changed {
		t.Errorf("audit of the connector: %+v, %v", entries, err)
	}
	if _, err := svc.Connector(ctx, actor, "delete"); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("unknown action: %v", err)
	}

	srv.Close()
	res, err := svc.Connector(ctx, actor, ops.ActionConnectorRestart)
	if !errors.Is(err, ops.ErrUpstream) || strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("unreachable Kafka Connect: %+v, %v", res, err)
	}
	if _, err := r.svc.Connector(ctx, actor, ops.ActionConnectorPause); !errors.Is(err, ops.ErrUpstream) {
		t.Errorf("no Kafka Connect configured: %v", err)
	}
	if n, _ := svc.Audit(ctx, ops.AuditQuery{Target: req.Name}); len(n) != 4 {
		t.Errorf("failed actions audited: %+v", n)
	}
}
