package kafkatest_test

import (
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// A consumer of NewConsumer starts at the earliest offset of a new group and
// commits nothing by itself; ReadAll reads the same record back.
func TestNewConsumerReadsFromTheStart(t *testing.T) {
	cluster := kafkaclustertest.Start(t, kafkacluster.Options{})
	kc := kafkaclient.Config{Bootstrap: cluster.Bootstrap()}
	cm := kc.ConfigMap()
	cm["partitioner"] = "murmur2_random"
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topic := "kafkatest.consumer"
	delivered := make(chan kafka.Event, 1)
	if err := p.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            []byte("k"), Value: []byte("v"),
		Headers: []kafka.Header{{Key: "id", Value: []byte("1")}},
	}, delivered); err != nil {
		t.Fatal(err)
	}
	if m := (<-delivered).(*kafka.Message); m.TopicPartition.Error != nil {
		t.Fatalf("deliver: %v", m.TopicPartition.Error)
	}

	c := kafkatest.NewConsumer(t, kc, "kafkatest-group")
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadMessage(30 * time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(m.Key) != "k" || string(m.Value) != "v" || kafkatest.Header(m, "id") != "1" {
		t.Errorf("read %s=%s id=%s, want k=v id=1", m.Key, m.Value, kafkatest.Header(m, "id"))
	}
	if m.TopicPartition.Partition != kafkatest.Partition([]byte("k"), 3) {
		t.Errorf("partition %d, want murmur2's %d", m.TopicPartition.Partition, kafkatest.Partition([]byte("k"), 3))
	}
	committed, err := c.Committed([]kafka.TopicPartition{m.TopicPartition}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if committed[0].Offset != kafka.OffsetInvalid {
		t.Errorf("committed offset %v without a commit", committed[0].Offset)
	}
	if got := kafkatest.ReadAll(t, cluster.Bootstrap(), []string{topic}, 1, 30*time.Second); len(got) != 1 {
		t.Errorf("ReadAll read %d records, want 1", len(got))
	}
}
