package stock_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/consume/consumetest"
	"github.com/outboxpay/outboxpay/consumers/stock"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/shop"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// window is the tests' VisibilityWindow: how long a record whose outbox row
// does not exist holds its partition.
const window = 3 * time.Second

var (
	orderTopic = event.Topic(event.AggregateOrder)
	dlqTopic   = event.DLQTopic(orderTopic)
)

// rig is a database, a Kafka cluster, and the stock group consuming it.
type rig struct {
	t         *testing.T
	db        *sql.DB
	shop      *shop.Service
	bootstrap string
	producer  *kafka.Producer
	reg       *prometheus.Registry // the group's metrics
}

func newRig(t *testing.T) *rig {
	t.Helper()
	db, _ := pgtest.NewDB(t)
	kc, err := kafkacluster.Start(t.Context(), kafkacluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	// The Java producer's partitioner, as Kafka Connect's.
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": kc.Bootstrap(), "partitioner": "murmur2_random",
		"broker.address.family": "v4", "enable.metrics.push": false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	r := &rig{t: t, db: db, shop: shop.New(db), bootstrap: kc.Bootstrap(), producer: p, reg: prometheus.NewRegistry()}
	m := consume.NewMetrics(r.reg)

	g := consume.New(consume.Config{
		Kafka:            kafkaclient.Config{Bootstrap: kc.Bootstrap()},
		Group:            event.GroupStock,
		Topics:           []string{orderTopic},
		RetryInitial:     50 * time.Millisecond,
		RetryMax:         500 * time.Millisecond,
		VisibilityWindow: window,
		ShutdownTimeout:  5 * time.Second,
		ConsumerConfig:   map[string]any{"broker.address.family": "v4"},
	}, stock.New(r.db, m, nil), m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stock group: %v", err)
		}
	})
	return r
}

// paidOrder places an order of qty of a new product detail (price 100,
// stock 10) for a new user (balance 10,000) and pays it.
func (r *rig) paidOrder(qty int) (user, detail int64, o shop.OrderView) {
	r.t.Helper()
	ctx := context.Background()
	if err := r.db.QueryRow(`INSERT INTO users (name, balance) VALUES ('u', 10000) RETURNING id`).Scan(&user); err != nil {
		r.t.Fatal(err)
	}
	err := r.db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
		INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', 100, 10 FROM p RETURNING id`).Scan(&detail)
	if err != nil {
		r.t.Fatal(err)
	}
	placed, err := r.shop.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: detail, Quantity: qty}})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, _, err := r.shop.Pay(ctx, shop.PayRequest{OrderID: placed.OrderID, UserID: user}); err != nil {
		r.t.Fatal(err)
	}
	// What GET /orders/{id} shows its user, event ids included.
	o, err = r.shop.Order(ctx, user, placed.OrderID)
	if err != nil {
		r.t.Fatal(err)
	}
	return user, detail, o
}

// eventID returns the id of the order's event of type typ.
func (r *rig) eventID(o shop.OrderView, typ string) uuid.UUID {
	r.t.Helper()
	for _, e := range o.Events {
		if e.Type == typ {
			return e.ID
		}
	}
	r.t.Fatalf("order %d has no %s event: %+v", o.OrderID, typ, o.Events)
	return uuid.UUID{}
}

// engineRecord is the record the CDC engine writes for an outbox row.
func (r *rig) engineRecord(id uuid.UUID) *kafka.Message {
	r.t.Helper()
	row := connect.Columns{}
	var aggType, aggID, typ, payload string
	err := r.db.QueryRow(`SELECT aggregatetype, aggregateid, type, payload::text FROM outbox WHERE id = $1`, id).
		Scan(&aggType, &aggID, &typ, &payload)
	if err != nil {
		r.t.Fatal(err)
	}
	row["id"], row["aggregatetype"], row["aggregateid"], row["type"], row["payload"] = id.String(), aggType, aggID, typ, payload
	rec, err := connect.DefaultRouter.Route(row, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &rec.Topic, Partition: kafka.PartitionAny},
		Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
	for _, h := range rec.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return m
}

// record builds a record of the order topic as an attacker would.
func record(id uuid.UUID, eventType, key string, value any, ts time.Time) *kafka.Message {
	b, _ := json.Marshal(value)
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &orderTopic, Partition: kafka.PartitionAny},
		Key: []byte(key), Value: b, Timestamp: ts,
		Headers: []kafka.Header{{Key: event.HeaderID, Value: []byte(id.String())}, {Key: event.HeaderEventType, Value: []byte(eventType)}}}
}

// produce sends records in order and waits until Kafka has them.
func (r *rig) produce(msgs ...*kafka.Message) {
	r.t.Helper()
	for _, m := range msgs {
		delivered := make(chan kafka.Event, 1)
		if err := r.producer.Produce(m, delivered); err != nil {
			r.t.Fatal(err)
		}
		if dm := (<-delivered).(*kafka.Message); dm.TopicPartition.Error != nil {
			r.t.Fatal(dm.TopicPartition.Error)
		}
	}
}

// state is what an order's handling can change.
type state struct {
	Order, Payment string
	Stock          int
	Balance        int64
	Refunds        int
}

func (r *rig) state(user, detail, order int64) state {
	r.t.Helper()
	var s state
	err := r.db.QueryRow(`SELECT
			(SELECT status FROM orders WHERE id = $3),
			(SELECT status FROM payments WHERE order_id = $3),
			(SELECT stock FROM product_details WHERE id = $2),
			(SELECT balance FROM users WHERE id = $1),
			(SELECT count(*) FROM outbox WHERE type = $4 AND payload ->> 'orderId' = $3::text)`,
		user, detail, order, event.TypePaymentRefunded).Scan(&s.Order, &s.Payment, &s.Stock, &s.Balance, &s.Refunds)
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// handled waits until the stock group has handled the event.
func (r *rig) handled(id uuid.UUID, timeout time.Duration) {
	r.t.Helper()
	eventually.True(r.t, timeout, "event "+id.String()+" handled by stock", func() (bool, error) {
		return consumetest.Claimed(r.t, r.db, event.GroupStock, id), nil
	})
}

// dlq waits until the order DLQ holds n records and returns them.
func (r *rig) dlq(n int, timeout time.Duration) []*kafka.Message {
	r.t.Helper()
	eventually.True(r.t, timeout, fmt.Sprintf("%d records in %s", n, dlqTopic), func() (bool, error) {
		got, err := kafkatest.Count(r.bootstrap, []string{dlqTopic})
		return got >= int64(n), err
	})
	return kafkatest.ReadAll(r.t, r.bootstrap, []string{dlqTopic}, n, 10*time.Second)
}

// The attack of issue 9: a forged OrderPaid carrying the id of a fulfilled
// order's PaymentCompleted row (public in GET /orders/{id}), with the order
// id as key and a quantity no stock can serve, would have refunded the
// order. The record does not match the row its id names: it goes to the DLQ
// with the reason, and changes nothing.
func TestForgedOrderPaidChangesNothing(t *testing.T) {
	r := newRig(t)
	user, detail, o := r.paidOrder(3)
	orderPaid, paymentCompleted := r.eventID(o, event.TypeOrderPaid), r.eventID(o, event.TypePaymentCompleted)
	r.produce(r.engineRecord(orderPaid))
	r.handled(orderPaid, time.Minute)
	before := r.state(user, detail, o.OrderID)
	if before != (state{Order: shop.OrderPaid, Payment: shop.PaymentPaid, Stock: 7, Balance: 10000 - 300}) {
		t.Fatalf("after fulfilment: %+v", before)
	}

	forged := record(paymentCompleted, event.TypeOrderPaid, fmt.Sprint(o.OrderID),
		event.OrderPaid{OrderID: o.OrderID, UserID: user, Items: []event.Item{{ProductDetailID: detail, Quantity: 1_000_000}}},
		time.Now())
	r.produce(forged)
	dead := r.dlq(1, time.Minute)
	if got := kafkatest.Header(dead[0], event.HeaderID); got != paymentCompleted.String() {
		t.Fatalf("DLQ holds event %s, want the forged one %s", got, paymentCompleted)
	}
	reason := kafkatest.Header(dead[0], event.HeaderDLQReason)
	if want := `eventType header "OrderPaid", row type is "PaymentCompleted"`; !strings.Contains(reason, want) ||
		!strings.Contains(reason, consume.ErrMismatch.Error()) {
		t.Errorf("DLQ reason %q, want the mismatch (%q) named", reason, want)
	}
	if after := r.state(user, detail, o.OrderID); after != before {
		t.Errorf("the forged record changed %+v into %+v", before, after)
	}
	if consumetest.Claimed(t, r.db, event.GroupStock, paymentCompleted) {
		t.Error("the forged event is recorded as handled by stock")
	}
}

// A record whose id, type, topic and key match its row but whose value
// differs (a producer racing the engine with its own payload): the handler
// applies the row's payload, not the record's.
func TestRowPayloadIsApplied(t *testing.T) {
	r := newRig(t)
	user, detail, o := r.paidOrder(2)
	orderPaid := r.eventID(o, event.TypeOrderPaid)
	m := r.engineRecord(orderPaid)
	// The same record with 9 of the item instead of 2.
	m.Value, _ = json.Marshal(event.OrderPaid{OrderID: o.OrderID, UserID: user,
		Items: []event.Item{{ProductDetailID: detail, Quantity: 9}}})
	r.produce(m)
	r.handled(orderPaid, time.Minute)
	want := state{Order: shop.OrderPaid, Payment: shop.PaymentPaid, Stock: 8, Balance: 10000 - 200}
	if got := r.state(user, detail, o.OrderID); got != want {
		t.Fatalf("after the record: %+v, want %+v (the row's 2 taken, not the record's 9)", got, want)
	}
	if n, err := kafkatest.Count(r.bootstrap, []string{dlqTopic}); err != nil || n != 0 {
		t.Errorf("%d records in the DLQ (%v), want none", n, err)
	}
}

// Records with unknown ids and a producer timestamp an hour ahead, queued
// on the partition of a valid record: the group gives up on each once the
// window has passed since it first saw them (by its own clock; the
// producer's timestamp would have held them an hour), so the valid record
// behind them is handled promptly, and not after one window per record.
func TestFutureTimestampsDoNotHoldThePartition(t *testing.T) {
	r := newRig(t)
	// The group consumes the topic before the clock starts.
	_, _, warm := r.paidOrder(1)
	r.produce(r.engineRecord(r.eventID(warm, event.TypeOrderPaid)))
	r.handled(r.eventID(warm, event.TypeOrderPaid), time.Minute)

	user, detail, o := r.paidOrder(1)
	orderPaid := r.eventID(o, event.TypeOrderPaid)
	key := fmt.Sprint(o.OrderID) // the valid record's partition
	future := time.Now().Add(time.Hour)
	var unknown []*kafka.Message
	ids := map[string]bool{}
	for range 6 {
		id := uuid.New()
		ids[id.String()] = true
		unknown = append(unknown, record(id, event.TypeOrderPaid, key,
			event.OrderPaid{OrderID: o.OrderID, UserID: user, Items: []event.Item{{ProductDetailID: detail, Quantity: 1}}}, future))
	}
	start := time.Now()
	r.produce(append(unknown, r.engineRecord(orderPaid))...)

	// Six windows one after the other would be 18s.
	r.handled(orderPaid, 2*window+4*time.Second)
	t.Logf("valid record handled %v after the six unknown ones were produced", time.Since(start).Round(time.Millisecond))
	dead := r.dlq(6, 10*time.Second)
	if len(dead) != 6 {
		t.Fatalf("%d records in the DLQ, want the 6 unknown ones", len(dead))
	}
	for _, m := range dead {
		if id := kafkatest.Header(m, event.HeaderID); !ids[id] {
			t.Errorf("DLQ holds %s, not one of the unknown records", id)
		}
		if reason := kafkatest.Header(m, event.HeaderDLQReason); !strings.Contains(reason, "after the group first saw the record") ||
			!strings.Contains(reason, "outbox row not found") {
			t.Errorf("DLQ reason %q", reason)
		}
		if !m.Timestamp.After(start.Add(30 * time.Minute)) {
			t.Errorf("DLQ record timestamp %v: the test did not send the future timestamps it means to", m.Timestamp)
		}
	}
	if got, want := r.state(user, detail, o.OrderID), (state{Order: shop.OrderPaid, Payment: shop.PaymentPaid, Stock: 9, Balance: 10000 - 100}); got != want {
		t.Errorf("state %+v, want %+v (the valid order fulfilled once, nothing else)", got, want)
	}
}

// The stock group's outcomes: an order is fulfilled once however often its
// record comes (the redelivery is a duplicate), or refunded when its stock
// ran out after the payment.
func TestFulfilOnceOrRefund(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stock  int // left when the record comes
		copies int // of the record
		want   state
		counts string // records_total by result: dlq duplicate ok skipped
	}{
		{"fulfilled", 10, 1, state{Order: shop.OrderPaid, Payment: shop.PaymentPaid, Stock: 7, Balance: 10000 - 300}, "0 0 1 0"},
		{"redelivered: fulfilled once", 10, 3, state{Order: shop.OrderPaid, Payment: shop.PaymentPaid, Stock: 7, Balance: 10000 - 300}, "0 2 1 0"},
		{"stock short: refunded once", 2, 2,
			state{Order: shop.OrderCancelled, Payment: shop.PaymentRefunded, Stock: 2, Balance: 10000, Refunds: 1}, "0 1 1 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			user, detail, o := r.paidOrder(3)
			if _, err := r.db.Exec(`UPDATE product_details SET stock = $2 WHERE id = $1`, detail, tc.stock); err != nil {
				t.Fatal(err)
			}
			id := r.eventID(o, event.TypeOrderPaid)
			for range tc.copies {
				r.produce(r.engineRecord(id))
			}
			var dlq, duplicate, ok, skipped int
			if _, err := fmt.Sscan(tc.counts, &dlq, &duplicate, &ok, &skipped); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf(`
# HELP outboxpay_consumer_records_total Records handled, by outcome: ok, skipped, duplicate, dlq.
# TYPE outboxpay_consumer_records_total counter
outboxpay_consumer_records_total{group="stock",result="dlq"} %d
outboxpay_consumer_records_total{group="stock",result="duplicate"} %d
outboxpay_consumer_records_total{group="stock",result="ok"} %d
outboxpay_consumer_records_total{group="stock",result="skipped"} %d
`, dlq, duplicate, ok, skipped)
			eventually.True(t, time.Minute, "every copy handled", func() (bool, error) {
				err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "outboxpay_consumer_records_total")
				return err == nil, err
			})
			if got := r.state(user, detail, o.OrderID); got != tc.want {
				t.Fatalf("state %+v, want %+v", got, tc.want)
			}
			if st := consumetest.Status(t, r.db, id); st != outbox.StatusComplete {
				t.Fatalf("OrderPaid row %s, want COMPLETE", st)
			}
		})
	}
}

// Records queued on a partition are handled in batches: a forged record
// among them fails its batch, which the group then handles record by
// record, so only the forged one goes to the DLQ and every order is
// fulfilled once; the whole stream delivered again applies nothing twice.
func TestBatchWithAForgedRecord(t *testing.T) {
	r := newRig(t)
	type paid struct {
		user, detail int64
		o            shop.OrderView
	}
	orders := make([]paid, 6)
	var stream []*kafka.Message
	for i := range orders {
		user, detail, o := r.paidOrder(1)
		orders[i] = paid{user, detail, o}
		stream = append(stream, r.engineRecord(r.eventID(o, event.TypeOrderPaid)))
	}
	first := orders[0]
	forgedID := r.eventID(first.o, event.TypePaymentCompleted)
	forged := record(forgedID, event.TypeOrderPaid, fmt.Sprint(first.o.OrderID),
		event.OrderPaid{OrderID: first.o.OrderID, UserID: first.user, Items: []event.Item{{ProductDetailID: first.detail, Quantity: 5}}},
		time.Now())
	// One produce call after another: a partition's records queue up while
	// its first batch is handled.
	r.produce(append(append(append([]*kafka.Message{}, stream[:3]...), forged), stream[3:]...)...)
	r.produce(stream...) // delivered again
	want := `
# HELP outboxpay_consumer_records_total Records handled, by outcome: ok, skipped, duplicate, dlq.
# TYPE outboxpay_consumer_records_total counter
outboxpay_consumer_records_total{group="stock",result="dlq"} 1
outboxpay_consumer_records_total{group="stock",result="duplicate"} 6
outboxpay_consumer_records_total{group="stock",result="ok"} 6
outboxpay_consumer_records_total{group="stock",result="skipped"} 0
`
	eventually.True(t, time.Minute, "every record handled", func() (bool, error) {
		err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "outboxpay_consumer_records_total")
		return err == nil, err
	})
	dead := r.dlq(1, 10*time.Second)
	if len(dead) != 1 || kafkatest.Header(dead[0], event.HeaderID) != forgedID.String() {
		t.Fatalf("DLQ holds %d records, want only the forged one", len(dead))
	}
	for i, p := range orders {
		if got, want := r.state(p.user, p.detail, p.o.OrderID), (state{Order: shop.OrderPaid, Payment: shop.PaymentPaid, Stock: 9, Balance: 10000 - 100}); got != want {
			t.Errorf("order %d: %+v, want %+v (fulfilled once)", i, got, want)
		}
	}
}
