package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// Publisher sends records to Kafka. Publish returns once Kafka has
// acknowledged every record with acks=all, or with an error: a
// *PublishError when some records were refused (the others were
// acknowledged), any other error when the outcome of the records is
// unknown (ctx done, producer unusable).
type Publisher interface {
	Publish(ctx context.Context, recs []event.Record) error
}

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("publisher closed")

// PublishError reports the records Kafka refused; the records not listed
// were acknowledged.
type PublishError struct {
	Failed map[int]error // by index in the records given to Publish
}

func (e *PublishError) Error() string {
	idx := make([]int, 0, len(e.Failed))
	for i := range e.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var b strings.Builder
	fmt.Fprintf(&b, "kafka refused %d records", len(idx))
	for n, i := range idx {
		if n == 3 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; record %d: %v", i, e.Failed[i])
	}
	return b.String()
}

// KafkaPublisher is the Publisher of the reconciler: the product's producer
// (kafkaclient.ProducerConfigMap: idempotent, acks=all, keys placed with
// murmur2 like Kafka's Java producer), as the CDC engine's, so a
// republished record lands on the partition its first copy went to. Safe for concurrent use; calls are serialized.
type KafkaPublisher struct {
	cm kafka.ConfigMap

	mu       sync.Mutex // serializes Publish and Close; guards what follows
	producer *kafka.Producer
	fatal    chan error // the current producer's fatal error, if it had one
	drained  chan struct{}
	closed   bool
}

// NewKafkaPublisher returns a publisher to the cluster kc names, as kc's principal. extra
// is librdkafka configuration applied over the defaults (e.g.
// broker.address.family). Close it when done.
func NewKafkaPublisher(kc kafkaclient.Config, extra map[string]any) (*KafkaPublisher, error) {
	cm := kc.ProducerConfigMap(kafka.ConfigMap{
		// A republish that Kafka cannot take within a minute is reported
		// (and retried on a later cycle) rather than held for librdkafka's
		// default five minutes while the rows stay locked.
		"message.timeout.ms":        60000,
		"go.delivery.report.fields": "none",
		"client.id":                 "outboxpay-reconciler",
	})
	for k, v := range extra {
		cm[k] = v
	}
	p := &KafkaPublisher{cm: cm}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

// start creates the producer and the goroutine that drains its events.
// Under p.mu (or before p is shared).
func (p *KafkaPublisher) start() error {
	cm := maps.Clone(p.cm)
	producer, err := kafka.NewProducer(&cm)
	if err != nil {
		return fmt.Errorf("create kafka producer: %w", err)
	}
	p.producer = producer
	p.fatal = make(chan error, 1)
	p.drained = make(chan struct{})
	go drain(producer, p.fatal, p.drained)
	return nil
}

// drain reads the producer's event channel, which carries only errors here
// (every record has its own delivery channel), and keeps the first fatal
// one: an idempotent producer that hits one must be replaced.
func drain(producer *kafka.Producer, fatal chan<- error, done chan<- struct{}) {
	defer close(done)
	for ev := range producer.Events() {
		if kerr, ok := ev.(kafka.Error); ok && kerr.IsFatal() {
			select {
			case fatal <- kerr:
			default:
			}
		}
	}
}

// Publish produces recs and waits until Kafka has acknowledged each of them
// or refused it. If the producer has hit a fatal error since the last call,
// Publish replaces it and returns that error without sending anything; the
// next call uses the new producer.
func (p *KafkaPublisher) Publish(ctx context.Context, recs []event.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPublisherClosed
	}
	if err := p.replaceIfFatal(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	deliveries := make(chan kafka.Event, len(recs)) // never blocks the producer, even after we stop reading
	failed := map[int]error{}
	queued := 0
	for i, rec := range recs {
		err := p.produce(ctx, rec, i, deliveries)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("publish %d records: %w", len(recs), ctxErr)
		}
		if err != nil { // refused before sending, e.g. larger than message.max.bytes
			failed[i] = err
			continue
		}
		queued++
	}
	if err := awaitDeliveries(ctx, deliveries, queued, failed); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &PublishError{Failed: failed}
	}
	return nil
}

// replaceIfFatal replaces a producer that reported a fatal error, and
// returns that error. Under p.mu.
func (p *KafkaPublisher) replaceIfFatal() error {
	select {
	case fatal := <-p.fatal:
		p.producer.Close()
		<-p.drained
		if err := p.start(); err != nil {
			return errors.Join(fmt.Errorf("kafka producer failed: %w", fatal), err)
		}
		return fmt.Errorf("kafka producer failed (replaced; publish again): %w", fatal)
	default:
		return nil
	}
}

// produce hands one record to the producer, waiting while its queue is full.
func (p *KafkaPublisher) produce(ctx context.Context, rec event.Record, i int, deliveries chan kafka.Event) error {
	topic := rec.Topic
	msg := kafkaclient.Message(rec, nil, i)
	// A full queue empties as Kafka acknowledges: try again after a while.
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := p.producer.Produce(msg, deliveries)
		var kerr kafka.Error
		if err != nil && !(errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull) {
			return struct{}{}, backoff.Permanent(fmt.Errorf("produce a record to %s: %w", topic, err))
		}
		return struct{}{}, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(10*time.Millisecond)), backoff.WithMaxElapsedTime(0))
	return err
}

// awaitDeliveries waits for n delivery reports and adds the failures to
// failed.
func awaitDeliveries(ctx context.Context, deliveries <-chan kafka.Event, n int, failed map[int]error) error {
	for range n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for kafka acknowledgements: %w", ctx.Err())
		case ev := <-deliveries:
			m, ok := ev.(*kafka.Message)
			if !ok {
				return fmt.Errorf("wait for kafka acknowledgements: unexpected event %v", ev)
			}
			if err := m.TopicPartition.Error; err != nil {
				failed[m.Opaque.(int)] = err
			}
		}
	}
	return nil
}

// Close waits briefly for records in flight, then closes the producer.
func (p *KafkaPublisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.producer.Flush(5000)
	p.producer.Close()
	<-p.drained
}
