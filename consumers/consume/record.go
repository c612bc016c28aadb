// Package consume runs a Kafka consumer group over outbox events: each
// partition is handled in order by its own goroutine, an offset is stored only
// once its record is fully handled (at-least-once), rebalancing is
// cooperative, a record that can never be handled goes to a dead-letter topic
// with the reason, and shutdown finishes or abandons in-flight work without
// committing what was not done.
//
// A handler is a few lines of domain; the concerns every group shares live
// once, as middleware around it (middleware.go, pipeline.go): the inbox
// claim, the transaction and marking the outbox row handled (Inbox), the
// event types a handler takes (OnlyTypes), and, in the group, metrics,
// retry with backoff, the visibility window and the DLQ.
package consume

import (
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
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
// handled: the error is permanent (backoff.Permanent).
func (r Record) EventID() (uuid.UUID, error) {
	v, ok := r.Header(event.HeaderID)
	if !ok {
		return uuid.UUID{}, backoff.Permanent(errors.New("record has no id header"))
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.UUID{}, backoff.Permanent(fmt.Errorf("record id header %q is not a uuid", v))
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

// IsPermanent reports whether err is, or wraps, a *backoff.PermanentError:
// handling the record again cannot fix it (it cannot be parsed, the
// platform refused it), and the record goes to the DLQ. backoff.Permanent
// is the one way to say so.
func IsPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p)
}

// ErrMismatch: a record does not match the outbox row its id names (another
// type, topic or key). The row is the truth and the record a notification of
// it, so such a record is forged or corrupt: it is permanent.
var ErrMismatch = errors.New("record does not match its outbox row")

// Match checks that the record is the notification of row, as a CDC engine
// writes it (the Outbox Event Router of connect/outbox-connector.json): its
// id header names the row, its eventType header is the row's type, its topic
// is the row's aggregate type's (event.Topic) and its key the row's
// aggregate id. Otherwise it returns a permanent error wrapping ErrMismatch
// that says what differs. A handler that passes Match acts on the row (its
// payload), never on the record's value.
func (r Record) Match(row event.Message) error {
	mismatch := func(format string, args ...any) error {
		return backoff.Permanent(fmt.Errorf("%w %s: %s", ErrMismatch, row.ID, fmt.Sprintf(format, args...)))
	}
	id, err := r.EventID()
	if err != nil {
		return err
	}
	if id != row.ID {
		return mismatch("id header %s names another row", id)
	}
	typ, ok := r.Header(event.HeaderEventType)
	switch {
	case !ok:
		return mismatch("record has no %s header, row type is %q", event.HeaderEventType, row.Type)
	case typ != row.Type:
		return mismatch("%s header %s, row type is %q", event.HeaderEventType, quote(typ), row.Type)
	}
	if want := row.Topic(); r.Topic != want {
		return mismatch("topic %s, row's is %q (aggregatetype %q)", quote(r.Topic), want, row.AggregateType)
	}
	if r.Key == nil {
		return mismatch("record has no key, row aggregateid is %q", row.AggregateID)
	}
	if string(r.Key) != row.AggregateID {
		return mismatch("key %s, row aggregateid is %q", quote(string(r.Key)), row.AggregateID)
	}
	return nil
}

// quote quotes a value taken from a record for an error message, cut short:
// a forged record must not fill the DLQ reason or the logs.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// ErrNotYet marks an error about state that the record's own transaction
// wrote and that the handler cannot see (yet): see RetryWhileRecent.
var ErrNotYet = errors.New("not visible yet")

type notYetError struct{ err error }

func (e notYetError) Error() string   { return e.err.Error() }
func (e notYetError) Unwrap() []error { return []error{e.err, ErrNotYet} }

// RetryWhileRecent wraps an error about state that the record's own
// transaction wrote and that the handler cannot see (yet), such as
// outbox.ErrNotFound: the group retries the record while it is recent, that
// is for Config.VisibilityWindow after this group first saw it (by this
// process's clock, never the record's timestamp, which its producer chose)
// and at most Config.VisibilityAttempts times; then it sends the record to
// the DLQ, so a record whose state never shows up cannot hold its partition.
func RetryWhileRecent(err error) error {
	if err == nil {
		return nil
	}
	return notYetError{err}
}

// RetryUpTo wraps an error that retrying may fix, but only so many times
// (a remote service failing or timing out): the group retries the record
// until it has tried it tries times in all, then sends it to the DLQ. Other
// errors are retried for as long as they last (a database outage holds the
// partition).
func RetryUpTo(tries uint, err error) error {
	if err == nil {
		return nil
	}
	return &limitedError{err: err, tries: tries}
}

type limitedError struct {
	err   error
	tries uint
}

func (e *limitedError) Error() string { return e.err.Error() }
func (e *limitedError) Unwrap() error { return e.err }
