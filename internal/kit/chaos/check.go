package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
)

// checks holds what the invariant checks found.
type checks struct {
	violations []string

	events, kafkaRecords                       int
	engineDuplicates, reconcilerDuplicates     int
	platformFirst, platformDuplicatesDelivered int
	duplicatesApplied                          int
	paidOrders, cancelledOrders, refunds       int
	maxCommitToComplete                        time.Duration
}

func (c *checks) fail(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// check verifies every invariant against the database, Kafka and the
// platform mock, once the system has converged.
func check(ctx context.Context, s *system, sd seedData, minStock int64) (*checks, error) {
	c := &checks{}
	db := s.db

	// Money: balances + captured payments (refunded ones returned) = charged.
	var balances, captured int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(sum(balance), 0) FROM users`).Scan(&balances); err != nil {
		return nil, err
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(sum(amount), 0) FROM payments WHERE status = 'PAID'`).Scan(&captured); err != nil {
		return nil, err
	}
	if balances+captured != sd.charged {
		c.fail("money: balances %d + captured payments %d = %d, charged %d", balances, captured, balances+captured, sd.charged)
	}

	// Stock: initial - quantities of paid orders, never negative.
	rows, err := db.QueryContext(ctx, `SELECT d.id, d.stock, COALESCE((SELECT sum(i.quantity) FROM order_items i
		JOIN orders o ON o.id = i.order_id WHERE i.product_detail_id = d.id AND o.status = 'PAID'), 0)
		FROM product_details d`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, stock, sold int64
		if err := rows.Scan(&id, &stock, &sold); err != nil {
			rows.Close()
			return nil, err
		}
		if want := sd.initialStock[id] - sold; stock != want {
			c.fail("stock of detail %d: %d, want initial %d - paid %d = %d", id, stock, sd.initialStock[id], sold, want)
			c.duplicatesApplied++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if minStock < 0 {
		c.fail("stock went negative during the run: %d", minStock)
	}

	// Orders: every paid order COMPLETE or CANCELLED-and-refunded once.
	var mismatched int
	if err := db.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE o.status = 'PAID' AND p.status = 'PAID'),
		count(*) FILTER (WHERE o.status = 'CANCELLED' AND p.status = 'REFUNDED'),
		count(*) FILTER (WHERE NOT ((o.status = 'PAID' AND p.status = 'PAID') OR (o.status = 'CANCELLED' AND p.status = 'REFUNDED')))
		FROM payments p JOIN orders o ON o.id = p.order_id`).Scan(&c.paidOrders, &c.cancelledOrders, &mismatched); err != nil {
		return nil, err
	}
	if mismatched > 0 {
		c.fail("%d payments whose order is neither PAID nor CANCELLED-and-refunded", mismatched)
	}
	// Each payment has its events; each refund exactly one PaymentRefunded.
	var missing int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM payments p WHERE
		(SELECT count(*) FROM outbox x WHERE x.type = $1 AND (x.payload->>'orderId')::bigint = p.order_id) <> 1
		OR (SELECT count(*) FROM outbox x WHERE x.type = $2 AND x.aggregateid = p.order_id::text) <> 1
		OR (SELECT count(*) FROM outbox x WHERE x.type = $3 AND (x.payload->>'orderId')::bigint = p.order_id)
		   <> CASE p.status WHEN 'REFUNDED' THEN 1 ELSE 0 END`,
		event.TypePaymentCompleted, event.TypeOrderPaid, event.TypePaymentRefunded).Scan(&missing); err != nil {
		return nil, err
	}
	if missing > 0 {
		c.fail("%d payments without exactly their events (PaymentCompleted, OrderPaid, and PaymentRefunded once when refunded)", missing)
		c.duplicatesApplied += missing
	}
	c.refunds = c.cancelledOrders

	// Outbox: nothing INIT, PUBLISHED or FAILED.
	var notComplete int
	var maxLatency sql.NullFloat64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status <> 'COMPLETE'), count(*),
		EXTRACT(EPOCH FROM max(completed_at - created_at)) FROM outbox`).Scan(&notComplete, &c.events, &maxLatency); err != nil {
		return nil, err
	}
	if notComplete > 0 {
		var detail string
		_ = db.QueryRowContext(ctx, `SELECT string_agg(status || ' ' || n, ', ') FROM
			(SELECT status, count(*) n FROM outbox WHERE status <> 'COMPLETE' GROUP BY status) t`).Scan(&detail)
		c.fail("%d outbox rows not COMPLETE (%s)", notComplete, detail)
	}
	c.maxCommitToComplete = time.Duration(maxLatency.Float64 * float64(time.Second))

	// Kafka: every event at least once; nothing dead-lettered.
	counts, dlq, err := readTopics(s.kafkaAdmin())
	if err != nil {
		return nil, fmt.Errorf("read back kafka: %w", err)
	}
	if dlq > 0 {
		c.fail("%d records in the DLQ topics", dlq)
	}
	republished := map[string]bool{}
	ids, err := db.QueryContext(ctx, `SELECT id::text, attempts > 0 FROM outbox`)
	if err != nil {
		return nil, err
	}
	var absent int
	for ids.Next() {
		var id string
		var attempted bool
		if err := ids.Scan(&id, &attempted); err != nil {
			ids.Close()
			return nil, err
		}
		republished[id] = attempted
		if counts[id] == 0 {
			absent++
		}
	}
	ids.Close()
	if absent > 0 {
		c.fail("%d outbox events never reached Kafka", absent)
	}
	for id, n := range counts {
		c.kafkaRecords += n
		if n > 1 {
			if republished[id] {
				c.reconcilerDuplicates += n - 1
			} else {
				c.engineDuplicates += n - 1
			}
		}
		if _, ok := republished[id]; !ok {
			c.fail("a Kafka record with id %s that is not in the outbox", id)
		}
	}

	// Platform: each payment event recorded once, as its first delivery.
	var platform struct {
		platformmock.Stats
		Events []platformmock.Event `json:"events"`
	}
	status, body, err := call(ctx, &http.Client{Timeout: 30 * time.Second}, "GET", s.platform+"/events", nil, s.operatorHeaders())
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("read the platform mock: %d %v", status, err)
	}
	if err := json.Unmarshal(body, &platform); err != nil {
		return nil, fmt.Errorf("read the platform mock: %w", err)
	}
	c.platformFirst, c.platformDuplicatesDelivered = platform.FirstDeliveries, platform.Duplicates
	want := map[string]string{}
	prows, err := db.QueryContext(ctx, `SELECT id::text, type FROM outbox WHERE type = ANY($1)`,
		pq.Array([]string{event.TypePaymentCompleted, event.TypePaymentRefunded}))
	if err != nil {
		return nil, err
	}
	for prows.Next() {
		var id, typ string
		if err := prows.Scan(&id, &typ); err != nil {
			prows.Close()
			return nil, err
		}
		want[id] = typ
	}
	prows.Close()
	got := map[string]int{}
	for _, e := range platform.Events {
		got[e.IdempotencyKey]++
		if typ, ok := want[e.IdempotencyKey]; !ok || typ != e.EventType {
			c.fail("the platform recorded %s (%s), which is no %s outbox event", e.IdempotencyKey, e.EventType, typ)
		}
	}
	for id, typ := range want {
		if got[id] != 1 {
			c.fail("the platform recorded %s event %s %d times, want once", typ, id, got[id])
			if got[id] > 1 {
				c.duplicatesApplied += got[id] - 1
			}
		}
	}
	if platform.Conflicts > 0 {
		c.fail("the platform saw %d idempotency keys reused for another event", platform.Conflicts)
		c.duplicatesApplied += platform.Conflicts
	}
	return c, nil
}

// readTopics reads every record of the outbox topics and counts them by
// their id header, and counts the records of the DLQ topics.
func readTopics(kc kafkaclient.Config) (map[string]int, int, error) {
	cm := kc.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"group.id":             "chaos-readback",
		"enable.auto.commit":   false,
		"enable.metrics.push":  false,
		"log.connection.close": false,
	}) {
		cm[k] = v
	}
	consumer, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, 0, err
	}
	defer consumer.Close()
	topics := event.Topics()
	var parts []kafka.TopicPartition
	remaining := map[string]int64{}
	dlq := 0
	for _, topic := range append(topics, event.DLQTopics()...) {
		md, err := consumer.GetMetadata(&topic, false, 10_000)
		if err != nil {
			return nil, 0, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		for _, p := range md.Topics[topic].Partitions {
			low, high, err := consumer.QueryWatermarkOffsets(topic, p.ID, 10_000)
			if err != nil {
				return nil, 0, fmt.Errorf("watermarks of %s/%d: %w", topic, p.ID, err)
			}
			if strings.HasSuffix(topic, event.DLQSuffix) {
				dlq += int(high - low)
				continue
			}
			if high > low {
				t := topic
				parts = append(parts, kafka.TopicPartition{Topic: &t, Partition: p.ID, Offset: kafka.Offset(low)})
				remaining[fmt.Sprintf("%s/%d", topic, p.ID)] = high
			}
		}
	}
	counts := map[string]int{}
	if len(parts) == 0 {
		return counts, dlq, nil
	}
	if err := consumer.Assign(parts); err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(remaining) > 0 {
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("read back: %d partitions not read to their end within 2 minutes", len(remaining))
		}
		msg, err := consumer.ReadMessage(time.Second)
		if err != nil {
			if kerr, ok := err.(kafka.Error); ok && kerr.IsTimeout() {
				continue
			}
			return nil, 0, err
		}
		for _, h := range msg.Headers {
			if h.Key == event.HeaderID {
				counts[string(h.Value)]++
			}
		}
		key := fmt.Sprintf("%s/%d", *msg.TopicPartition.Topic, msg.TopicPartition.Partition)
		if int64(msg.TopicPartition.Offset)+1 >= remaining[key] {
			delete(remaining, key)
		}
	}
	return counts, dlq, nil
}
