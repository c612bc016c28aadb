// Package platform is the handler of the "data-platform" consumer group: it
// delivers payment events to the external data platform, once.
package platform

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/logging"
)

// Config is how the platform is reached.
type Config struct {
	URL string // base URL; events are POSTed to URL + "/events"
	// Timeout bounds one POST (default 5s).
	Timeout time.Duration
	// MaxTries bounds the POSTs of one event (default 8): the group retries
	// a failed POST with its backoff (consume.RetryUpTo), then dead-letters
	// the record.
	MaxTries uint
}

// New returns the handler of PaymentCompleted and PaymentRefunded events
// from outbox.event.payment: it POSTs the payload of the event's outbox row
// to the platform with Idempotency-Key = the event id, in the group's inbox
// transaction (consume.Inbox), so the event is recorded as handled once the
// platform has it. Timeouts, connection errors and 5xx are retried up to
// MaxTries POSTs; a 4xx, or running out of tries, sends the record to the
// DLQ. A crash between the POST and the commit is safe: the platform
// de-duplicates the redelivery by its key.
func New(db *sql.DB, cfg Config, m *consume.Metrics, logger *slog.Logger) consume.HandlerFunc {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxTries == 0 {
		cfg.MaxTries = 8
	}
	logger = logging.OrDiscard(logger)
	d := &deliverer{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, logger: logger}
	return consume.Chain(consume.Inbox(db, event.GroupDataPlatform, d.deliver, m),
		consume.OnlyTypes(event.TypePaymentCompleted, event.TypePaymentRefunded))
}

// deliverer POSTs events to the platform.
type deliverer struct {
	cfg    Config
	client *http.Client
	logger *slog.Logger
}

// checkPayment checks that a payment event has its required fields.
func checkPayment(typ string, b []byte) error {
	var p struct {
		PaymentID, OrderID, UserID, Amount *int64
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%s payload is not valid: %w", typ, err)
	}
	if p.PaymentID == nil || p.OrderID == nil || p.UserID == nil || p.Amount == nil {
		return fmt.Errorf("%s payload lacks paymentId, orderId, userId or amount: %s", typ, b)
	}
	return nil
}

// errRefused is a 4xx from the platform: retrying cannot help.
var errRefused = errors.New("refused by the data platform")

// deliver POSTs the row's payload once.
func (d *deliverer) deliver(ctx context.Context, _ *sql.Tx, row event.Message) error {
	if err := checkPayment(row.Type, row.Payload); err != nil {
		return backoff.Permanent(fmt.Errorf("outbox row %s: %w", row.ID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL+"/events", bytes.NewReader(row.Payload))
	if err != nil {
		return backoff.Permanent(fmt.Errorf("deliver %s %s: %w", row.Type, row.ID, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", row.ID.String())
	req.Header.Set("X-Event-Type", row.Type)
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.logger.Debug("data platform POST failed", "event", row.ID, "err", err)
		return consume.RetryUpTo(d.cfg.MaxTries, fmt.Errorf("deliver %s %s: %w", row.Type, row.ID, err))
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode < 500:
		return backoff.Permanent(fmt.Errorf("deliver %s %s: %w: %s: %s", row.Type, row.ID, errRefused, resp.Status, bytes.TrimSpace(msg)))
	default:
		return consume.RetryUpTo(d.cfg.MaxTries, fmt.Errorf("deliver %s %s: data platform: %s", row.Type, row.ID, resp.Status))
	}
}
