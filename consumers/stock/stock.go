// Package stock is the handler of the "stock" consumer group: it takes the
// stock of paid orders, or refunds them when stock is short.
package stock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// Handler handles OrderPaid events from outbox.event.order.
type Handler struct {
	shop    *shop.Service
	metrics *consume.Metrics
	logger  *slog.Logger
}

// New returns the stock handler.
func New(svc *shop.Service, m *consume.Metrics, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{shop: svc, metrics: m, logger: logger}
}

// Handle takes the stock of a paid order once, or refunds it. It acts on
// the event's outbox row, which the record must match (Record.Match), and
// on the row's payload, not the record's.
func (h *Handler) Handle(ctx context.Context, rec consume.Record) error {
	if rec.EventType() != event.TypeOrderPaid {
		return consume.ErrSkipped
	}
	id, err := rec.EventID()
	if err != nil {
		return err
	}
	f, err := h.shop.FulfilPaidOrder(ctx, id, event.GroupStock, func(row event.Message) (event.OrderPaid, error) {
		if err := rec.Match(row); err != nil {
			return event.OrderPaid{}, err
		}
		e, err := parseOrderPaid(row.Payload)
		if err != nil {
			return e, consume.Permanent(fmt.Errorf("outbox row %s: %w", id, err))
		}
		return e, nil
	})
	if errors.Is(err, outbox.ErrNotFound) {
		return consume.RetryWhileRecent(err)
	}
	if err != nil {
		return err
	}
	if f.Duplicate {
		return consume.ErrDuplicate
	}
	if f.Refunded {
		h.logger.Info("order refunded: stock short", "order", f.OrderID, "event", id)
	}
	if f.Completion.Completed {
		h.metrics.ObserveCompletion(event.TypeOrderPaid, f.Completion.Latency)
	}
	return nil
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
