// Package consume runs a Kafka consumer group over outbox events: each
// partition is handled in order by its own goroutine, an offset is stored only
// once its record is fully handled (at-least-once), rebalancing is
// cooperative, a record that can never be handled goes to a dead-letter topic
// with the reason, and shutdown finishes or abandons in-flight work without
// committing what was not done.
package consume

import (
	"errors"
	"fmt"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Record is one Kafka record as handlers see it.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
	Timestamp time.Time
}

func recordOf(m *kafka.Message) Record {
	return Record{
		Topic:     *m.TopicPartition.Topic,
		Partition: m.TopicPartition.Partition,
		Offset:    int64(m.TopicPartition.Offset),
		Key:       m.Key,
		Value:     m.Value,
		Headers:   m.Headers,
		Timestamp: m.Timestamp,
	}
}

// Header returns the value of a header, and whether it is present.
func (r Record) Header(key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// EventType returns the eventType header ("" if absent).
func (r Record) EventType() string {
	t, _ := r.Header(event.HeaderEventType)
	return t
}

// EventID parses the id header. A record without a valid one cannot be
// handled: the error is Permanent.
func (r Record) EventID() (uuid.UUID, error) {
	v, ok := r.Header(event.HeaderID)
	if !ok {
		return uuid.UUID{}, Permanent(errors.New("record has no id header"))
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.UUID{}, Permanent(fmt.Errorf("record id header %q is not a uuid", v))
	}
	return id, nil
}

// String names the record for logs.
func (r Record) String() string { return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset) }

// Outcomes a handler reports instead of nil, for the metrics; both count as
// handled (the offset is stored).
var (
	// ErrSkipped: the record is not for this handler (an event type it does not handle).
	ErrSkipped = errors.New("skipped")
	// ErrDuplicate: the event was handled before; nothing was applied again.
	ErrDuplicate = errors.New("already handled")
)

// ErrPermanent marks an error that handling the record again cannot fix
// (it cannot be parsed, the platform refused it): the record goes to the DLQ.
var ErrPermanent = errors.New("cannot be handled")

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// RetryWhileRecent is for an error about state that the record's own
// transaction wrote and that the handler cannot see (yet): it returns err,
// which is retried, while the record is younger than window, and a
// Permanent error after, so a record whose state never shows up goes to the
// DLQ instead of holding its partition forever.
func RetryWhileRecent(rec Record, err error, window time.Duration, now time.Time) error {
	if !rec.Timestamp.IsZero() && now.Sub(rec.Timestamp) < window {
		return err
	}
	return Permanent(fmt.Errorf("still failing %v after the record's commit: %w", now.Sub(rec.Timestamp).Round(time.Second), err))
}

// Permanent wraps err so that the record goes to the DLQ with err as reason.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}
