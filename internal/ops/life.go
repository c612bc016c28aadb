package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Moments of a timeline (Moment.What).
const (
	MomentCommitted    = "committed"
	MomentPublished    = "published"
	MomentHandled      = "handled"
	MomentDeadLettered = "dead-lettered"
	MomentFailed       = "failed"
	MomentRedriven     = "redriven"
	MomentComplete     = "complete"
)

// Life returns everything known about one event: its row and payload
// (ErrNotFound when there is none), the groups that handle its type and
// when each did, its dead-lettered records (none when Kafka cannot be
// read: that is logged), the audit rows of actions on it, and a timeline
// of all that, oldest first.
func (s *Service) Life(ctx context.Context, id uuid.UUID) (EventLife, error) {
	row, err := outbox.Get(ctx, s.db, id)
	if errors.Is(err, outbox.ErrNotFound) {
		return EventLife{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return EventLife{}, err
	}
	handled, err := outbox.HandledAt(ctx, s.db, id)
	if err != nil {
		return EventLife{}, err
	}
	audit, err := s.Audit(ctx, AuditQuery{Target: id.String(), Limit: 500})
	if err != nil {
		return EventLife{}, err
	}
	dlq, err := s.DLQ(ctx, DLQQuery{EventID: id, Limit: 500})
	if err != nil {
		if ctx.Err() != nil {
			return EventLife{}, err
		}
		s.logger.Warn("event life: dead-lettered records unavailable", "event", id, "err", err)
		dlq = []DLQRecord{}
	}

	life := EventLife{Event: eventOf(row), Payload: row.Payload, Handlers: []Handler{}, DLQ: dlq, Audit: audit}
	groups := event.Handlers(row.Type)
	for g := range handled {
		if !slices.Contains(groups, g) {
			groups = append(groups, g) // a group that no longer handles the type
		}
	}
	for _, g := range groups {
		h := Handler{Group: g}
		if at, ok := handled[g]; ok {
			at = at.UTC()
			h.ProcessedAt = &at
		}
		life.Handlers = append(life.Handlers, h)
	}
	life.Timeline = timeline(row, life.Handlers, dlq, audit)
	return life, nil
}

// timeline orders what is known of an event by time: its commit, its
// publication, each group's handling, each dead-lettering and re-drive,
// the reconciler's giving up, the operators' actions (with the change they
// made: a retry clears failed_at, its "FAILED -> PUBLISHED" keeps the
// failure on the timeline), and its completion.
func timeline(row outbox.Row, handlers []Handler, dlq []DLQRecord, audit []AuditEntry) []Moment {
	ms := []Moment{{At: row.CreatedAt, What: MomentCommitted}}
	add := func(at *time.Time, what, detail string) {
		if at != nil {
			ms = append(ms, Moment{At: *at, What: what, Detail: detail})
		}
	}
	add(row.PublishedAt, MomentPublished, "")
	for _, h := range handlers {
		add(h.ProcessedAt, MomentHandled, "by "+h.Group)
	}
	for _, r := range dlq {
		at := r.Timestamp
		if r.DeadLetteredAt != nil {
			at = *r.DeadLetteredAt
		}
		detail := "by " + r.Handler
		if r.Reason != "" {
			detail += ": " + r.Reason
		}
		add(&at, MomentDeadLettered, detail)
		add(r.RedrivenAt, MomentRedriven, fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset))
	}
	add(row.FailedAt, MomentFailed, row.LastError)
	for _, e := range audit {
		at := e.At
		detail := e.Actor + ": " + e.Reason
		switch {
		case e.Detail != "": // FAILED -> PUBLISHED, already PARKED, ...
			detail += " (" + e.Detail + ")"
		case !e.Changed:
			detail += " (no change)"
		}
		add(&at, e.Action, detail)
	}
	add(row.CompletedAt, MomentComplete, "")
	for i := range ms {
		ms[i].At = ms[i].At.UTC()
	}
	slices.SortStableFunc(ms, func(a, b Moment) int { return a.At.Compare(b.At) })
	return ms
}
