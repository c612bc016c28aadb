// Package kafkatest gives tests Kafka consumers, reads Kafka topics back
// and computes where Kafka's Java producer puts a key. It is for _test.go
// files only.
package kafkatest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

// Murmur2 is Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2).
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	n := length / 4
	for i := 0; i < n; i++ {
		k := uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[4*n:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Partition is the partition Kafka's default partitioner (and librdkafka's
// murmur2_random) picks for a non-empty key among n partitions.
func Partition(key []byte, n int) int32 {
	return (Murmur2(key) & 0x7fffffff) % int32(n)
}

// ReadAll reads every record of the topics, from the beginning to their
// end, with a consumer that is in no group. It waits, up to timeout, until
// the topics hold at least want records; then it reads all they hold. The
// records of each partition are in offset order.
func ReadAll(t testing.TB, bootstrap string, topics []string, want int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	return ReadAllAs(t, kafkaclient.Config{Bootstrap: bootstrap}, topics, want, timeout)
}

// ReadAllAs is ReadAll with kc's security settings (a SASL cluster's
// superuser, say).
func ReadAllAs(t testing.TB, kc kafkaclient.Config, topics []string, want int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	got, err := ReadAs(kc, topics, want, timeout)
	if err != nil {
		t.Fatalf("read %v: %v", topics, err)
	}
	return got
}

// ConsumerConfig is kc's client settings for a consumer of group that
// starts at the earliest offset, commits only when told to, and keeps quiet
// about closed connections.
func ConsumerConfig(kc kafkaclient.Config, group string) kafka.ConfigMap {
	cm := kc.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"group.id":             group,
		"auto.offset.reset":    "earliest",
		"enable.auto.commit":   false,
		"enable.metrics.push":  false,
		"log.connection.close": false,
	}) {
		cm[k] = v
	}
	return cm
}

// NewConsumer returns a consumer of group with [ConsumerConfig], closed when
// the test ends.
func NewConsumer(t testing.TB, kc kafkaclient.Config, group string) *kafka.Consumer {
	t.Helper()
	cm := ConsumerConfig(kc, group)
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		t.Fatalf("kafkatest: new consumer of %s: %v", group, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Read is ReadAll returning its error. Topics that do not exist (yet) are
// empty.
func Read(bootstrap string, topics []string, want int, timeout time.Duration) ([]*kafka.Message, error) {
	return ReadAs(kafkaclient.Config{Bootstrap: bootstrap}, topics, want, timeout)
}

// ReadAs is Read with kc's security settings.
func ReadAs(kc kafkaclient.Config, topics []string, want int, timeout time.Duration) ([]*kafka.Message, error) {
	cm := ConsumerConfig(kc, "kafkatest-unused")
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	defer c.Close()

	deadline := time.Now().Add(timeout)
	var ends map[partition]int64
	// Until want records are there or timeout passes (then what is there
	// is read), unless the watermarks cannot be read.
	_ = eventually.WaitEvery(timeout, 50*time.Millisecond, func() (bool, error) {
		var total int64
		ends, total, err = highWatermarks(c, topics)
		return err != nil || total >= int64(want), nil
	})
	if err != nil {
		return nil, err
	}
	var parts []kafka.TopicPartition
	for p, end := range ends {
		if end > 0 {
			topic := p.topic
			parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p.id, Offset: kafka.OffsetBeginning})
		}
	}
	if err := c.Assign(parts); err != nil {
		return nil, fmt.Errorf("assign: %w", err)
	}
	var got []*kafka.Message
	remaining := len(parts)
	readTo := deadline.Add(30 * time.Second) // reading what is there must not take long
	for remaining > 0 && time.Now().Before(readTo) {
		switch e := c.Poll(100).(type) {
		case *kafka.Message:
			if e.TopicPartition.Error != nil {
				continue
			}
			got = append(got, e)
			p := partition{*e.TopicPartition.Topic, e.TopicPartition.Partition}
			if int64(e.TopicPartition.Offset)+1 == ends[p] {
				remaining--
			}
		case kafka.Error:
			if e.IsFatal() {
				return got, e
			}
		}
	}
	if remaining > 0 {
		return got, fmt.Errorf("%d partitions not read to their end in time", remaining)
	}
	sort.SliceStable(got, func(i, j int) bool {
		a, b := got[i].TopicPartition, got[j].TopicPartition
		if *a.Topic != *b.Topic {
			return *a.Topic < *b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return got, nil
}

// Count returns how many records the topics hold.
func Count(bootstrap string, topics []string) (int64, error) {
	return CountAs(kafkaclient.Config{Bootstrap: bootstrap}, topics)
}

// CountAs is Count with kc's security settings.
func CountAs(kc kafkaclient.Config, topics []string) (int64, error) {
	cm := kc.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"group.id":             "kafkatest-unused",
		"enable.metrics.push":  false,
		"log.connection.close": false,
	}) {
		cm[k] = v
	}
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return 0, fmt.Errorf("new consumer: %w", err)
	}
	defer c.Close()
	_, total, err := highWatermarks(c, topics)
	return total, err
}

type partition struct {
	topic string
	id    int32
}

// highWatermarks returns the end offset of every partition of the topics
// and their sum.
func highWatermarks(c *kafka.Consumer, topics []string) (map[partition]int64, int64, error) {
	ends := map[partition]int64{}
	var total int64
	for _, topic := range topics {
		md, err := c.GetMetadata(&topic, false, 5000)
		if err != nil {
			return nil, 0, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		tm := md.Topics[topic]
		if tm.Error.Code() != kafka.ErrNoError {
			continue // not created yet
		}
		for _, p := range tm.Partitions {
			low, high, err := c.QueryWatermarkOffsets(topic, p.ID, 5000)
			if err != nil {
				return nil, 0, fmt.Errorf("watermarks of %s/%d: %w", topic, p.ID, err)
			}
			ends[partition{topic, p.ID}] = high
			total += high - low
		}
	}
	return ends, total, nil
}

// Header returns the value of a record's header, or "".
func Header(m *kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
