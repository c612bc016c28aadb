// Package outbox writes event messages into the transactional outbox table and
// reads their delivery status. The API inserts rows in the same transaction as
// the state change they announce; change data capture takes them from there.
package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Status is where an outbox row is in its delivery.
type Status string

// Outbox row statuses: written (INIT), seen on Kafka (PUBLISHED), handled by
// every consumer group that handles its type (COMPLETE), given up on by the
// reconciler (FAILED), set aside by an operator (PARKED: the reconciler
// leaves it alone until an operator retries it) or given up on by an
// operator (DISCARDED). A handler that completes a PARKED or DISCARDED row's
// last group still makes it COMPLETE.
const (
	StatusInit      Status = "INIT"
	StatusPublished Status = "PUBLISHED"
	StatusComplete  Status = "COMPLETE"
	StatusFailed    Status = "FAILED"
	StatusParked    Status = "PARKED"
	StatusDiscarded Status = "DISCARDED"
)

// Statuses lists every status, in the order of a row's life.
func Statuses() []Status {
	return []Status{StatusInit, StatusPublished, StatusComplete, StatusFailed, StatusParked, StatusDiscarded}
}

// Insert writes messages as outbox rows within tx, so they commit or roll back
// with the change they announce, in one statement.
func Insert(ctx context.Context, tx *sql.Tx, msgs ...event.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, InsertSQL(len(msgs)), InsertArgs(msgs...)...); err != nil {
		return fmt.Errorf("insert %d outbox rows (%s %s first): %w", len(msgs), msgs[0].Type, msgs[0].ID, err)
	}
	return nil
}

// insertColumns are the columns InsertSQL sets, in the order of InsertArgs.
const insertColumns = 5

// InsertSQL is the statement that inserts n outbox rows (n >= 1) from the
// parameters $1 to $5n, which InsertArgs gives: for a caller that runs it
// as part of a larger statement (a data-modifying WITH), whose own
// parameters then start at $5n+1.
func InsertSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		p := i*insertColumns + 1
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d)", p, p+1, p+2, p+3, p+4)
	}
	return b.String()
}

// InsertArgs are the parameters of InsertSQL(len(msgs)).
func InsertArgs(msgs ...event.Message) []any {
	args := make([]any, 0, insertColumns*len(msgs))
	for _, m := range msgs {
		args = append(args, m.ID, m.AggregateType, m.AggregateID, m.Type, []byte(m.Payload))
	}
	return args
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
