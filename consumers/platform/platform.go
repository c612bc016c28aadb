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
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/inbox"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Config is how the platform is reached.
type Config struct {
	URL string // base URL; events are POSTed to URL + "/events"
	// Timeout bounds one POST (default 5s).
	Timeout time.Duration
	// MaxTries bounds the POSTs of one event (default 8); RetryInitial and
	// RetryMax bound the exponential backoff, with jitter, between them.
	MaxTries               uint
	RetryInitial, RetryMax time.Duration
}

// Handler handles PaymentCompleted and PaymentRefunded from outbox.event.payment.
type Handler struct {
	db      *sql.DB
	cfg     Config
	client  *http.Client
	metrics *consume.Metrics
	logger  *slog.Logger
}

// New returns the data-platform handler.
func New(db *sql.DB, cfg Config, m *consume.Metrics, logger *slog.Logger) *Handler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxTries == 0 {
		cfg.MaxTries = 8
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{db: db, cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, metrics: m, logger: logger}
}

// Handle POSTs a payment event to the platform with Idempotency-Key = the
// event id, retrying timeouts, connection errors and 5xx with backoff; then
// records it as handled. What it POSTs is the payload of the event's outbox
// row, which the record must match (Record.Match), not the record's value. A
// 4xx, or running out of tries, sends the record to the DLQ. A crash between
// the POST and the record is safe: the platform de-duplicates the
// redelivery by its key.
func (h *Handler) Handle(ctx context.Context, rec consume.Record) error {
	typ := rec.EventType()
	if typ != event.TypePaymentCompleted && typ != event.TypePaymentRefunded {
		return consume.ErrSkipped
	}
	id, err := rec.EventID()
	if err != nil {
		return err
	}
	done, err := inbox.Handled(ctx, h.db, event.GroupDataPlatform, id)
	if err != nil {
		return err
	}
	if done {
		return consume.ErrDuplicate
	}
	row, err := outbox.Load(ctx, h.db, id)
	if errors.Is(err, outbox.ErrNotFound) {
		return consume.RetryWhileRecent(err)
	}
	if err != nil {
		return err
	}
	if err := rec.Match(row); err != nil {
		return err
	}
	if err := checkPayment(typ, row.Payload); err != nil {
		return consume.Permanent(fmt.Errorf("outbox row %s: %w", id, err))
	}
	if err := h.deliver(ctx, id, typ, row.Payload); err != nil {
		return err
	}
	err = h.record(ctx, id, typ)
	if errors.Is(err, outbox.ErrNotFound) {
		return consume.RetryWhileRecent(err) // the row was read above; only a concurrent delete gets here
	}
	return err
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

func (h *Handler) deliver(ctx context.Context, id uuid.UUID, typ string, body []byte) error {
	post := func() (struct{}, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL+"/events", bytes.NewReader(body))
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", id.String())
		req.Header.Set("X-Event-Type", typ)
		resp, err := h.client.Do(req)
		if err != nil {
			return struct{}{}, err // timeouts and connection errors are retried
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return struct{}{}, nil
		case resp.StatusCode < 500:
			return struct{}{}, backoff.Permanent(fmt.Errorf("%w: %s: %s", errRefused, resp.Status, bytes.TrimSpace(msg)))
		default:
			return struct{}{}, fmt.Errorf("data platform: %s", resp.Status)
		}
	}
	b := &backoff.ExponentialBackOff{InitialInterval: h.cfg.RetryInitial, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: h.cfg.RetryMax}
	tries := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		tries++
		return post()
	}, backoff.WithBackOff(b), backoff.WithMaxTries(h.cfg.MaxTries), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, next time.Duration) {
			h.logger.Debug("data platform POST failed; retrying", "event", id, "err", err, "in", next)
		}))
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errRefused):
		return consume.Permanent(fmt.Errorf("deliver %s %s: %w", typ, id, err))
	default:
		return consume.Permanent(fmt.Errorf("deliver %s %s: gave up after %d tries: %w", typ, id, tries, err))
	}
}

// record marks the event handled by the group, and the outbox row COMPLETE
// when that was the last group.
func (h *Handler) record(ctx context.Context, id uuid.UUID, typ string) error {
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	claimed, err := inbox.Claim(ctx, tx, event.GroupDataPlatform, id)
	if err != nil {
		return err
	}
	if !claimed {
		return consume.ErrDuplicate
	}
	c, err := outbox.MarkHandled(ctx, tx, id, typ, event.GroupDataPlatform)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if c.Completed {
		h.metrics.ObserveCompletion(typ, c.Latency)
	}
	return nil
}
