// Package stock is the handler of the "stock" consumer group: it takes the
// stock of paid orders, or refunds them when stock is short.
package stock

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/cenkalti/backoff/v5"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// New returns the handler of OrderPaid events from outbox.event.order: it
// takes each order's stock once, or refunds the order when stock is short,
// acting on the payloads of the events' outbox rows in the group's inbox
// transaction (consume.Inbox), a batch of a partition's records at a time:
// shop.FulfilPaidOrders decides the batch's orders in offset order, each
// against the stock the earlier ones took. A payload that is not a valid
// OrderPaid fails the batch permanently; the group then handles its
// records one by one and dead-letters that one.
func New(db *sql.DB, m *consume.Metrics, logger *slog.Logger) consume.BatchFunc {
	logger = logging.OrDiscard(logger)
	fulfil := func(ctx context.Context, tx *sql.Tx, rows []event.Message) error {
		es := make([]event.OrderPaid, len(rows))
		for i, row := range rows {
			e, err := parseOrderPaid(row.Payload)
			if err != nil {
				return backoff.Permanent(fmt.Errorf("outbox row %s: %w", row.ID, err))
			}
			es[i] = e
		}
		refunded, err := shop.FulfilPaidOrders(ctx, tx, es)
		if err != nil {
			return err
		}
		for i, r := range refunded {
			if r {
				logger.Info("order refunded: stock short", "order", es[i].OrderID, "event", rows[i].ID)
			}
		}
		return nil
	}
	return consume.Chain(consume.Inbox(db, event.GroupStock, fulfil, m), consume.OnlyTypes(event.TypeOrderPaid))
}

// parseOrderPaid decodes an OrderPaid payload and checks its required
// fields; fields it does not know are ignored.
func parseOrderPaid(b []byte) (event.OrderPaid, error) {
	var e event.OrderPaid
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("OrderPaid payload is not valid: %w", err)
	}
	if e.OrderID < 1 || e.UserID < 1 || len(e.Items) == 0 {
		return e, fmt.Errorf("OrderPaid payload lacks orderId, userId or items: %s", b)
	}
	seen := map[int64]bool{}
	for _, it := range e.Items {
		if it.ProductDetailID < 1 || it.Quantity < 1 || seen[it.ProductDetailID] {
			return e, fmt.Errorf("OrderPaid item %+v is not valid", it)
		}
		seen[it.ProductDetailID] = true
	}
	return e, nil
}
