// Package inbox records which events a consumer group has handled, in the
// same transaction as the handling, so that a redelivered event is
// recognised and its effects are not applied twice.
package inbox

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"
)

// Claim records that group handles the event within tx. It reports false
// when the group handled it before: the caller must then apply nothing. A
// concurrent claim of the same event waits for the first to commit or roll
// back.
func Claim(ctx context.Context, tx *sql.Tx, group string, eventID uuid.UUID) (bool, error) {
	res, err := tx.ExecContext(ctx,
		`INSERT INTO processed_events (consumer_group, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		group, eventID)
	if err != nil {
		return false, fmt.Errorf("claim event %s for %s: %w", eventID, group, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim event %s for %s: %w", eventID, group, err)
	}
	return n == 1, nil
}
