package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Execer is what the outbox's updates need of *sql.DB or *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ErrNotFound: the event's outbox row is not there, or not visible yet. A
// CDC engine can publish a transaction as soon as its commit is in the WAL,
// a moment before the commit is visible to other sessions, so a consumer
// fast enough can look for the row before it can see it.
var ErrNotFound = errors.New("outbox row not found")

// VisibilityWindow is how long after an event's commit a consumer keeps
// retrying an event whose row it cannot see (ErrNotFound): far longer than
// the commit's visibility lag, short enough that a record with no row at
// all soon goes to the DLQ.
const VisibilityWindow = time.Minute

// Completion is what MarkHandled did to an outbox row.
type Completion struct {
	Completed bool          // this call made it COMPLETE
	Latency   time.Duration // commit to COMPLETE, when Completed
}

// Queryer is what the outbox's batch reads and updates need of *sql.DB or
// *sql.Tx.
type Queryer interface {
	Execer
	Querier
}

// MarkHandled records that a consumer group has handled an event, in the
// transaction of the group's effects, and makes the row COMPLETE when every
// group that handles its type (event.Handlers) has. It returns ErrNotFound
// when the row is not visible: the caller must roll back its effects (and
// its inbox claim) and try again later, or the event would count as handled
// while its row never completes. A handled event was seen on Kafka, so a
// row still INIT also becomes PUBLISHED (and the tracker's own mark, which
// only touches rows without published_at, is spared). It is MarkHandledAll
// of one row.
func MarkHandled(ctx context.Context, q Queryer, eventID uuid.UUID, eventType, group string) (Completion, error) {
	cs, err := MarkHandledAll(ctx, q, []event.Message{{ID: eventID, Type: eventType}}, group)
	if err != nil {
		return Completion{}, err
	}
	return cs[0], nil
}

// MarkHandledAll is MarkHandled of several events in one statement: rows
// names each event by its ID and Type (its row's), and the result holds
// what the call did to each, in the order of rows. It locks the rows in id
// order, so concurrent calls cannot deadlock. If any row is not visible it
// returns ErrNotFound, and the caller must roll back as for MarkHandled.
// This is the one place an outbox row becomes COMPLETE.
func MarkHandledAll(ctx context.Context, q Queryer, rows []event.Message, group string) ([]Completion, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	required := make([]string, len(rows)) // comma-separated: group names have no commas
	at := make(map[uuid.UUID]int, len(rows))
	for i, r := range rows {
		ids[i], required[i] = r.ID.String(), strings.Join(event.Handlers(r.Type), ",")
		at[r.ID] = i
	}
	what := fmt.Sprintf("mark %d events handled by %s", len(at), group)
	if len(rows) == 1 {
		what = fmt.Sprintf("mark event %s handled by %s", rows[0].ID, group)
	}
	res, err := q.QueryContext(ctx, `
		WITH r AS (SELECT DISTINCT ON (id) id, string_to_array(req, ',') AS required
		           FROM unnest($1::uuid[], $2::text[]) AS r(id, req)),
		     old AS (SELECT o.id, o.status FROM outbox o JOIN r ON r.id = o.id ORDER BY o.id FOR UPDATE OF o)
		UPDATE outbox o SET
			handled_by   = CASE WHEN $3 = ANY(o.handled_by) THEN o.handled_by ELSE array_append(o.handled_by, $3) END,
			status       = CASE WHEN r.required <@ array_append(o.handled_by, $3) THEN 'COMPLETE'
			                    WHEN o.status = 'INIT' THEN 'PUBLISHED' ELSE o.status END,
			completed_at = CASE WHEN r.required <@ array_append(o.handled_by, $3) THEN COALESCE(o.completed_at, now()) ELSE o.completed_at END,
			published_at = COALESCE(o.published_at, now()),
			updated_at   = now()
		FROM old JOIN r ON r.id = old.id WHERE o.id = old.id
		RETURNING o.id, o.status, o.created_at, o.completed_at, old.status = 'COMPLETE'`,
		pq.Array(ids), pq.Array(required), group)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer res.Close()
	out := make([]Completion, len(rows))
	seen := 0
	for res.Next() {
		var (
			id          uuid.UUID
			status      string
			createdAt   time.Time
			completedAt sql.NullTime
			wasComplete bool
		)
		if err := res.Scan(&id, &status, &createdAt, &completedAt, &wasComplete); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		c := Completion{Completed: status == string(StatusComplete) && !wasComplete}
		if c.Completed && completedAt.Valid {
			c.Latency = completedAt.Time.Sub(createdAt)
		}
		out[at[id]] = c
		seen++
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if seen < len(at) {
		return nil, fmt.Errorf("%s: %d of them: %w", what, len(at)-seen, ErrNotFound)
	}
	return out, nil
}

// MarkPublished records that events were seen on Kafka: rows still INIT
// become PUBLISHED. Rows already further along keep their status.
func MarkPublished(ctx context.Context, q Execer, ids []uuid.UUID) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	// The rows are locked in id order, as MarkHandledAll locks them, so a
	// mark and a handler's transaction cannot deadlock.
	res, err := q.ExecContext(ctx, `
		WITH l AS (SELECT id FROM outbox WHERE id = ANY($1::uuid[]) AND published_at IS NULL ORDER BY id FOR UPDATE)
		UPDATE outbox o SET
			status       = CASE WHEN o.status = 'INIT' THEN 'PUBLISHED' ELSE o.status END,
			published_at = COALESCE(o.published_at, now()),
			updated_at   = now()
		FROM l WHERE o.id = l.id`, pq.Array(strs))
	if err != nil {
		return 0, fmt.Errorf("mark %d events published: %w", len(ids), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mark %d events published: %w", len(ids), err)
	}
	return n, nil
}

// Load reads the outbox row of an event, as the message it is: ErrNotFound
// when the row is not there or not visible yet. A consumer takes an event's
// type, routing and payload from its row, never from the Kafka record, which
// anyone able to write to the topic could have forged; call Load in the
// transaction that applies the event's effects.
func Load(ctx context.Context, q Execer, id uuid.UUID) (event.Message, error) {
	m := event.Message{ID: id}
	var payload []byte
	err := q.QueryRowContext(ctx,
		`SELECT aggregatetype, aggregateid, type, payload FROM outbox WHERE id = $1`, id).
		Scan(&m.AggregateType, &m.AggregateID, &m.Type, &payload)
	if errors.Is(err, sql.ErrNoRows) {
		return event.Message{}, fmt.Errorf("load event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return event.Message{}, fmt.Errorf("load event %s: %w", id, err)
	}
	m.Payload = payload
	return m, nil
}

// LoadAll reads the outbox rows of events, as Load does, in one query:
// ids with no visible row are absent from the result.
func LoadAll(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID]event.Message, error) {
	return readRows(ctx, q, ids, true)
}

// Heads reads the outbox rows of events, without their payloads, by id:
// ids with no visible row are absent from the result.
func Heads(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID]event.Message, error) {
	return readRows(ctx, q, ids, false)
}

// readRows reads the visible outbox rows of ids in one query, with their
// payloads or without.
func readRows(ctx context.Context, q Querier, ids []uuid.UUID, payloads bool) (map[uuid.UUID]event.Message, error) {
	out := make(map[uuid.UUID]event.Message, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	payload := "NULL"
	if payloads {
		payload = "payload"
	}
	rows, err := q.QueryContext(ctx,
		`SELECT id, aggregatetype, aggregateid, type, `+payload+` FROM outbox WHERE id = ANY($1::uuid[])`, pq.Array(strs))
	if err != nil {
		return nil, fmt.Errorf("read %d outbox rows: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var m event.Message
		var p []byte
		if err := rows.Scan(&m.ID, &m.AggregateType, &m.AggregateID, &m.Type, &p); err != nil {
			return nil, fmt.Errorf("read %d outbox rows: %w", len(ids), err)
		}
		m.Payload = p
		out[m.ID] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %d outbox rows: %w", len(ids), err)
	}
	return out, nil
}
