package outbox

// The reconciler's queries: rows stuck in a status, republish attempts,
// giving up, and retention of COMPLETE rows. Durations are measured on the
// database's clock (now()), never the caller's, so every process agrees.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// StaleQuery selects rows that have sat in one status for too long.
type StaleQuery struct {
	Status      Status        // INIT or PUBLISHED
	IdleFor     time.Duration // updated_at older than now() - IdleFor
	MaxAttempts int           // only rows with attempts < MaxAttempts; 0 means no bound
	Limit       int           // at most this many rows, oldest created_at first
	Columns     []string      // the columns to read as text (e.g. what a router needs)
}

// StaleRow is a row LockStale selected and locked.
type StaleRow struct {
	ID       uuid.UUID
	Attempts int
	// InStatus is how long the row has been in its status: since created_at
	// for INIT, since published_at for PUBLISHED.
	InStatus time.Duration
	// Columns are the text values of StaleQuery.Columns (column::text, as
	// pgoutput sends them); a NULL is absent.
	Columns map[string]string
}

// LockStale selects the rows of q.Status whose updated_at is older than
// q.IdleFor, oldest first, and locks them FOR UPDATE SKIP LOCKED within tx:
// rows another transaction is changing right now (a consumer completing
// them) are skipped, and the selected ones cannot change until tx ends. tx
// should be a *sql.Tx: outside a transaction the locks end with the query.
func LockStale(ctx context.Context, tx Querier, q StaleQuery) ([]StaleRow, error) {
	if len(q.Columns) == 0 || q.Limit <= 0 {
		return nil, fmt.Errorf("select stale %s rows: no columns or no limit", q.Status)
	}
	if q.Status != StatusInit && q.Status != StatusPublished {
		return nil, fmt.Errorf("select stale %s rows: only INIT and PUBLISHED rows go stale", q.Status)
	}
	maxAttempts := q.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = math.MaxInt32
	}
	// completed_at IS NULL (true of every row not COMPLETE) lets the
	// partial index on unfinished rows (outbox_unfinished_idx, by
	// created_at) serve the scan and the order.
	query := `SELECT id, attempts,
			EXTRACT(EPOCH FROM now() - CASE WHEN status = 'PUBLISHED' THEN COALESCE(published_at, created_at) ELSE created_at END),
			` + textColumns(q.Columns) + `
		FROM outbox
		WHERE completed_at IS NULL AND status = '` + string(q.Status) + `'
			AND updated_at < now() - $1::bigint * interval '1 microsecond' AND attempts < $2
		ORDER BY created_at
		LIMIT $3
		FOR UPDATE SKIP LOCKED`
	rows, err := tx.QueryContext(ctx, query, q.IdleFor.Microseconds(), maxAttempts, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("select stale %s rows: %w", q.Status, err)
	}
	defer rows.Close()
	var out []StaleRow
	for rows.Next() {
		var (
			r      StaleRow
			secs   float64
			values = make([]sql.NullString, len(q.Columns))
			dest   = make([]any, 0, 3+len(values))
		)
		dest = append(dest, &r.ID, &r.Attempts, &secs)
		for i := range values {
			dest = append(dest, &values[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read stale %s rows: %w", q.Status, err)
		}
		r.InStatus = time.Duration(secs * float64(time.Second))
		r.Columns = columnValues(q.Columns, values)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stale %s rows: %w", q.Status, err)
	}
	return out, nil
}

// textColumns is the select list of columns, each as text (column::text,
// as pgoutput sends it).
func textColumns(columns []string) string {
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = pq.QuoteIdentifier(c) + "::text"
	}
	return strings.Join(cols, ", ")
}

// columnValues are the values read by textColumns(columns) by column; a
// NULL is absent.
func columnValues(columns []string, values []sql.NullString) map[string]string {
	m := make(map[string]string, len(values))
	for i, v := range values {
		if v.Valid {
			m[columns[i]] = v.String
		}
	}
	return m
}

// ColumnsOf reads columns of row id as text, as LockStale does (what a
// router needs to build the row's record): ErrNotFound when the row is not
// there.
func ColumnsOf(ctx context.Context, q Execer, id uuid.UUID, columns []string) (map[string]string, error) {
	if len(columns) == 0 {
		return nil, fmt.Errorf("read columns of outbox row %s: no columns", id)
	}
	values := make([]sql.NullString, len(columns))
	dest := make([]any, len(values))
	for i := range values {
		dest[i] = &values[i]
	}
	err := q.QueryRowContext(ctx, `SELECT `+textColumns(columns)+` FROM outbox WHERE id = $1`, id).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read columns of outbox row %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read columns of outbox row %s: %w", id, err)
	}
	return columnValues(columns, values), nil
}

// RecordAttempts counts one delivery attempt on each row of notes: attempts
// + 1, updated_at = now() and last_error = the row's note. Rows no longer
// INIT or PUBLISHED (COMPLETE, FAILED, or parked or discarded by an
// operator) are left alone. It returns how many rows it
// changed.
func RecordAttempts(ctx context.Context, q Execer, notes map[uuid.UUID]string) (int64, error) {
	if len(notes) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(notes))
	msgs := make([]string, 0, len(notes))
	for id, msg := range notes {
		ids = append(ids, id.String())
		msgs = append(msgs, msg)
	}
	res, err := q.ExecContext(ctx, `
		UPDATE outbox o SET
			attempts   = o.attempts + 1,
			updated_at = now(),
			last_error = v.note
		FROM unnest($1::uuid[], $2::text[]) AS v(id, note)
		WHERE o.id = v.id AND o.status IN ('INIT', 'PUBLISHED')`, pq.Array(ids), pq.Array(msgs))
	if err != nil {
		return 0, fmt.Errorf("record attempts on %d outbox rows: %w", len(notes), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("record attempts on %d outbox rows: %w", len(notes), err)
	}
	return n, nil
}

// FailedRow is a row FailExhausted gave up on.
type FailedRow struct {
	ID       uuid.UUID
	Type     string
	Was      Status // its status before FAILED
	Attempts int
}

// FailExhausted marks FAILED the rows not yet COMPLETE or FAILED that have
// had maxAttempts attempts or more: failed_at = now(), and the reason is
// appended to last_error, which is kept. Rows locked by another transaction
// are left for the next call.
func FailExhausted(ctx context.Context, q Querier, maxAttempts int, reason string) ([]FailedRow, error) {
	rows, err := q.QueryContext(ctx, `
		WITH due AS (
			SELECT id, status FROM outbox
			WHERE completed_at IS NULL AND status IN ('INIT', 'PUBLISHED') AND attempts >= $1
			FOR UPDATE SKIP LOCKED
		)
		UPDATE outbox o SET
			status     = 'FAILED',
			failed_at  = now(),
			updated_at = now(),
			last_error = concat_ws('; ', o.last_error, $2::text)
		FROM due WHERE o.id = due.id
		RETURNING o.id, o.type, due.status, o.attempts`, maxAttempts, reason)
	if err != nil {
		return nil, fmt.Errorf("mark exhausted outbox rows failed: %w", err)
	}
	defer rows.Close()
	var out []FailedRow
	for rows.Next() {
		var f FailedRow
		if err := rows.Scan(&f.ID, &f.Type, &f.Was, &f.Attempts); err != nil {
			return nil, fmt.Errorf("mark exhausted outbox rows failed: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mark exhausted outbox rows failed: %w", err)
	}
	return out, nil
}

// unfinished is what a query of rows in status s adds to its WHERE so
// that the partial index on unfinished rows (outbox_unfinished_idx) serves
// it: completed_at IS NULL, true of every row but a COMPLETE one.
func unfinished(s Status) string {
	if s == StatusComplete {
		return ""
	}
	return "completed_at IS NULL AND "
}

// CountStatus returns how many rows are in status s.
func CountStatus(ctx context.Context, q Execer, s Status) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE `+unfinished(s)+`status = $1`, string(s)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s outbox rows: %w", s, err)
	}
	return n, nil
}

// Stuck returns how many rows of status s were created more than olderThan
// ago, and how old the oldest of them is.
func Stuck(ctx context.Context, q Execer, s Status, olderThan time.Duration) (n int64, oldest time.Duration, err error) {
	var secs sql.NullFloat64
	err = q.QueryRowContext(ctx, `
		SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))
		FROM outbox
		WHERE `+unfinished(s)+`status = $1 AND created_at < now() - $2::bigint * interval '1 microsecond'`,
		string(s), olderThan.Microseconds()).Scan(&n, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("count stuck %s outbox rows: %w", s, err)
	}
	return n, time.Duration(secs.Float64 * float64(time.Second)), nil
}

// DeleteComplete deletes at most limit COMPLETE rows whose completed_at is
// older than olderThan, and returns how many it deleted. Callers repeat it
// until it deletes fewer than limit, so no statement holds many locks or
// writes much WAL at once.
func DeleteComplete(ctx context.Context, q Execer, olderThan time.Duration, limit int) (int64, error) {
	res, err := q.ExecContext(ctx, `
		DELETE FROM outbox WHERE id IN (
			SELECT id FROM outbox
			WHERE status = 'COMPLETE' AND completed_at < now() - $1::bigint * interval '1 microsecond'
			LIMIT $2
			FOR UPDATE SKIP LOCKED)`, olderThan.Microseconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("delete complete outbox rows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete complete outbox rows: %w", err)
	}
	return n, nil
}
