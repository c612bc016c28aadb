package consume

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/inbox"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// HandlerFunc is a Handler as a function.
type HandlerFunc func(ctx context.Context, rec Record) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, rec Record) error { return f(ctx, rec) }

// Middleware wraps a handler with one concern, in the manner of watermill's
// router: it may act before and after next, or not call it at all.
type Middleware func(next HandlerFunc) HandlerFunc

// Chain returns h wrapped in mws, the first outermost.
func Chain(h HandlerFunc, mws ...Middleware) HandlerFunc {
	for _, mw := range slices.Backward(mws) {
		h = mw(h)
	}
	return h
}

// OnlyTypes passes on the records whose eventType header is one of types;
// the others are ErrSkipped. The header only routes: a handler behind Inbox
// acts on the row, whose type Match checks.
func OnlyTypes(types ...string) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, rec Record) error {
			if !slices.Contains(types, rec.EventType()) {
				return ErrSkipped
			}
			return next(ctx, rec)
		}
	}
}

// Effect applies an event's effect within tx, the transaction that claims
// the event. row is the event's outbox row, which the record matches: the
// effect acts on its payload, never on the record's value. Its error means
// what a Handler's does (backoff.Permanent for what retrying cannot fix).
type Effect func(ctx context.Context, tx *sql.Tx, row event.Message) error

// Inbox returns the handler that applies effect once per event for group.
// In one transaction it claims the event (internal/inbox), reads its outbox
// row, checks that the record matches it (Record.Match), applies effect and
// marks the row handled by group, which makes it COMPLETE once every group
// of its type has (outbox.MarkHandled: the one place COMPLETE is written
// from); after the commit it observes the completion in m. A row not
// visible (yet) changes nothing and is RetryWhileRecent; an event the group
// claimed before is ErrDuplicate, also once its row is gone (retention).
func Inbox(db *sql.DB, group string, effect Effect, m *Metrics) HandlerFunc {
	return func(ctx context.Context, rec Record) error {
		id, err := rec.EventID()
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin handling event %s: %w", id, err)
		}
		defer tx.Rollback()
		claimed, err := inbox.Claim(ctx, tx, group, id)
		if err != nil {
			return err
		}
		row, err := outbox.Load(ctx, tx, id)
		switch {
		case errors.Is(err, outbox.ErrNotFound) && !claimed:
			return ErrDuplicate // handled, and its row since deleted
		case errors.Is(err, outbox.ErrNotFound):
			return RetryWhileRecent(err)
		case err != nil:
			return err
		}
		if err := rec.Match(row); err != nil {
			return err
		}
		if !claimed {
			return ErrDuplicate
		}
		if err := effect(ctx, tx, row); err != nil {
			return err
		}
		c, err := outbox.MarkHandled(ctx, tx, id, row.Type, group)
		if errors.Is(err, outbox.ErrNotFound) {
			return RetryWhileRecent(err) // read above: only a concurrent delete gets here
		}
		if err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit handling event %s: %w", id, err)
		}
		if c.Completed {
			m.observeCompletion(row.Type, c.Latency)
		}
		return nil
	}
}
