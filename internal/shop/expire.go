package shop

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ExpireOrders marks at most limit ORDERED orders created more than
// olderThan ago as EXPIRED and returns how many it marked. Orders a
// payment holds locked are skipped (the payment decides them). Stock is
// taken only when an order is paid, so nothing is released. Callers loop
// while it returns limit; it runs as outboxpay_worker.
func ExpireOrders(ctx context.Context, db *sql.DB, olderThan time.Duration, limit int) (int64, error) {
	res, err := db.ExecContext(ctx, `
		UPDATE orders SET status = $3, updated_at = now() WHERE id IN (
			SELECT id FROM orders
			WHERE status = $4 AND created_at < now() - $1::bigint * interval '1 microsecond'
			ORDER BY created_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED) AND status = $4`, olderThan.Microseconds(), limit, OrderExpired, OrderOrdered)
	if err != nil {
		return 0, fmt.Errorf("expire ORDERED orders older than %s: %w", olderThan, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("expire ORDERED orders older than %s: %w", olderThan, err)
	}
	return n, nil
}
