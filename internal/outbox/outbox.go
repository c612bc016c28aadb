// Package outbox writes event messages into the transactional outbox table and
// reads their delivery status. The API inserts rows in the same transaction as
// the state change they announce; change data capture takes them from there.
package outbox

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Status is where an outbox row is in its delivery.
type Status string

// Outbox row statuses: written (INIT), seen on Kafka (PUBLISHED), handled by
// every consumer group that handles its type (COMPLETE), or given up on (FAILED).
const (
	StatusInit      Status = "INIT"
	StatusPublished Status = "PUBLISHED"
	StatusComplete  Status = "COMPLETE"
	StatusFailed    Status = "FAILED"
)

// Insert writes messages as outbox rows within tx, so they commit or roll back
// with the change they announce.
func Insert(ctx context.Context, tx *sql.Tx, msgs ...event.Message) error {
	for _, m := range msgs {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, $2, $3, $4, $5)`,
			m.ID, m.AggregateType, m.AggregateID, m.Type, []byte(m.Payload))
		if err != nil {
			return fmt.Errorf("insert outbox %s %s: %w", m.Type, m.ID, err)
		}
	}
	return nil
}

// Entry is an outbox row as an API client sees it.
type Entry struct {
	ID     uuid.UUID `json:"id"`
	Type   string    `json:"type"`
	Topic  string    `json:"topic"`
	Status Status    `json:"status"`
}

// Querier is what ForOrder needs of *sql.DB or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ForOrder lists the events of an order (those whose payload names it), oldest first.
func ForOrder(ctx context.Context, q Querier, orderID int64) ([]Entry, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT id, type, aggregatetype, status FROM outbox
		 WHERE payload ->> 'orderId' = $1::text
		 ORDER BY created_at, type`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list events of order %d: %w", orderID, err)
	}
	defer rows.Close()
	entries := []Entry{}
	for rows.Next() {
		var e Entry
		var aggregateType string
		if err := rows.Scan(&e.ID, &e.Type, &aggregateType, &e.Status); err != nil {
			return nil, fmt.Errorf("read events of order %d: %w", orderID, err)
		}
		e.Topic = event.Topic(aggregateType)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events of order %d: %w", orderID, err)
	}
	return entries, nil
}
