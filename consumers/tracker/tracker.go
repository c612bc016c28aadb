// Package tracker is the handler of the "outbox-tracker" consumer group: it
// reads every outbox topic and marks the rows it sees PUBLISHED, in batches.
package tracker

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Handler marks outbox rows PUBLISHED.
type Handler struct {
	db     *sql.DB
	logger *slog.Logger
}

// New returns the tracker.
func New(db *sql.DB, logger *slog.Logger) *Handler {
	logger = logging.OrDiscard(logger)
	return &Handler{db: db, logger: logger}
}

// Handle marks one record's row.
func (h *Handler) Handle(ctx context.Context, rec consume.Record) error {
	return h.HandleBatch(ctx, []consume.Record{rec})
}

// HandleBatch marks the rows of a partition's queued records in one update.
// Only a record that matches its row (consume.Record.Match) marks it: a
// record without a valid id, or whose row is not visible, is skipped. A
// record that does not match its row makes the batch fail with Match's
// permanent error, marking nothing: the group then handles the records one
// by one, and that one goes to the DLQ with the reason.
func (h *Handler) HandleBatch(ctx context.Context, recs []consume.Record) error {
	ids := make([]uuid.UUID, 0, len(recs))
	for _, r := range recs {
		if id, err := r.EventID(); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return consume.ErrSkipped
	}
	rows, err := outbox.Heads(ctx, h.db, ids)
	if err != nil {
		return err
	}
	matching := make([]uuid.UUID, 0, len(ids))
	for _, r := range recs {
		id, err := r.EventID()
		if err != nil {
			continue
		}
		row, ok := rows[id]
		if !ok {
			continue
		}
		if err := r.Match(row); err != nil {
			return err
		}
		matching = append(matching, id)
	}
	if len(matching) == 0 {
		return consume.ErrSkipped
	}
	_, err = outbox.MarkPublished(ctx, h.db, matching)
	return err
}
