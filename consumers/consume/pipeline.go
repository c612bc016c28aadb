package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// delivery is what a partition's goroutine hands to the pipeline: records
// of one partition in offset order (one, or a batch for a BatchHandler).
type delivery struct {
	recs     []Record
	seen     []time.Time     // when the group first saw each record (the poll that fetched it)
	stopping <-chan struct{} // closed when the partition stops: waits end
	attempt  int             // this attempt, from 1; set by retry
}

// step handles a delivery; a stage wraps a step with one of the concerns
// every group shares, as Middleware does for a handler.
type (
	step  func(ctx context.Context, d *delivery) error
	stage func(next step) step
)

// errStopped: the partition is stopping, or its context is done; the
// delivery was not handled and its offset must not be stored.
var errStopped = errors.New("partition stopping")

// errDeadLetter: a record could not be sent to the DLQ; it is handled
// again after a backoff.
var errDeadLetter = errors.New("dead-letter failed")

// pipeline is the group's handling of a delivery, outermost first: a batch
// that fails permanently is handled record by record; retry with backoff;
// a record that fails permanently goes to the DLQ; RetryWhileRecent and
// RetryUpTo errors become permanent once exhausted; outcomes are counted;
// the handler.
func (g *Group) pipeline() step {
	s := g.invoke
	for _, st := range []stage{g.countOutcome, g.exhaust, g.deadLetterPermanent, g.retry, g.splitBatch} {
		s = st(s)
	}
	return s
}

// invoke runs the handler.
func (g *Group) invoke(ctx context.Context, d *delivery) error {
	if g.batch != nil {
		return g.batch.HandleBatch(ctx, d.recs)
	}
	return g.handler.Handle(ctx, d.recs[0])
}

// countOutcome counts what the handler reports, per record: those a batch
// handler set aside (countAside) by their outcome, the rest by the batch's.
// ErrSkipped and ErrDuplicate count as handled.
func (g *Group) countOutcome(next step) step {
	return func(ctx context.Context, d *delivery) error {
		t := &tally{}
		err := next(context.WithValue(ctx, tallyKey{}, t), d)
		if err != nil && !errors.Is(err, ErrSkipped) && !errors.Is(err, ErrDuplicate) {
			return err
		}
		rest := len(d.recs) - t.skipped - t.duplicate
		switch {
		case err == nil:
			g.metrics.handled("ok", rest)
		case errors.Is(err, ErrSkipped):
			t.skipped += rest
		default:
			t.duplicate += rest
		}
		if t.skipped > 0 {
			g.metrics.handled("skipped", t.skipped)
		}
		if t.duplicate > 0 {
			g.metrics.handled("duplicate", t.duplicate)
		}
		return nil
	}
}

// tally is what one attempt of a batch set aside: records skipped, or
// duplicates, while the others went on.
type tally struct{ skipped, duplicate int }

type tallyKey struct{}

// countAside records, for the group's metrics, that n records of the batch
// being handled in ctx had outcome (ErrSkipped or ErrDuplicate) while the
// handler went on with the others; the batch's own outcome counts the rest.
func countAside(ctx context.Context, outcome error, n int) {
	t, _ := ctx.Value(tallyKey{}).(*tally)
	switch {
	case t == nil || n <= 0:
	case errors.Is(outcome, ErrSkipped):
		t.skipped += n
	case errors.Is(outcome, ErrDuplicate):
		t.duplicate += n
	}
}

// exhaust makes RetryWhileRecent and RetryUpTo errors permanent once their
// retries are used up (exhausted).
func (g *Group) exhaust(next step) step {
	return func(ctx context.Context, d *delivery) error {
		err := next(ctx, d)
		return exhausted(err, time.Since(d.seen[0]), d.attempt, g.cfg.VisibilityWindow, g.cfg.VisibilityAttempts)
	}
}

// exhausted returns err permanent when its retries are used up: a
// RetryUpTo error once attempt reaches its tries; a RetryWhileRecent one
// once the group has seen the record for window (by its own clock) or tried
// it maxAttempts times. Other errors are returned as they are.
func exhausted(err error, seen time.Duration, attempt int, window time.Duration, maxAttempts int) error {
	var limited *limitedError
	switch {
	case err == nil || IsPermanent(err):
		return err
	case errors.As(err, &limited) && uint(attempt) >= limited.tries:
		return backoff.Permanent(fmt.Errorf("gave up after %d tries: %w", attempt, err))
	case errors.Is(err, ErrNotYet) && (seen >= window || attempt >= maxAttempts):
		return backoff.Permanent(fmt.Errorf("still failing %v after the group first saw the record, after %d attempts: %w",
			seen.Round(time.Millisecond), attempt, err))
	}
	return err
}

// deadLetterPermanent sends a record that failed permanently to its
// topic's DLQ; a batch's permanent failure is left to splitBatch.
func (g *Group) deadLetterPermanent(next step) step {
	return func(ctx context.Context, d *delivery) error {
		err := next(ctx, d)
		if !IsPermanent(err) || len(d.recs) != 1 || ctx.Err() != nil {
			return err
		}
		if dlqErr := g.deadLetter(ctx, d.recs[0], err); dlqErr != nil {
			g.logger.Warn("dead-letter failed; retrying", "record", d.recs[0].String(), "err", dlqErr)
			return fmt.Errorf("%w: %w", errDeadLetter, dlqErr)
		}
		return nil
	}
}

// batchAttempts is how many times a batch of several records is tried as a
// whole before splitBatch handles its records one by one: a batch fails or
// succeeds whole, so one record failing again and again (a flaky remote
// service) must not hold back the others, nor make a long batch retry on
// the odds of every record succeeding at once.
const batchAttempts = 3

// retry handles a delivery until it is done or fails permanently, waiting
// with exponential backoff between attempts; a batch of several records,
// at most batchAttempts times (then splitBatch takes over). A delivery
// failing with RetryWhileRecent gets one last attempt as its window
// closes. It gives up with errStopped when the partition stops.
func (g *Group) retry(next step) step {
	return func(ctx context.Context, d *delivery) error {
		// The records are recent until the window has passed since the group
		// saw the first of them: the record's own timestamp is the producer's
		// word and is not trusted.
		recentUntil := d.seen[0].Add(g.cfg.VisibilityWindow)
		b := &backoff.ExponentialBackOff{InitialInterval: g.cfg.RetryInitial, RandomizationFactor: 0.3,
			Multiplier: 2, MaxInterval: g.cfg.RetryMax}
		b.Reset()
		for d.attempt = 1; ; d.attempt++ {
			err := next(ctx, d)
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return errStopped
			case IsPermanent(err):
				return err
			case len(d.recs) > 1 && d.attempt >= batchAttempts:
				g.metrics.retry()
				g.logger.Warn("batch failing; handling its records one by one", "record", d.recs[0].String(),
					"records", len(d.recs), "attempt", d.attempt, "err", err)
				return err
			case errors.Is(err, errDeadLetter):
			default:
				g.metrics.retry()
				if d.attempt == 1 || d.attempt%10 == 0 {
					g.logger.Warn("handling failed; retrying", "record", d.recs[0].String(), "records", len(d.recs),
						"attempt", d.attempt, "err", err)
				}
			}
			wait := b.NextBackOff()
			if left := time.Until(recentUntil); errors.Is(err, ErrNotYet) && left > 0 && wait > left {
				wait = left // try once more as the window closes, then give up
			}
			select {
			case <-d.stopping:
				return errStopped
			case <-time.After(wait):
			}
		}
	}
}

// splitBatch handles a batch that failed permanently, or kept failing for
// batchAttempts attempts, record by record, so that only the poison one
// goes to the DLQ and a failing one holds back only the records after it;
// each keeps the time the group first saw it.
func (g *Group) splitBatch(next step) step {
	return func(ctx context.Context, d *delivery) error {
		err := next(ctx, d)
		if err == nil || len(d.recs) == 1 || errors.Is(err, errStopped) || ctx.Err() != nil {
			return err
		}
		for i := range d.recs {
			one := &delivery{recs: d.recs[i : i+1], seen: d.seen[i : i+1], stopping: d.stopping}
			if err := next(ctx, one); err != nil {
				return err
			}
		}
		return nil
	}
}
