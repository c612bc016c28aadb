// Package inbox records which events a consumer group has handled, in the
// same transaction as the handling, so that a redelivered event is
// recognised and its effects are not applied twice.
package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// Claim records that group handles the event within tx. It reports false
// when the group handled it before: the caller must then apply nothing. A
// concurrent claim of the same event waits for the first to commit or roll
// back.
func Claim(ctx context.Context, tx *sql.Tx, group string, eventID uuid.UUID) (bool, error) {
	claimed, err := ClaimAll(ctx, tx, group, []uuid.UUID{eventID})
	return claimed[eventID], err
}

// ClaimAll records that group handles the events within tx, in one
// statement, and returns the ids it claimed now: an id absent from the
// result (handled before, or repeated in ids) must have nothing applied.
// The claims are taken in id order, so concurrent batches that share
// events cannot deadlock; a concurrent claim of the same event waits for
// the first to commit or roll back.
func ClaimAll(ctx context.Context, tx *sql.Tx, group string, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	claimed := make(map[uuid.UUID]bool, len(ids))
	if len(ids) == 0 {
		return claimed, nil
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	slices.Sort(strs) // the text order of uuids is their order in Postgres
	strs = slices.Compact(strs)
	rows, err := tx.QueryContext(ctx, `
		INSERT INTO processed_events (consumer_group, event_id)
		SELECT $1::text, id FROM unnest($2::uuid[]) AS id ORDER BY id
		ON CONFLICT DO NOTHING
		RETURNING event_id`, group, pq.Array(strs))
	if err != nil {
		return nil, fmt.Errorf("claim %d events for %s: %w", len(strs), group, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("claim %d events for %s: %w", len(strs), group, err)
		}
		claimed[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim %d events for %s: %w", len(strs), group, err)
	}
	return claimed, nil
}
