package shop

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// FulfilPaidOrder applies a paid order's OrderPaid event e within tx, the
// caller's transaction (the stock group's, which claims the event and marks
// its outbox row handled): it either takes the stock of every item (locked
// in product detail order, so concurrent orders cannot deadlock) or, if any
// item is short, takes none and refunds the payment, cancels the order and
// writes a PaymentRefunded outbox row, reporting refunded. Stock never goes
// negative and a payment is refunded at most once.
func FulfilPaidOrder(ctx context.Context, tx *sql.Tx, e event.OrderPaid) (refunded bool, err error) {
	items := slices.Clone(e.Items)
	slices.SortFunc(items, func(a, b event.Item) int { return cmp.Compare(a.ProductDetailID, b.ProductDetailID) })
	short, err := takeStock(ctx, tx, items)
	if err != nil {
		return false, fmt.Errorf("fulfil paid order %d: %w", e.OrderID, err)
	}
	if short == "" {
		return false, nil
	}
	if err := refund(ctx, tx, e.OrderID, short); err != nil {
		return false, fmt.Errorf("fulfil paid order %d: %w", e.OrderID, err)
	}
	return true, nil
}

// takeStock locks the items' product details in id order and decreases
// their stock if every one has enough; otherwise it changes nothing and
// says which is short.
func takeStock(ctx context.Context, tx *sql.Tx, items []event.Item) (short string, err error) {
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ProductDetailID
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT id, stock FROM product_details WHERE id = ANY($1) ORDER BY id FOR UPDATE`, pq.Array(ids))
	if err != nil {
		return "", fmt.Errorf("lock product details: %w", err)
	}
	stock := make(map[int64]int, len(ids))
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return "", fmt.Errorf("read product details: %w", err)
		}
		stock[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read product details: %w", err)
	}
	for _, it := range items {
		n, ok := stock[it.ProductDetailID]
		if !ok {
			return fmt.Sprintf("product detail %d does not exist", it.ProductDetailID), nil
		}
		if n < it.Quantity {
			return fmt.Sprintf("out of stock: product detail %d has %d, %d ordered", it.ProductDetailID, n, it.Quantity), nil
		}
	}
	for _, it := range items {
		if _, err := tx.ExecContext(ctx,
			`UPDATE product_details SET stock = stock - $2, updated_at = now() WHERE id = $1`,
			it.ProductDetailID, it.Quantity); err != nil {
			return "", fmt.Errorf("take stock of product detail %d: %w", it.ProductDetailID, err)
		}
	}
	return "", nil
}

// refund gives a paid order's amount back to its user, marks the payment
// REFUNDED and the order CANCELLED, and writes a PaymentRefunded outbox row.
// An order whose payment is not PAID (refunded already) is left alone.
func refund(ctx context.Context, tx *sql.Tx, orderID int64, reason string) error {
	var r event.PaymentRefunded
	err := tx.QueryRowContext(ctx,
		`UPDATE payments SET status = $2, refunded_at = now() WHERE order_id = $1 AND status = $3
		 RETURNING id, user_id, amount, refunded_at`, orderID, PaymentRefunded, PaymentPaid).
		Scan(&r.PaymentID, &r.UserID, &r.Amount, &r.RefundedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("refund payment of order %d: %w", orderID, err)
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE users SET balance = balance + $2, updated_at = now() WHERE id = $1`, r.UserID, r.Amount); err != nil {
		return fmt.Errorf("credit user %d: %w", r.UserID, err)
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE orders SET status = $2, updated_at = now() WHERE id = $1`, orderID, OrderCancelled); err != nil {
		return fmt.Errorf("cancel order %d: %w", orderID, err)
	}
	r.OrderID, r.Reason = orderID, reason
	r.RefundedAt = r.RefundedAt.UTC().Truncate(time.Microsecond)
	msg, err := event.NewPaymentRefunded(r)
	if err != nil {
		return err
	}
	return outbox.Insert(ctx, tx, msg)
}
