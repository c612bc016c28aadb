package consume_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// refuseAll dead-letters every record.
type refuseAll struct{}

func (refuseAll) Handle(context.Context, consume.Record) error {
	return backoff.Permanent(errors.New("refused by the test"))
}

// TestDeadLetterPartition checks that a dead-lettered record lands on the
// partition of its DLQ that Kafka's Java producer would pick for its key
// (murmur2), as every record of the product does, and keeps its key, value
// and headers beside the DLQ headers, a null header value null and an empty
// one empty (read back with kgo). The DLQ producer once used
// librdkafka's default partitioner (CRC32), which puts most of these keys
// elsewhere.
func TestDeadLetterPartition(t *testing.T) {
	kc, err := kafkacluster.Start(t.Context(), kafkacluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	topic := event.Topic(event.AggregateOrder)
	cfg := kafkaclient.Config{Bootstrap: kc.Bootstrap()}

	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": kc.Bootstrap(), "broker.address.family": "v4", "enable.metrics.push": false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	const n = 12
	delivered := make(chan kafka.Event, n)
	for i := range n {
		key := fmt.Sprintf("order-%d", i)
		err := p.Produce(kafkaclient.Message(event.Record{Topic: topic, Key: []byte(key), Value: []byte(`{}`),
			Headers: []event.Header{{Key: event.HeaderEventType, Value: []byte(event.TypeOrderPaid)},
				{Key: "null"}, {Key: "empty", Value: []byte{}}}}, nil, nil), delivered)
		if err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if m := (<-delivered).(*kafka.Message); m.TopicPartition.Error != nil {
			t.Fatal(m.TopicPartition.Error)
		}
	}

	g := consume.New(consume.Config{
		Kafka: cfg, Group: "dlq-test", Topics: []string{topic},
		RetryInitial: 10 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ConsumerConfig: map[string]any{"broker.address.family": "v4"},
	}, refuseAll{}, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("group: %v", err)
		}
	})

	dead := kafkatest.ReadAll(t, kc.Bootstrap(), []string{event.DLQTopic(topic)}, n, 30*time.Second)
	if len(dead) != n {
		t.Fatalf("%d dead-lettered records, want %d", len(dead), n)
	}
	for _, m := range dead {
		if want := kafkatest.Partition(m.Key, 3); m.TopicPartition.Partition != want {
			t.Errorf("record with key %q on partition %d of the DLQ, want %d (murmur2)", m.Key, m.TopicPartition.Partition, want)
		}
		if got := kafkatest.Header(m, event.HeaderEventType); got != event.TypeOrderPaid {
			t.Errorf("record %q: eventType header %q, want %q", m.Key, got, event.TypeOrderPaid)
		}
		if got := kafkatest.Header(m, event.HeaderDLQTopic); got != topic {
			t.Errorf("record %q: %s header %q, want %q", m.Key, event.HeaderDLQTopic, got, topic)
		}
		if got := kafkatest.Header(m, event.HeaderDLQHandler); got != "dlq-test" {
			t.Errorf("record %q: %s header %q, want dlq-test", m.Key, event.HeaderDLQHandler, got)
		}
	}
	for _, r := range kafkatest.ReadRaw(t, kc.Bootstrap(), []string{event.DLQTopic(topic)}, n, 30*time.Second) {
		if len(r.Headers) < 3 || r.Headers[1].Key != "null" || r.Headers[1].Value != nil ||
			r.Headers[2].Key != "empty" || r.Headers[2].Value == nil || len(r.Headers[2].Value) != 0 {
			t.Errorf("record %q: headers %q, want eventType, null with a null value and empty with an empty one first", r.Key, r.Headers)
		}
	}
}
