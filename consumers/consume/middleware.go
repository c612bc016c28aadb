package consume

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/inbox"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// HandlerFunc is a Handler as a function.
type HandlerFunc func(ctx context.Context, rec Record) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, rec Record) error { return f(ctx, rec) }

// BatchFunc is a BatchHandler as a function, and a Handler that handles a
// record as a batch of one: the group hands it a partition's queued records
// at once.
type BatchFunc func(ctx context.Context, recs []Record) error

// HandleBatch calls f.
func (f BatchFunc) HandleBatch(ctx context.Context, recs []Record) error { return f(ctx, recs) }

// Handle calls f with a batch of one.
func (f BatchFunc) Handle(ctx context.Context, rec Record) error { return f(ctx, []Record{rec}) }

// Middleware wraps a handler with one concern, in the manner of watermill's
// router: it may act before and after next, or not call it at all. It
// wraps a BatchFunc, so one chain serves batches and single records (a
// batch of one) alike.
type Middleware func(next BatchFunc) BatchFunc

// Chain returns h wrapped in mws, the first outermost.
func Chain(h BatchFunc, mws ...Middleware) BatchFunc {
	for _, mw := range slices.Backward(mws) {
		h = mw(h)
	}
	return h
}

// OnlyTypes passes on the records whose eventType header is one of types,
// in their order, and leaves the others out; a batch with none of them is
// ErrSkipped. The header only routes: a handler behind Inbox acts on the
// row, whose type Match checks.
func OnlyTypes(types ...string) Middleware {
	return func(next BatchFunc) BatchFunc {
		return func(ctx context.Context, recs []Record) error {
			kept := recs
			if slices.ContainsFunc(recs, func(r Record) bool { return !slices.Contains(types, r.EventType()) }) {
				kept = slices.DeleteFunc(slices.Clone(recs), func(r Record) bool { return !slices.Contains(types, r.EventType()) })
			}
			if len(kept) == 0 {
				return ErrSkipped
			}
			countAside(ctx, ErrSkipped, len(recs)-len(kept))
			return next(ctx, kept)
		}
	}
}

// Effect applies the effects of events within tx, the transaction that
// claims them. rows are the events' outbox rows in their records' offset
// order, each claimed by this transaction (never one the group handled
// before) and matched by its record: the effect acts on their payloads,
// never on the records' values. Its error is the batch's, as a
// BatchHandler's: backoff.Permanent for what retrying cannot fix, and the
// group then handles the records one by one, so that a permanent error
// names one row and only its record goes to the DLQ.
type Effect func(ctx context.Context, tx *sql.Tx, rows []event.Message) error

// Inbox returns the handler that applies effect once per event for group,
// a batch of records at a time. In one transaction it claims the batch's
// events (inbox.ClaimAll), reads their outbox rows (outbox.LoadAll), checks
// that each record matches its row (Record.Match; a mismatch fails the
// batch permanently), applies effect to the rows claimed now, in offset
// order, and marks them handled by group, which makes a row COMPLETE once
// every group of its type has (outbox.MarkHandledAll: the one place
// COMPLETE is written from); after the commit it observes the completions
// in m. A claimed row not visible (yet) changes nothing and is
// RetryWhileRecent for the whole batch; an event the group claimed before,
// also once its row is gone (retention), or repeated in the batch, gets
// nothing applied again, and a batch of only such events is ErrDuplicate.
func Inbox(db *sql.DB, group string, effect Effect, m *Metrics) BatchFunc {
	return func(ctx context.Context, recs []Record) error {
		ids := make([]uuid.UUID, len(recs))
		for i, rec := range recs {
			id, err := rec.EventID()
			if err != nil {
				return err
			}
			ids[i] = id
		}
		what := fmt.Sprintf("event %s", ids[0])
		if len(ids) > 1 {
			what = fmt.Sprintf("%d events from %s", len(ids), recs[0])
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin handling %s: %w", what, err)
		}
		defer tx.Rollback()
		claimed, err := inbox.ClaimAll(ctx, tx, group, ids)
		if err != nil {
			return err
		}
		rows, err := outbox.LoadAll(ctx, tx, ids)
		if err != nil {
			return err
		}
		apply := make([]event.Message, 0, len(claimed))
		for i, rec := range recs {
			row, ok := rows[ids[i]]
			switch {
			case !ok && claimed[ids[i]]:
				return RetryWhileRecent(fmt.Errorf("load event %s: %w", ids[i], outbox.ErrNotFound))
			case !ok:
				continue // handled, and its row since deleted
			}
			if err := rec.Match(row); err != nil {
				return err
			}
			if claimed[ids[i]] {
				apply = append(apply, row)
				delete(claimed, ids[i]) // a repeated event is applied once
			}
		}
		if len(apply) == 0 {
			return ErrDuplicate
		}
		duplicates := len(recs) - len(apply)
		if err := effect(ctx, tx, apply); err != nil {
			return err
		}
		cs, err := outbox.MarkHandledAll(ctx, tx, apply, group)
		if errors.Is(err, outbox.ErrNotFound) {
			return RetryWhileRecent(err) // read above: only a concurrent delete gets here
		}
		if err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit handling %s: %w", what, err)
		}
		countAside(ctx, ErrDuplicate, duplicates)
		for i, c := range cs {
			if c.Completed {
				m.observeCompletion(apply[i].Type, c.Latency)
			}
		}
		return nil
	}
}
