package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/inbox"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Fulfilment is what FulfilPaidOrder did.
type Fulfilment struct {
	Duplicate  bool  // the event was handled before: nothing done
	Refunded   bool  // stock was short: the payment was refunded and the order cancelled
	OrderID    int64 // the order, from the outbox row (0 for a Duplicate whose row is gone)
	Completion outbox.Completion
}

// FulfilPaidOrder handles the OrderPaid event whose outbox row has id
// eventID for consumer group group, once. In one transaction it records the
// event as handled, reads its outbox row (outbox.ErrNotFound if it is not
// visible yet) and hands it to accept, which checks that the row is the
// event the caller was told of and decodes the order from the row's payload
// (an error from accept is returned as is, and nothing changes); then it
// either takes the stock of every item (locked in product detail order, so
// concurrent orders cannot deadlock) or, if any item is short, takes none
// and refunds the payment, cancels the order and writes a PaymentRefunded
// outbox row. Stock never goes negative and a payment is refunded at most
// once. An event handled before is a Duplicate, also once its row is gone
// (deleted by retention).
func (s *Service) FulfilPaidOrder(ctx context.Context, eventID uuid.UUID, group string,
	accept func(row event.Message) (event.OrderPaid, error)) (Fulfilment, error) {
	var f Fulfilment
	var e event.OrderPaid
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		claimed, err := inbox.Claim(ctx, tx, group, eventID)
		if err != nil {
			return err
		}
		row, err := outbox.Load(ctx, tx, eventID)
		if errors.Is(err, outbox.ErrNotFound) && !claimed {
			f.Duplicate = true // handled, and its row since deleted
			return nil
		}
		if err != nil {
			return err
		}
		if e, err = accept(row); err != nil {
			return err
		}
		if !claimed {
			f.Duplicate = true
			return nil
		}
		items := slices.Clone(e.Items)
		slices.SortFunc(items, func(a, b event.Item) int { return int(a.ProductDetailID - b.ProductDetailID) })
		short, err := takeStock(ctx, tx, items)
		if err != nil {
			return err
		}
		if short != "" {
			f.Refunded = true
			if err := refund(ctx, tx, e.OrderID, short); err != nil {
				return err
			}
		}
		f.Completion, err = outbox.MarkHandled(ctx, tx, eventID, event.TypeOrderPaid, group)
		return err
	})
	if err != nil {
		return Fulfilment{}, fmt.Errorf("fulfil paid order of event %s: %w", eventID, err)
	}
	f.OrderID = e.OrderID
	return f, nil
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
