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
	"golang.org/x/sync/errgroup"

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
	// InFlight bounds the POSTs one partition's batch has in flight at once
	// (default 16).
	InFlight int
}

// New returns the handler of PaymentCompleted and PaymentRefunded events
// from outbox.event.payment: it POSTs the payload of each event's outbox row
// to the platform with Idempotency-Key = the event id, a batch of a
// partition's records at a time. Within a batch the events of one
// aggregate (one payment) are POSTed one after the other in offset order,
// those of different aggregates concurrently, at most InFlight at once.
// Timeouts, connection errors and 5xx fail the batch (consume.RetryUpTo
// MaxTries), which the group tries again a few times and then handles
// record by record, each retried up to MaxTries POSTs; a 4xx fails it
// permanently, and the group handles its records one by one at once, so
// only the refused record goes to the DLQ (or one that runs out of tries).
// The platform de-duplicates by the key what a retried batch POSTs again.
//
// The POSTs happen inside the group's inbox transaction (consume.Inbox),
// between the claim of the batch's events and the commit that records them
// handled: the claim's locks keep a second worker of the group (during a
// rebalance) from POSTing the same events at the same time, and an event is
// recorded as handled only once the platform has it. A crash between the
// POST and the commit is safe: the redelivery POSTs again with the same
// key, and the platform de-duplicates it.
func New(db *sql.DB, cfg Config, m *consume.Metrics, logger *slog.Logger) consume.BatchFunc {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxTries == 0 {
		cfg.MaxTries = 8
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 16
	}
	logger = logging.OrDiscard(logger)
	d := &deliverer{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout, Transport: transport(cfg.InFlight)}, logger: logger}
	return consume.Chain(consume.Inbox(db, event.GroupDataPlatform, d.deliverAll, m),
		consume.OnlyTypes(event.TypePaymentCompleted, event.TypePaymentRefunded))
}

// transport is http.DefaultTransport's settings with room for inFlight
// idle connections per host, so that concurrent POSTs reuse their
// connections instead of opening new ones.
func transport(inFlight int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(inFlight, t.MaxIdleConnsPerHost)
	t.MaxIdleConns = max(inFlight, t.MaxIdleConns)
	return t
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

// deliverAll POSTs the rows' payloads: one aggregate's rows one after the
// other in their order, different aggregates concurrently, at most InFlight
// POSTs at once. It returns the first failure; the others' POSTs are
// canceled, and the whole batch is tried again.
func (d *deliverer) deliverAll(ctx context.Context, _ *sql.Tx, rows []event.Message) error {
	for _, row := range rows {
		if err := checkPayment(row.Type, row.Payload); err != nil {
			return backoff.Permanent(fmt.Errorf("outbox row %s: %w", row.ID, err))
		}
	}
	var keys []string
	byKey := make(map[string][]event.Message)
	for _, row := range rows {
		if _, ok := byKey[row.AggregateID]; !ok {
			keys = append(keys, row.AggregateID)
		}
		byKey[row.AggregateID] = append(byKey[row.AggregateID], row)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.cfg.InFlight)
	for _, k := range keys {
		g.Go(func() error {
			for _, row := range byKey[k] {
				if err := d.deliver(gctx, row); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// deliver POSTs the row's payload once.
func (d *deliverer) deliver(ctx context.Context, row event.Message) error {
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
