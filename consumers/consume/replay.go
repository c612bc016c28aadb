package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/logging"
)

// ReplayGroup is the consumer group whose committed offsets remember how far
// the dead-letter topics have been replayed.
const ReplayGroup = kafkaclient.ReplayGroup

// Replay re-drives dead-lettered records: every record of the DLQ topics
// not replayed before (up to their end when Replay starts) is produced again
// to its original topic with its original key, value and headers, so the
// handlers see it anew (they are idempotent). It returns how many records it
// replayed. Run it once the cause of the failures is fixed.
func Replay(ctx context.Context, kc kafkaclient.Config, dlqTopics []string, logger *slog.Logger) (int, error) {
	logger = logging.OrDiscard(logger)
	ccm := kc.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"group.id":             ReplayGroup,
		"enable.auto.commit":   false,
		"auto.offset.reset":    "earliest",
		"enable.metrics.push":  false,
		"log.connection.close": false,
	}) {
		ccm[k] = v
	}
	c, err := kafka.NewConsumer(&ccm)
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	defer c.Close()
	pcm := kc.ProducerConfigMap(nil)
	p, err := kafka.NewProducer(&pcm)
	if err != nil {
		return 0, fmt.Errorf("replay producer: %w", err)
	}
	defer p.Close()

	ends := map[partitionKey]int64{}
	var parts []kafka.TopicPartition
	for _, topic := range dlqTopics {
		md, err := c.GetMetadata(&topic, false, 10000)
		if err != nil {
			return 0, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		tm := md.Topics[topic]
		if tm.Error.Code() == kafka.ErrUnknownTopicOrPart || tm.Error.Code() == kafka.ErrUnknownTopic {
			continue // nothing was ever dead-lettered there
		}
		for _, pm := range tm.Partitions {
			_, high, err := c.QueryWatermarkOffsets(topic, pm.ID, 10000)
			if err != nil {
				return 0, fmt.Errorf("end of %s/%d: %w", topic, pm.ID, err)
			}
			ends[partitionKey{topic, pm.ID}] = high
			parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: pm.ID, Offset: kafka.OffsetStored})
		}
	}
	if len(parts) == 0 {
		return 0, nil
	}
	positions, err := c.Committed(parts, 10000)
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrGroupIDNotFound {
		positions, err = parts, nil // never replayed: from the beginning
	}
	if err != nil {
		return 0, fmt.Errorf("replayed offsets: %w", err)
	}
	pending := 0
	var assign []kafka.TopicPartition
	for _, tp := range positions {
		from := int64(tp.Offset)
		if from < 0 {
			from = 0
		}
		k := partitionKey{*tp.Topic, tp.Partition}
		if ends[k] <= from {
			delete(ends, k)
			continue
		}
		pending++
		tp.Offset = kafka.Offset(from)
		assign = append(assign, tp)
	}
	if pending == 0 {
		return 0, nil
	}
	if err := c.Assign(assign); err != nil {
		return 0, fmt.Errorf("assign %v: %w", dlqTopics, err)
	}

	replayed := 0
	for pending > 0 {
		if err := ctx.Err(); err != nil {
			return replayed, err
		}
		m, ok := c.Poll(200).(*kafka.Message)
		if !ok || m.TopicPartition.Error != nil {
			continue
		}
		k := partitionKey{*m.TopicPartition.Topic, m.TopicPartition.Partition}
		end, ok := ends[k]
		if !ok || int64(m.TopicPartition.Offset) >= end {
			continue // came in after Replay started, or partition done
		}
		if err := republish(ctx, p, m); err != nil {
			return replayed, err
		}
		next := m.TopicPartition
		next.Offset++
		if _, err := c.CommitOffsets([]kafka.TopicPartition{next}); err != nil {
			return replayed, fmt.Errorf("commit replay of %s: %w", m.TopicPartition, err)
		}
		replayed++
		if int64(next.Offset) >= end {
			delete(ends, k)
			pending--
		}
	}
	logger.Info("dead-lettered records replayed", "records", replayed, "topics", dlqTopics)
	return replayed, nil
}

// republish sends a dead-lettered record back to its original topic, without
// the DLQ headers, and waits until Kafka has it.
func republish(ctx context.Context, p *kafka.Producer, m *kafka.Message) error {
	msg := replayMessage(m)
	topic := *msg.TopicPartition.Topic
	delivered := make(chan kafka.Event, 1)
	err := p.Produce(msg, delivered)
	if err != nil {
		return fmt.Errorf("replay to %s: %w", topic, err)
	}
	select {
	case ev := <-delivered:
		if dm, ok := ev.(*kafka.Message); ok && dm.TopicPartition.Error != nil {
			return fmt.Errorf("replay to %s: %w", topic, dm.TopicPartition.Error)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// replayMessage is the record a dead-lettered m is replayed as: to its
// original topic (the DLQ header, else the DLQ's name without its suffix),
// with its key, value, timestamp and headers, without the DLQ headers.
func replayMessage(m *kafka.Message) *kafka.Message {
	rec := event.Record{
		Topic: strings.TrimSuffix(*m.TopicPartition.Topic, event.DLQSuffix),
		Key:   m.Key, Value: m.Value, Timestamp: m.Timestamp,
	}
	for _, h := range m.Headers {
		switch {
		case h.Key == event.HeaderDLQTopic:
			rec.Topic = string(h.Value)
		case event.DLQHeader(h.Key):
		default:
			rec.Headers = append(rec.Headers, event.Header{Key: h.Key, Value: h.Value})
		}
	}
	return kafkaclient.Message(rec, nil, nil)
}
