package outbox

// The operator's queries: rows found by filters, one row in full, the
// operator's status changes, counts by status and completion statistics.
// Durations are measured on the database's clock (now()).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// ErrConflict: the row's status does not allow the change (discard a
// COMPLETE row); nothing changed.
var ErrConflict = errors.New("not allowed in the row's status")

// Filter selects outbox rows; zero fields do not filter.
type Filter struct {
	OrderID       int64 // the order the payload names (payload ->> 'orderId')
	ID            uuid.UUID
	AggregateType string
	AggregateID   string
	Type          string
	Status        Status
	OlderThan     time.Duration // created more than this long ago
	NewerThan     time.Duration // created less than this long ago
	Limit         int           // at most this many rows, newest first; must be > 0
}

// Row is an outbox row as an operator sees it.
type Row struct {
	ID            uuid.UUID
	AggregateType string
	AggregateID   string
	Type          string
	OrderID       int64 // 0 when the payload names no order
	Status        Status
	Attempts      int
	CreatedAt     time.Time
	PublishedAt   *time.Time
	CompletedAt   *time.Time
	FailedAt      *time.Time
	LastError     string
	HandledBy     []string
	UpdatedAt     time.Time
	Payload       []byte // only from Get
}

// rowColumns are what scanRow reads, in its order.
const rowColumns = `id, aggregatetype, aggregateid, type, COALESCE(payload ->> 'orderId', ''), status, attempts,
	created_at, published_at, completed_at, failed_at, COALESCE(last_error, ''), handled_by, updated_at`

func scanRow(sc interface{ Scan(...any) error }, r *Row, extra ...any) error {
	var (
		orderID               string
		published, done, fail sql.NullTime
		handled               pq.StringArray
	)
	dest := append([]any{&r.ID, &r.AggregateType, &r.AggregateID, &r.Type, &orderID, &r.Status, &r.Attempts,
		&r.CreatedAt, &published, &done, &fail, &r.LastError, &handled, &r.UpdatedAt}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return err
	}
	r.OrderID, _ = strconv.ParseInt(orderID, 10, 64) // 0 unless the payload names an order by number
	r.PublishedAt, r.CompletedAt, r.FailedAt = timePtr(published), timePtr(done), timePtr(fail)
	r.HandledBy = []string(handled)
	if r.HandledBy == nil {
		r.HandledBy = []string{}
	}
	return nil
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}

// Search returns the rows f selects, newest first, without their payloads.
// A search by a status other than COMPLETE is served by the partial index of
// unfinished rows, one by order by outbox_order_idx.
func Search(ctx context.Context, q Querier, f Filter) ([]Row, error) {
	if f.Limit <= 0 {
		return nil, errors.New("search outbox rows: no limit")
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if f.OrderID != 0 {
		add(`payload ->> 'orderId' = $?::text`, f.OrderID)
	}
	if f.ID != uuid.Nil {
		add(`id = $?`, f.ID)
	}
	if f.AggregateType != "" {
		add(`aggregatetype = $?`, f.AggregateType)
	}
	if f.AggregateID != "" {
		add(`aggregateid = $?`, f.AggregateID)
	}
	if f.Type != "" {
		add(`type = $?`, f.Type)
	}
	if f.Status != "" {
		if f.Status != StatusComplete {
			where = append(where, "completed_at IS NULL")
		}
		add(`status = $?`, string(f.Status))
	}
	if f.OlderThan > 0 {
		add(`created_at < now() - $?::bigint * interval '1 microsecond'`, f.OlderThan.Microseconds())
	}
	if f.NewerThan > 0 {
		add(`created_at >= now() - $?::bigint * interval '1 microsecond'`, f.NewerThan.Microseconds())
	}
	query := `SELECT ` + rowColumns + ` FROM outbox`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	query += ` ORDER BY created_at DESC, id LIMIT $` + strconv.Itoa(len(args))
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search outbox rows: %w", err)
	}
	defer rows.Close()
	out := []Row{}
	for rows.Next() {
		var r Row
		if err := scanRow(rows, &r); err != nil {
			return nil, fmt.Errorf("read outbox rows: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox rows: %w", err)
	}
	return out, nil
}

// Get reads one row with its payload: ErrNotFound when it is not there.
func Get(ctx context.Context, q Execer, id uuid.UUID) (Row, error) {
	var r Row
	err := scanRow(q.QueryRowContext(ctx, `SELECT `+rowColumns+`, payload FROM outbox WHERE id = $1`, id), &r, &r.Payload)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, fmt.Errorf("read outbox row %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Row{}, fmt.Errorf("read outbox row %s: %w", id, err)
	}
	return r, nil
}

// HandledAt returns when each consumer group recorded the event as handled
// (its processed_events rows), by group.
func HandledAt(ctx context.Context, q Querier, id uuid.UUID) (map[string]time.Time, error) {
	rows, err := q.QueryContext(ctx, `SELECT consumer_group, processed_at FROM processed_events WHERE event_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("read the groups that handled %s: %w", id, err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			g  string
			at time.Time
		)
		if err := rows.Scan(&g, &at); err != nil {
			return nil, fmt.Errorf("read the groups that handled %s: %w", id, err)
		}
		out[g] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the groups that handled %s: %w", id, err)
	}
	return out, nil
}

// Transition is what an operator's status change did to a row.
type Transition struct {
	Was, Now Status
	Changed  bool
}

// transition is one of the operator's status changes: rows in from move to
// the status to (an SQL expression over the locked row old), rows in
// conflict are refused with ErrConflict, any other row is left as it is.
type transition struct {
	name     string
	from     []Status
	conflict []Status
	to       string
	set      string // more assignments of the UPDATE
}

var (
	retry = transition{
		name: "retry", from: []Status{StatusFailed, StatusParked}, conflict: []Status{StatusDiscarded},
		to:  `CASE WHEN old.published_at IS NOT NULL THEN 'PUBLISHED' ELSE 'INIT' END`,
		set: `attempts = 0, failed_at = NULL,`,
	}
	park = transition{
		name: "park", from: []Status{StatusInit, StatusPublished, StatusFailed},
		conflict: []Status{StatusComplete, StatusDiscarded}, to: `'PARKED'`,
	}
	discard = transition{
		name: "discard", from: []Status{StatusInit, StatusPublished, StatusFailed, StatusParked},
		conflict: []Status{StatusComplete}, to: `'DISCARDED'`,
	}
)

// Retry puts a FAILED or PARKED row back on the normal path: PUBLISHED if it
// was ever seen on Kafka, else INIT, with attempts 0 and failed_at cleared
// (last_error is kept). INIT, PUBLISHED and COMPLETE rows are left as they
// are; a DISCARDED row is ErrConflict.
func Retry(ctx context.Context, q Execer, id uuid.UUID) (Transition, error) {
	return retry.apply(ctx, q, id)
}

// Park sets an INIT, PUBLISHED or FAILED row aside (PARKED): the reconciler
// neither republishes nor fails it. A PARKED row is left as it is; a
// COMPLETE or DISCARDED one is ErrConflict.
func Park(ctx context.Context, q Execer, id uuid.UUID) (Transition, error) {
	return park.apply(ctx, q, id)
}

// Discard gives a row up for good (DISCARDED), whatever its status but
// COMPLETE (ErrConflict). A DISCARDED row is left as it is.
func Discard(ctx context.Context, q Execer, id uuid.UUID) (Transition, error) {
	return discard.apply(ctx, q, id)
}

// apply runs the transition on row id in one statement that locks the row
// and returns its status before and after.
func (t transition) apply(ctx context.Context, q Execer, id uuid.UUID) (Transition, error) {
	from := make([]string, len(t.from))
	for i, s := range t.from {
		from[i] = string(s)
	}
	var (
		was string
		now sql.NullString
	)
	err := q.QueryRowContext(ctx, `
		WITH old AS (SELECT id, status, published_at FROM outbox WHERE id = $1 FOR UPDATE),
		     upd AS (UPDATE outbox o SET status = `+t.to+`, `+t.set+` updated_at = now()
		             FROM old WHERE o.id = old.id AND old.status = ANY($2::text[])
		             RETURNING o.status)
		SELECT old.status, (SELECT status FROM upd) FROM old`, id, pq.Array(from)).Scan(&was, &now)
	if errors.Is(err, sql.ErrNoRows) {
		return Transition{}, fmt.Errorf("%s outbox row %s: %w", t.name, id, ErrNotFound)
	}
	if err != nil {
		return Transition{}, fmt.Errorf("%s outbox row %s: %w", t.name, id, err)
	}
	tr := Transition{Was: Status(was), Now: Status(was)}
	if now.Valid {
		tr.Now, tr.Changed = Status(now.String), true
		return tr, nil
	}
	if slices.Contains(t.conflict, tr.Was) {
		return tr, fmt.Errorf("%s outbox row %s (%s): %w", t.name, id, tr.Was, ErrConflict)
	}
	return tr, nil
}

// CountByStatus counts the rows by status in one snapshot, with the age of
// the oldest row of each status other than COMPLETE (0 for COMPLETE), every
// status present (0 when it has no rows). The unfinished rows (completed_at
// NULL) are counted through outbox_unfinished_idx. The finished ones are
// counted in outbox_completed_at_idx alone (an index-only scan) when exact;
// otherwise they are estimated from the planner's statistics
// (pg_class.reltuples less the unfinished rows), which reads no index at
// all, unless the estimate is below EstimateAbove (or the table was never
// analyzed): then they are counted, which costs little. A row COMPLETE without
// completed_at (written by hand) counts in the first part, by its status.
// EstimateAbove is the number of finished rows from which CountByStatus,
// when not exact, estimates them instead of counting.
const EstimateAbove = 10_000

func CountByStatus(ctx context.Context, q Querier, exact bool) (counts map[Status]int64, oldest map[Status]time.Duration, err error) {
	complete := `SELECT 'COMPLETE', count(*), 0 FROM outbox WHERE completed_at IS NOT NULL`
	if !exact {
		complete = `SELECT 'COMPLETE', CASE WHEN e.n < ` + fmt.Sprint(EstimateAbove) + `
			THEN (SELECT count(*) FROM outbox WHERE completed_at IS NOT NULL) ELSE e.n END, 0
			FROM (SELECT GREATEST((SELECT reltuples FROM pg_class WHERE oid = 'outbox'::regclass)::bigint
				- (SELECT count(*) FROM outbox WHERE completed_at IS NULL), 0) AS n) e`
	}
	rows, err := q.QueryContext(ctx, `
		SELECT status, count(*), GREATEST(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
		  FROM outbox
		 WHERE completed_at IS NULL
		 GROUP BY status
		UNION ALL `+complete)
	if err != nil {
		return nil, nil, fmt.Errorf("count outbox rows by status: %w", err)
	}
	defer rows.Close()
	counts = make(map[Status]int64, len(Statuses()))
	oldest = make(map[Status]time.Duration, len(Statuses()))
	for _, s := range Statuses() {
		counts[s], oldest[s] = 0, 0
	}
	for rows.Next() {
		var (
			s    Status
			n    int64
			secs float64
		)
		if err := rows.Scan(&s, &n, &secs); err != nil {
			return nil, nil, fmt.Errorf("count outbox rows by status: %w", err)
		}
		counts[s] += n
		if s != StatusComplete {
			oldest[s] = max(oldest[s], time.Duration(secs*float64(time.Second)))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("count outbox rows by status: %w", err)
	}
	return counts, oldest, nil
}

// Completions are the rows completed in a span of time: how many, and
// percentiles of their commit-to-COMPLETE latency (completed_at -
// created_at).
type Completions struct {
	At            time.Time // the span's start
	N             int64
	P50, P95, P99 time.Duration
}

// CompletionsSince returns the completions of the last window, through
// outbox_completed_at_idx.
func CompletionsSince(ctx context.Context, q Execer, window time.Duration) (Completions, error) {
	var (
		c             Completions
		p50, p95, p99 sql.NullFloat64
	)
	err := q.QueryRowContext(ctx, `
		SELECT now() - $1::bigint * interval '1 microsecond', count(*),
		       percentile_cont(0.5) WITHIN GROUP (ORDER BY lat),
		       percentile_cont(0.95) WITHIN GROUP (ORDER BY lat),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY lat)
		  FROM (SELECT EXTRACT(EPOCH FROM completed_at - created_at)::float8 AS lat FROM outbox
		         WHERE completed_at > now() - $1::bigint * interval '1 microsecond') c`,
		window.Microseconds()).Scan(&c.At, &c.N, &p50, &p95, &p99)
	if err != nil {
		return Completions{}, fmt.Errorf("read the completions of the last %v: %w", window, err)
	}
	c.P50, c.P95, c.P99 = seconds(p50), seconds(p95), seconds(p99)
	return c, nil
}

// CompletionSeries returns the completions of the last span in buckets of
// step (date_bin from the epoch), oldest first; buckets without
// completions are absent.
func CompletionSeries(ctx context.Context, q Querier, span, step time.Duration) ([]Completions, error) {
	if step <= 0 {
		return nil, errors.New("read completion series: step must be positive")
	}
	rows, err := q.QueryContext(ctx, `
		SELECT date_bin($2::bigint * interval '1 microsecond', completed_at, 'epoch') AS at, count(*),
		       percentile_cont(0.5) WITHIN GROUP (ORDER BY lat),
		       percentile_cont(0.95) WITHIN GROUP (ORDER BY lat),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY lat)
		  FROM (SELECT completed_at, EXTRACT(EPOCH FROM completed_at - created_at)::float8 AS lat FROM outbox
		         WHERE completed_at > now() - $1::bigint * interval '1 microsecond') c
		 GROUP BY at ORDER BY at`, span.Microseconds(), step.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("read the completions of the last %v by %v: %w", span, step, err)
	}
	defer rows.Close()
	var out []Completions
	for rows.Next() {
		var (
			c             Completions
			p50, p95, p99 sql.NullFloat64
		)
		if err := rows.Scan(&c.At, &c.N, &p50, &p95, &p99); err != nil {
			return nil, fmt.Errorf("read the completions of the last %v by %v: %w", span, step, err)
		}
		c.P50, c.P95, c.P99 = seconds(p50), seconds(p95), seconds(p99)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the completions of the last %v by %v: %w", span, step, err)
	}
	return out, nil
}

func seconds(v sql.NullFloat64) time.Duration {
	return time.Duration(v.Float64 * float64(time.Second))
}
