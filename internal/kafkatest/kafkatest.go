// Package kafkatest reads Kafka topics back in tests and computes where
// Kafka's Java producer puts a key. It is for _test.go files only.
package kafkatest

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
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

// ReadAll reads every topic from the beginning, with a consumer that is in
// no group, until it has at least want records or timeout passes. The
// records of each partition are in offset order.
func ReadAll(t testing.TB, bootstrap string, topics []string, want int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	got, err := Read(context.Background(), bootstrap, topics, want, timeout)
	if err != nil {
		t.Fatalf("read %v: %v", topics, err)
	}
	return got
}

// Read is ReadAll returning its error. It returns what it has read, without
// error, when timeout passes first.
func Read(ctx context.Context, bootstrap string, topics []string, want int, timeout time.Duration) ([]*kafka.Message, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":     bootstrap,
		"group.id":              "kafkatest-unused",
		"enable.auto.commit":    false,
		"broker.address.family": "v4",
		"enable.metrics.push":   false,
	})
	if err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	defer c.Close()

	deadline := time.Now().Add(timeout)
	var parts []kafka.TopicPartition
	for _, topic := range topics {
		for {
			md, err := c.GetMetadata(&topic, false, 5000)
			if err == nil && len(md.Topics[topic].Partitions) > 0 && md.Topics[topic].Error.Code() == kafka.ErrNoError {
				for _, p := range md.Topics[topic].Partitions {
					tp := topic
					parts = append(parts, kafka.TopicPartition{Topic: &tp, Partition: p.ID, Offset: kafka.OffsetBeginning})
				}
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, nil // the topic never appeared: nothing to read
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := c.Assign(parts); err != nil {
		return nil, fmt.Errorf("assign: %w", err)
	}
	var got []*kafka.Message
	for len(got) < want && time.Now().Before(deadline) && ctx.Err() == nil {
		ev := c.Poll(100)
		switch e := ev.(type) {
		case *kafka.Message:
			if e.TopicPartition.Error == nil {
				got = append(got, e)
			}
		case kafka.Error:
			if e.IsFatal() {
				return got, e
			}
		}
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

// Header returns the value of a record's header, or "".
func Header(m *kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
