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
	r, err := NewDLQReader(kc)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	pcm := kc.ProducerConfigMap(nil)
	p, err := kafka.NewProducer(&pcm)
	if err != nil {
		return 0, fmt.Errorf("replay producer: %w", err)
	}
	defer p.Close()

	ranges, err := r.Pending(ctx, dlqTopics)
	if err != nil {
		return 0, err
	}
	replayed, err := r.Read(ctx, ranges, true, func(m *kafka.Message) error {
		return republish(ctx, p, m)
	})
	if err != nil {
		return replayed, err
	}
	logger.Info("dead-lettered records replayed", "records", replayed, "topics", dlqTopics)
	return replayed, nil
}

// DLQReader reads dead-lettered records as the replay group (ReplayGroup),
// whose committed offsets remember how far each DLQ partition has been
// re-driven: the one reader behind Replay and the operator console. It is
// not safe for concurrent use; Close it when done.
type DLQReader struct {
	c *kafka.Consumer
}

// NewDLQReader returns a reader of the cluster kc names, as kc's principal
// (it needs Read on the DLQ topics and on ReplayGroup).
func NewDLQReader(kc kafkaclient.Config) (*DLQReader, error) {
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
		return nil, fmt.Errorf("dlq consumer: %w", err)
	}
	return &DLQReader{c: c}, nil
}

// Close closes the reader's consumer.
func (r *DLQReader) Close() { r.c.Close() }

// DLQRange is the offsets [From, End) of one DLQ partition.
type DLQRange struct {
	Topic     string
	Partition int32
	From, End int64
}

// requestMs bounds the client calls that take a timeout.
const requestMs = 10000

// Partitions returns every partition of topics with its watermarks: From
// is the first retained offset, End the offset after the last record. A
// topic that does not exist (nothing was ever dead-lettered there) has none.
func (r *DLQReader) Partitions(ctx context.Context, topics []string) ([]DLQRange, error) {
	var out []DLQRange
	for _, topic := range topics {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		md, err := r.c.GetMetadata(&topic, false, requestMs)
		if err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		tm := md.Topics[topic]
		if tm.Error.Code() == kafka.ErrUnknownTopicOrPart || tm.Error.Code() == kafka.ErrUnknownTopic {
			continue
		}
		for _, pm := range tm.Partitions {
			low, high, err := r.c.QueryWatermarkOffsets(topic, pm.ID, requestMs)
			if err != nil {
				return nil, fmt.Errorf("watermarks of %s/%d: %w", topic, pm.ID, err)
			}
			out = append(out, DLQRange{Topic: topic, Partition: pm.ID, From: low, End: high})
		}
	}
	return out, nil
}

// Pending returns the records of topics not replayed yet, by partition:
// from the replay group's committed offset (the first retained one when it
// has none) to the end now. Partitions with nothing pending are left out.
func (r *DLQReader) Pending(ctx context.Context, topics []string) ([]DLQRange, error) {
	parts, err := r.Partitions(ctx, topics)
	if err != nil || len(parts) == 0 {
		return nil, err
	}
	tps := make([]kafka.TopicPartition, len(parts))
	for i, p := range parts {
		tps[i] = kafka.TopicPartition{Topic: &parts[i].Topic, Partition: p.Partition, Offset: kafka.OffsetStored}
	}
	positions, err := r.c.Committed(tps, requestMs)
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrGroupIDNotFound {
		positions, err = tps, nil // never replayed: from the beginning
	}
	if err != nil {
		return nil, fmt.Errorf("replayed offsets: %w", err)
	}
	committed := map[partitionKey]int64{}
	for _, tp := range positions {
		committed[partitionKey{*tp.Topic, tp.Partition}] = int64(tp.Offset)
	}
	var out []DLQRange
	for _, p := range parts {
		p.From = max(p.From, committed[partitionKey{p.Topic, p.Partition}])
		if p.From < p.End {
			out = append(out, p)
		}
	}
	return out, nil
}

// Read reads the records of ranges, in order within each partition, and
// calls fn with each; with commit, the replay group's offset moves past
// each record fn returns nil for. It stops at fn's first error, and returns
// how many records fn took.
func (r *DLQReader) Read(ctx context.Context, ranges []DLQRange, commit bool, fn func(*kafka.Message) error) (int, error) {
	ends := map[partitionKey]int64{}
	var assign []kafka.TopicPartition
	for _, rg := range ranges {
		if rg.From >= rg.End {
			continue
		}
		topic := rg.Topic
		ends[partitionKey{topic, rg.Partition}] = rg.End
		assign = append(assign, kafka.TopicPartition{Topic: &topic, Partition: rg.Partition, Offset: kafka.Offset(rg.From)})
	}
	if len(assign) == 0 {
		return 0, nil
	}
	if err := r.c.Assign(assign); err != nil {
		return 0, fmt.Errorf("assign dlq partitions: %w", err)
	}
	defer r.c.Unassign() //nolint:errcheck // the next Read assigns anew

	n := 0
	for len(ends) > 0 {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, ok := r.c.Poll(200).(*kafka.Message)
		if !ok || m.TopicPartition.Error != nil {
			continue
		}
		k := partitionKey{*m.TopicPartition.Topic, m.TopicPartition.Partition}
		end, ok := ends[k]
		if !ok || int64(m.TopicPartition.Offset) >= end {
			continue // came in after the range was taken, or partition done
		}
		if err := fn(m); err != nil {
			return n, err
		}
		n++
		next := m.TopicPartition
		next.Offset++
		if commit {
			if _, err := r.c.CommitOffsets([]kafka.TopicPartition{next}); err != nil {
				return n, fmt.Errorf("commit replay of %s: %w", m.TopicPartition, err)
			}
		}
		if int64(next.Offset) >= end {
			delete(ends, k)
		}
	}
	return n, nil
}

// ErrNoRecord: a DLQ partition holds no record at the offset asked for.
var ErrNoRecord = errors.New("no such record")

// ReadOne reads the record of topic's partition at offset: ErrNoRecord when
// the offset is outside the partition's retained records.
func (r *DLQReader) ReadOne(ctx context.Context, topic string, partition int32, offset int64) (*kafka.Message, error) {
	parts, err := r.Partitions(ctx, []string{topic})
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if p.Partition != partition {
			continue
		}
		if offset < p.From || offset >= p.End {
			break
		}
		var got *kafka.Message
		errGot := errors.New("got it")
		_, err := r.Read(ctx, []DLQRange{{Topic: topic, Partition: partition, From: offset, End: offset + 1}}, false,
			func(m *kafka.Message) error { got = m; return errGot })
		if got != nil {
			return got, nil
		}
		return nil, err
	}
	return nil, fmt.Errorf("%s/%d at %d: %w", topic, partition, offset, ErrNoRecord)
}

// republish sends a dead-lettered record back to its original topic, without
// the DLQ headers, and waits until Kafka has it.
func republish(ctx context.Context, p *kafka.Producer, m *kafka.Message) error {
	msg := kafkaclient.Message(ReplayRecord(m), nil, nil)
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

// ReplayRecord is the record a dead-lettered m is replayed as: to its
// original topic (the DLQ header, else the DLQ's name without its suffix),
// with its key, value, timestamp and headers, without the DLQ headers.
func ReplayRecord(m *kafka.Message) event.Record {
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
	return rec
}
