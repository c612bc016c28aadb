package reconcile_test

import (
	"database/sql"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// topics are the outbox topics the tests' events go to.
var topics = []string{event.Topic(event.AggregateOrder), event.Topic(event.AggregatePayment)}

// rig is one test's database, Kafka cluster and publisher.
type rig struct {
	t  *testing.T
	db *sql.DB // the superuser's, for setting up and checking
	// worker is the reconciler's, as outboxpay_worker.
	worker *sql.DB
	url    string
	kafka  *kafkacluster.Cluster
	pub    *reconcile.KafkaPublisher
}

func newRig(t *testing.T) *rig {
	t.Helper()
	db, url := pgtest.NewDB(t)
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	pub, err := reconcile.NewKafkaPublisher(kafkaclient.Config{Bootstrap: kc.Bootstrap()}, map[string]any{"broker.address.family": "v4"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	worker, _ := pgtest.AsRole(t, url, migrations.RoleWorker)
	return &rig{t: t, db: db, worker: worker, url: url, kafka: kc, pub: pub}
}

// reconciler returns a reconciler of the rig's outbox with its own registry.
func (r *rig) reconciler(cfg reconcile.Config, cc *rest.Client) (*reconcile.Reconciler, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return reconcile.New(r.worker, cc, r.pub, connect.DefaultRouter, cfg, reg, testLogger(r.t)), reg
}

// insert commits outbox rows for n paid orders: an OrderPaid and a
// PaymentCompleted each, as the API writes them.
func (r *rig) insert(n int) []event.Message {
	r.t.Helper()
	var msgs []event.Message
	for i := range n {
		orderID := int64(100 + i)
		op, err := event.NewOrderPaid(event.OrderPaid{OrderID: orderID, UserID: 7,
			Items: []event.Item{{ProductDetailID: 3, Quantity: 2}}})
		if err != nil {
			r.t.Fatal(err)
		}
		pc, err := event.NewPaymentCompleted(event.PaymentCompleted{PaymentID: orderID, OrderID: orderID, UserID: 7,
			Amount: 30000, BalanceAfter: 20000, PaidAt: time.Now()})
		if err != nil {
			r.t.Fatal(err)
		}
		msgs = append(msgs, op, pc)
	}
	tx, err := r.db.BeginTx(r.t.Context(), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := outbox.Insert(r.t.Context(), tx, msgs...); err != nil {
		r.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		r.t.Fatal(err)
	}
	return msgs
}

// exec runs a statement or fails the test.
func (r *rig) exec(query string, args ...any) {
	r.t.Helper()
	if _, err := r.db.ExecContext(r.t.Context(), query, args...); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
}

// set runs "UPDATE outbox SET <assignments>" on the rows of msgs.
func (r *rig) set(msgs []event.Message, assignments string) {
	r.t.Helper()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID.String()
	}
	r.exec(`UPDATE outbox SET `+assignments+` WHERE id = ANY($1::uuid[])`, pq.Array(ids))
}

// rowState is an outbox row's tracking columns.
type rowState struct {
	Status    string
	Attempts  int
	LastError string
	UpdatedAt time.Time
	FailedAt  sql.NullTime
}

// same reports whether two states are equal, times compared as instants.
func (s rowState) same(o rowState) bool {
	return s.Status == o.Status && s.Attempts == o.Attempts && s.LastError == o.LastError &&
		s.UpdatedAt.Equal(o.UpdatedAt) && s.FailedAt.Valid == o.FailedAt.Valid && s.FailedAt.Time.Equal(o.FailedAt.Time)
}

// row reads the tracking columns of an event's row.
func (r *rig) row(m event.Message) rowState {
	r.t.Helper()
	var s rowState
	var lastError sql.NullString
	err := r.db.QueryRowContext(r.t.Context(),
		`SELECT status, attempts, last_error, updated_at, failed_at FROM outbox WHERE id = $1`, m.ID).
		Scan(&s.Status, &s.Attempts, &lastError, &s.UpdatedAt, &s.FailedAt)
	if err != nil {
		r.t.Fatalf("read outbox row %s: %v", m.ID, err)
	}
	s.LastError = lastError.String
	return s
}

// expected builds the record connect.DefaultRouter makes of a row, from
// the event and the row as Postgres holds it (payload::text), but for its
// timestamp (when it is republished, which assertRecord checks).
func (r *rig) expected(m event.Message) event.Record {
	r.t.Helper()
	var payload string
	if err := r.db.QueryRowContext(r.t.Context(), `SELECT payload::text FROM outbox WHERE id = $1`, m.ID).
		Scan(&payload); err != nil {
		r.t.Fatal(err)
	}
	rec, err := connect.DefaultRouter.Route(connect.Columns{
		"id": m.ID.String(), "aggregatetype": m.AggregateType, "aggregateid": m.AggregateID,
		"type": m.Type, "payload": payload,
	}, time.Time{})
	if err != nil {
		r.t.Fatal(err)
	}
	return rec
}

// records reads the outbox topics, waiting for at least want records, and
// groups them by their id header.
func (r *rig) records(want int) map[string][]*kafka.Message {
	r.t.Helper()
	byID := map[string][]*kafka.Message{}
	for _, m := range kafkatest.ReadAll(r.t, r.kafka.Bootstrap(), topics, want, 20*time.Second) {
		id := kafkatest.Header(m, event.HeaderID)
		byID[id] = append(byID[id], m)
	}
	return byID
}

// count returns how many records the outbox topics hold.
func (r *rig) count() int64 {
	r.t.Helper()
	n, err := kafkatest.Count(r.kafka.Bootstrap(), topics)
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

// assertRecord checks a Kafka record field by field against the expected
// one; its timestamp must be when it was republished, in [from, to].
func assertRecord(t *testing.T, got *kafka.Message, want event.Record, from, to time.Time) {
	t.Helper()
	if *got.TopicPartition.Topic != want.Topic {
		t.Errorf("topic %q, want %q", *got.TopicPartition.Topic, want.Topic)
	}
	if string(got.Key) != string(want.Key) {
		t.Errorf("key %q, want %q", got.Key, want.Key)
	}
	if string(got.Value) != string(want.Value) {
		t.Errorf("value %s, want %s", got.Value, want.Value)
	}
	if len(got.Headers) != len(want.Headers) {
		t.Errorf("headers %v, want %v", got.Headers, want.Headers)
	} else {
		for i, h := range want.Headers {
			if got.Headers[i].Key != h.Key || string(got.Headers[i].Value) != string(h.Value) {
				t.Errorf("header %d: %s=%q, want %s=%q", i, got.Headers[i].Key, got.Headers[i].Value, h.Key, h.Value)
			}
		}
	}
	if ts := got.Timestamp; ts.Before(from.Truncate(time.Millisecond)) || ts.After(to) || got.TimestampType != kafka.TimestampCreateTime {
		t.Errorf("timestamp %v (%v), want when it was republished, in [%v, %v] (CreateTime)", ts, got.TimestampType, from, to)
	}
	if p := kafkatest.Partition(want.Key, 3); got.TopicPartition.Partition != p {
		t.Errorf("partition %d, want %d (murmur2 of the key)", got.TopicPartition.Partition, p)
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return logtest.T(t, slog.LevelDebug)
}
