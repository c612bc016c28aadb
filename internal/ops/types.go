// Package ops is what an operator sees of the outbox pipeline and does to
// it: the pipeline's summary, the outbox's rows and each event's life, and
// the audited, idempotent actions (retry, park or discard a row, re-drive
// dead-lettered records, pause, resume and restart the connector). The
// operator API (api/operator) and its console page are built on it.
//
// The JSON shapes of its types are the operator API's (api/operator/openapi.yaml).
package ops

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Sentinel errors callers branch on (the operator API maps them to 404,
// 409, 400 and 502).
var (
	// ErrNotFound: no such event, DLQ topic or record.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the target's state does not allow the action (discard a
	// COMPLETE row); nothing changed.
	ErrConflict = errors.New("not allowed in the target's state")
	// ErrInvalid: a parameter is out of its range (wrapped with which).
	ErrInvalid = errors.New("invalid parameter")
	// ErrUpstream: Kafka Connect or Kafka refused or could not be reached;
	// the cause is logged, not returned (its text can name an internal
	// address). The operator API answers 502.
	ErrUpstream = errors.New("upstream refused or unreachable")
)

// Action names, as audit rows hold them.
const (
	ActionRetry            = "retry"
	ActionPark             = "park"
	ActionDiscard          = "discard"
	ActionRedrive          = "redrive"
	ActionConnectorPause   = "connector-pause"
	ActionConnectorResume  = "connector-resume"
	ActionConnectorRestart = "connector-restart"
)

// MaxReasonLen bounds an action's reason, in characters.
const MaxReasonLen = 500

// Actor is who acts: the operator's user name, and the reason they give.
type Actor struct {
	Name   string
	Reason string
}

// Result is what an action did.
type Result struct {
	// Changed is false when the target was already as the action leaves it.
	Changed  bool          `json:"changed"`
	Status   outbox.Status `json:"status,omitempty"`
	Redriven int           `json:"redriven,omitempty"`
	AuditID  int64         `json:"audit_id"`
}

// Summary is the pipeline now, and over a recent window.
type Summary struct {
	At          time.Time       `json:"at"`
	Outbox      OutboxSummary   `json:"outbox"`
	Slots       []Slot          `json:"slots"`
	Connector   Connector       `json:"connector"`
	Consumers   []ConsumerGroup `json:"consumers"`
	DLQ         []DLQDepth      `json:"dlq"`
	Window      Window          `json:"window"`
	Unavailable []string        `json:"unavailable"`
}

// OutboxSummary counts the outbox's rows by status.
type OutboxSummary struct {
	// Rows by status, exact, but COMPLETE from outbox.EstimateAbove rows
	// on, which is the planner's estimate.
	Rows map[outbox.Status]int64 `json:"rows"`
	// OldestUnfinishedSeconds is the age of the oldest INIT or PUBLISHED row.
	OldestUnfinishedSeconds float64 `json:"oldest_unfinished_seconds"`
	Failed                  int64   `json:"failed"`
}

// Slot is a logical replication slot of the database.
type Slot struct {
	Name     string `json:"name"`
	Active   bool   `json:"active"`
	LagBytes int64  `json:"lag_bytes"`
}

// Connector is the connector's state as Kafka Connect reports it.
type Connector struct {
	Name  string `json:"name"`
	State string `json:"state"` // UNKNOWN when Kafka Connect cannot be reached
	Tasks []Task `json:"tasks"`
}

// Task is one of the connector's tasks.
type Task struct {
	ID    int    `json:"id"`
	State string `json:"state"`
}

// ConsumerGroup is a consumer group's lag.
type ConsumerGroup struct {
	Group      string            `json:"group"`
	Lag        int64             `json:"lag"`
	Partitions []PartitionOffset `json:"partitions"`
}

// PartitionOffset is a group's position in one partition.
type PartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: nothing committed
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
}

// DLQDepth is how many records of a DLQ topic were not re-driven yet.
type DLQDepth struct {
	Topic string `json:"topic"`
	Depth int64  `json:"depth"`
}

// Window is the completions of a recent window: throughput and
// commit-to-COMPLETE percentiles.
type Window struct {
	Seconds   float64 `json:"seconds"`
	Completed int64   `json:"completed"`
	PerSecond float64 `json:"per_second"`
	P50ms     float64 `json:"p50_ms"`
	P95ms     float64 `json:"p95_ms"`
	P99ms     float64 `json:"p99_ms"`
}

// Bucket is a Window of one step of a series.
type Bucket struct {
	At        time.Time `json:"at"`
	Completed int64     `json:"completed"`
	PerSecond float64   `json:"per_second"`
	P50ms     float64   `json:"p50_ms"`
	P95ms     float64   `json:"p95_ms"`
	P99ms     float64   `json:"p99_ms"`
}

// Series is completions in buckets of Step, oldest first.
type Series struct {
	StepSeconds float64  `json:"step_seconds"`
	Buckets     []Bucket `json:"buckets"`
}

// Query selects outbox rows; zero fields do not filter.
type Query struct {
	OrderID       int64
	EventID       uuid.UUID
	AggregateType string
	AggregateID   string
	Type          string
	Status        outbox.Status
	OlderThan     time.Duration
	NewerThan     time.Duration
	Limit         int // 1..500; 0 means 50
}

// Event is an outbox row without its payload.
type Event struct {
	ID            uuid.UUID     `json:"id"`
	Type          string        `json:"type"`
	AggregateType string        `json:"aggregatetype"`
	AggregateID   string        `json:"aggregateid"`
	Topic         string        `json:"topic"`
	OrderID       int64         `json:"order_id,omitempty"`
	Status        outbox.Status `json:"status"`
	Attempts      int           `json:"attempts"`
	CreatedAt     time.Time     `json:"created_at"`
	PublishedAt   *time.Time    `json:"published_at,omitempty"`
	CompletedAt   *time.Time    `json:"completed_at,omitempty"`
	FailedAt      *time.Time    `json:"failed_at,omitempty"`
	LastError     string        `json:"last_error,omitempty"`
	HandledBy     []string      `json:"handled_by"`
}

// EventLife is everything known about one event.
type EventLife struct {
	Event    Event           `json:"event"`
	Payload  json.RawMessage `json:"payload"`
	Handlers []Handler       `json:"handlers"`
	DLQ      []DLQRecord     `json:"dlq"`
	Audit    []AuditEntry    `json:"audit"`
	Timeline []Moment        `json:"timeline"`
}

// Handler is a group that handles an event's type, and when it did.
type Handler struct {
	Group       string     `json:"group"`
	ProcessedAt *time.Time `json:"processed_at,omitempty"`
}

// Moment is one step of an event's timeline.
type Moment struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

// DLQRecord is a dead-lettered record.
type DLQRecord struct {
	Topic          string     `json:"topic"`
	Partition      int32      `json:"partition"`
	Offset         int64      `json:"offset"`
	Timestamp      time.Time  `json:"timestamp"`
	EventID        *uuid.UUID `json:"event_id,omitempty"`
	OriginalTopic  string     `json:"original_topic,omitempty"`
	Handler        string     `json:"handler,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	DeadLetteredAt *time.Time `json:"dead_lettered_at,omitempty"`
	RedrivenAt     *time.Time `json:"redriven_at,omitempty"`
}

// DLQQuery selects dead-lettered records; zero fields do not filter.
type DLQQuery struct {
	Topic   string
	EventID uuid.UUID
	Limit   int // 1..500; 0 means 100
}

// Redrive names what to re-drive: one record (Partition and Offset set) or
// every record of Topic not re-driven before.
type Redrive struct {
	Topic     string
	Partition *int32
	Offset    *int64
}

// AuditEntry is one audit row.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	Reason  string    `json:"reason"`
	Changed bool      `json:"changed"`
	Detail  string    `json:"detail,omitempty"`
}

// AuditQuery selects audit rows, newest first.
type AuditQuery struct {
	Target string
	Limit  int // 1..500; 0 means 100
}
