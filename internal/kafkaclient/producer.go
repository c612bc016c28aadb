package kafkaclient

import (
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
)

// ProducerConfigMap returns the settings of every producer of the product
// (the CDC engine, the reconciler's publisher, the DLQ and replay): c's
// connection settings, idempotence with acks=all, keys placed with murmur2
// as Kafka's Java producer places them (so every producer puts a key on the
// same partition), Kafka's default max.request.size, a short linger, no
// metrics pushed to the brokers, no log line per closed idle connection and
// Go channels of bounded size (see GoChannelSizes); then extra over them.
// Each call returns a new map.
func (c Config) ProducerConfigMap(extra kafka.ConfigMap) kafka.ConfigMap {
	cm := c.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"enable.idempotence":   true,
		"acks":                 "all",
		"partitioner":          "murmur2_random",
		"linger.ms":            5,
		"message.max.bytes":    1048576, // Kafka's max.request.size
		"log.connection.close": false,
		"enable.metrics.push":  false,
	}) {
		cm[k] = v
	}
	for k, v := range GoChannelSizes() {
		cm[k] = v
	}
	for k, v := range extra {
		cm[k] = v
	}
	return cm
}

// GoChannelSizes are the sizes of a confluent-kafka-go producer's Go
// channels that every client of the product uses: Events() holds 100,000
// events, ProduceChannel() (which the product does not use) 1,000.
// confluent-kafka-go's defaults are a million entries each, allocated when
// the producer is made: 24 MiB of heap per producer, idle or not, that the
// garbage collector scans. Events() carries errors and, for producers that
// pass no delivery channel to Produce, delivery reports: a producer that
// never reads it blocks its delivery reports once 100,000 events wait there.
func GoChannelSizes() kafka.ConfigMap {
	return kafka.ConfigMap{
		"go.events.channel.size":  100000,
		"go.produce.channel.size": 1000,
	}
}

// Message returns the producer message of rec, to any partition (the
// partitioner picks it from the key), with rec's timestamp as its create
// time and opaque for the delivery report. topic is where rec.Topic is kept:
// a producer sending many records to a few topics passes one shared pointer
// per topic; nil makes a new one. The message shares rec's key, value and
// header values.
func Message(rec event.Record, topic *string, opaque any) *kafka.Message {
	if topic == nil {
		t := rec.Topic
		topic = &t
	}
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: topic, Partition: kafka.PartitionAny},
		Key:            rec.Key,
		Value:          rec.Value,
		Timestamp:      rec.Timestamp,
		TimestampType:  kafka.TimestampCreateTime,
		Opaque:         opaque,
	}
	if len(rec.Headers) > 0 {
		msg.Headers = make([]kafka.Header, len(rec.Headers))
		for i, h := range rec.Headers {
			msg.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return msg
}

// Headers returns Kafka headers as the contract's.
func Headers(hs []kafka.Header) []event.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]event.Header, len(hs))
	for i, h := range hs {
		out[i] = event.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
