package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// topic returns a shared pointer to a topic name, as Kafka messages take it.
func (s *session) topic(name string) *string {
	if t, ok := s.topics[name]; ok {
		return t
	}
	t := &name
	s.topics[name] = t
	return t
}

// produce hands Kafka an outbox event's record, one of x's.
func (s *session) produce(ctx context.Context, rec connect.Record, x *txn) error {
	return s.send(ctx, kafkaclient.Message(rec, s.topic(rec.Topic), x), x)
}

// notEvent marks a record of x that is not an outbox event (a heartbeat, a
// logical decoding message): tracked as x's, not counted as an event.
type notEvent struct{ x *txn }

// produceOther hands Kafka a record of x that is not an outbox event, for
// partition (kafka.PartitionAny: the key's).
func (s *session) produceOther(ctx context.Context, rec connect.Record, partition int32, x *txn) error {
	msg := kafkaclient.Message(rec, s.topic(rec.Topic), notEvent{x})
	msg.TopicPartition.Partition = partition
	return s.send(ctx, msg, x)
}

// send produces msg, one of x's records.
func (s *session) send(ctx context.Context, msg *kafka.Message, x *txn) error {
	topic := *msg.TopicPartition.Topic
	s.track.produced(x)
	s.sent = true
	if s.producer == nil { // Options.Discard
		s.track.ack(x)
		if _, event := msg.Opaque.(*txn); event {
			s.e.metrics.producedOne(x.commitTime)
		}
		return nil
	}
	err := s.producer.Produce(msg, nil)
	if err == nil {
		return nil
	}
	if !queueFull(err) {
		return produceError(topic, err)
	}
	// Backpressure: while the queue is full, wait for acknowledgements to
	// free it, and keep the replication connection alive meanwhile.
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		select {
		case failed := <-s.failed:
			return struct{}{}, backoff.Permanent(failed)
		default:
		}
		if err := s.sendStatus(ctx, false); err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		err := s.producer.Produce(msg, nil)
		if err != nil && !queueFull(err) {
			return struct{}{}, backoff.Permanent(produceError(topic, err))
		}
		return struct{}{}, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(queueFullWait)), backoff.WithMaxElapsedTime(0))
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // stopping
	}
	return err
}

// queueFullWait is how long a producer whose queue is full waits before
// trying again.
const queueFullWait = 10 * time.Millisecond

// queueFull reports whether err is the producer's "queue full", which
// waiting for acknowledgements cures.
func queueFull(err error) bool {
	var kerr kafka.Error
	return errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull
}

// deliveries turns the producer's delivery reports into acknowledgements.
// A record Kafka failed to take ends the session: the slot is not confirmed
// past it, so the next session sends it again.
func (s *session) deliveries() {
	m := s.e.metrics
	for ev := range s.producer.Events() {
		switch ev := ev.(type) {
		case *kafka.Message:
			x, event := ev.Opaque.(*txn)
			if !event {
				x = ev.Opaque.(notEvent).x
			}
			if err := ev.TopicPartition.Error; err != nil {
				m.produceError()
				s.fail(produceError(*ev.TopicPartition.Topic, err))
				continue
			}
			s.track.ack(x)
			if event {
				m.producedOne(x.commitTime)
			}
		case kafka.Error:
			if ev.IsFatal() {
				s.fail(fmt.Errorf("kafka producer: %w", ev))
			} else {
				s.e.logger.Debug("kafka producer", "err", ev)
			}
		}
	}
}

// produceError wraps a record Kafka refused. A record too large for Kafka
// fails the task, as Kafka Connect's RecordTooLargeException does: sending it
// again cannot help, and skipping it would lose an event.
func produceError(topic string, err error) error {
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrMsgSizeTooLarge {
		return permanent("a record for %s is larger than Kafka accepts (message.max.bytes): %v", topic, err)
	}
	return fmt.Errorf("kafka did not take a record for %s: %w", topic, err)
}

func (s *session) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

// newProducer returns the product's producer (idempotent, acks=all, keys
// placed where Kafka's Java producer places them), tuned for streaming.
func (e *Engine) newProducer() (*kafka.Producer, error) {
	cm := e.opts.Kafka.ProducerConfigMap(kafka.ConfigMap{
		"queue.buffering.max.messages": 20000,
		"queue.buffering.max.kbytes":   65536,
		// Delivery reports carry only the Opaque; the Go channels stay small
		// (their defaults hold a million entries the GC scans).
		"go.delivery.report.fields": "none",
		"go.events.channel.size":    10000,
		"go.produce.channel.size":   1000,
		"client.id":                 "outboxpay-cdc-" + e.name,
	})
	for k, v := range e.opts.ProducerConfig {
		cm[k] = v
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	return p, nil
}
