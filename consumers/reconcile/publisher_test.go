package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// Publish waits while the producer's queue is full and delivers every
// record, each on the partition Kafka's Java producer picks for its key.
func TestPublishThroughAFullQueue(t *testing.T) {
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	pub, err := reconcile.NewKafkaPublisher(kafkaclient.Config{Bootstrap: kc.Bootstrap()},
		map[string]any{"broker.address.family": "v4", "queue.buffering.max.messages": 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	topic := event.Topic(event.AggregatePayment)
	const n = 60
	recs := make([]event.Record, n)
	for i := range recs {
		recs[i] = event.Record{Topic: topic, Key: fmt.Appendf(nil, "user-%d", i), Value: []byte(`{}`), Timestamp: time.Now()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pub.Publish(ctx, recs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := kafkatest.ReadAll(t, kc.Bootstrap(), []string{topic}, n, 30*time.Second)
	if len(got) != n {
		t.Fatalf("%d records on %s, want %d", len(got), topic, n)
	}
	for _, m := range got {
		if want := kafkatest.Partition(m.Key, 3); m.TopicPartition.Partition != want {
			t.Errorf("key %q on partition %d, want %d", m.Key, m.TopicPartition.Partition, want)
		}
	}
}
