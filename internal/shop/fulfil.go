package shop

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// FulfilPaidOrder applies a paid order's OrderPaid event e within tx, the
// caller's transaction (the stock group's, which claims the event and marks
// its outbox row handled): it either takes the stock of every item or, if
// any item is short, takes none and refunds the payment, cancels the order
// and writes a PaymentRefunded outbox row, reporting refunded. Stock never
// goes negative and a payment is refunded at most once. It is
// FulfilPaidOrders of one order.
func FulfilPaidOrder(ctx context.Context, tx *sql.Tx, e event.OrderPaid) (refunded bool, err error) {
	r, err := FulfilPaidOrders(ctx, tx, []event.OrderPaid{e})
	if err != nil {
		return false, err
	}
	return r[0], nil
}

// FulfilPaidOrders applies OrderPaid events within tx as FulfilPaidOrder
// does each, one after the other in their order: an order sees the stock
// the orders before it took, and refunded[i] reports whether es[i] was
// refunded. It locks the product details of every order once, in id order
// (so concurrent calls cannot deadlock), decides in memory, takes the
// stock in one statement and refunds the short orders.
func FulfilPaidOrders(ctx context.Context, tx *sql.Tx, es []event.OrderPaid) (refunded []bool, err error) {
	stock, err := lockStock(ctx, tx, es)
	if err != nil {
		return nil, fmt.Errorf("fulfil %d paid orders: %w", len(es), err)
	}
	refunded = make([]bool, len(es))
	shortOf := make([]string, len(es))
	taken := map[int64]int{}
	for i, e := range es {
		items := slices.Clone(e.Items)
		slices.SortFunc(items, func(a, b event.Item) int { return cmp.Compare(a.ProductDetailID, b.ProductDetailID) })
		if shortOf[i] = short(stock, items); shortOf[i] != "" {
			refunded[i] = true
			continue
		}
		for _, it := range items {
			stock[it.ProductDetailID] -= it.Quantity
			taken[it.ProductDetailID] += it.Quantity
		}
	}
	if err := takeStock(ctx, tx, taken); err != nil {
		return nil, fmt.Errorf("fulfil %d paid orders: %w", len(es), err)
	}
	for i, e := range es {
		if !refunded[i] {
			continue
		}
		if err := refund(ctx, tx, e.OrderID, shortOf[i]); err != nil {
			return nil, fmt.Errorf("fulfil paid order %d: %w", e.OrderID, err)
		}
	}
	return refunded, nil
}

// lockStock locks the product details of the orders' items in id order and
// returns their stock; a product detail that does not exist is absent.
func lockStock(ctx context.Context, tx *sql.Tx, es []event.OrderPaid) (map[int64]int, error) {
	var ids []int64
	for _, e := range es {
		for _, it := range e.Items {
			ids = append(ids, it.ProductDetailID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	rows, err := tx.QueryContext(ctx,
		`SELECT id, stock FROM product_details WHERE id = ANY($1) ORDER BY id FOR UPDATE`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("lock %d product details: %w", len(ids), err)
	}
	defer rows.Close()
	stock := make(map[int64]int, len(ids))
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("read product details: %w", err)
		}
		stock[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read product details: %w", err)
	}
	return stock, nil
}

// short says which of items (in product detail order) stock cannot serve,
// or "" if it can serve them all.
func short(stock map[int64]int, items []event.Item) string {
	for _, it := range items {
		n, ok := stock[it.ProductDetailID]
		if !ok {
			return fmt.Sprintf("product detail %d does not exist", it.ProductDetailID)
		}
		if n < it.Quantity {
			return fmt.Sprintf("out of stock: product detail %d has %d, %d ordered", it.ProductDetailID, n, it.Quantity)
		}
	}
	return ""
}

// takeStock decreases the stock of product details, locked by lockStock,
// by the quantities taken, in one statement.
func takeStock(ctx context.Context, tx *sql.Tx, taken map[int64]int) error {
	if len(taken) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(taken))
	qty := make([]int64, len(ids))
	for i, id := range ids {
		qty[i] = int64(taken[id])
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE product_details p SET stock = p.stock - t.qty, updated_at = now()
		FROM unnest($1::bigint[], $2::bigint[]) AS t(id, qty) WHERE p.id = t.id`,
		pq.Array(ids), pq.Array(qty)); err != nil {
		return fmt.Errorf("take the stock of %d product details: %w", len(ids), err)
	}
	return nil
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
