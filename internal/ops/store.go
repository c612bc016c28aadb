package ops

// The operator's own tables: operator_audit and dlq_redrives
// (migrations/00011_operator_console.sql).

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// execer is what the audit's insert needs of *sql.DB or *sql.Tx.
type execer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// audit writes an audit row and returns its id.
func (s *Service) audit(ctx context.Context, q execer, actor, action, target, reason string, changed bool, detail string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `
		INSERT INTO operator_audit (actor, action, target, reason, changed, detail)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, '')) RETURNING id`,
		actor, action, target, reason, changed, detail).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("write the audit row of %s %s: %w", action, target, err)
	}
	return id, nil
}

// Audit returns audit rows, newest first.
func (s *Service) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	n, err := limit(q.Limit, 100)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, at, actor, action, target, reason, changed, COALESCE(detail, '')
		  FROM operator_audit
		 WHERE $1 = '' OR target = $1
		 ORDER BY at DESC, id DESC
		 LIMIT $2`, q.Target, n)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Reason, &e.Changed, &e.Detail); err != nil {
			return nil, fmt.Errorf("read the audit log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	return out, nil
}

// recordKey names one record of a DLQ partition.
type recordKey struct {
	topic     string
	partition int32
	offset    int64
}

// redrivenAt returns when each of keys was re-driven, for those that were.
func redrivenAt(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, keys []recordKey) (map[recordKey]time.Time, error) {
	out := map[recordKey]time.Time{}
	if len(keys) == 0 {
		return out, nil
	}
	topics := make([]string, len(keys))
	parts := make([]int64, len(keys))
	offsets := make([]int64, len(keys))
	for i, k := range keys {
		topics[i], parts[i], offsets[i] = k.topic, int64(k.partition), k.offset
	}
	rows, err := q.QueryContext(ctx, `
		SELECT r.topic, r.partition, r."offset", r.redriven_at
		  FROM dlq_redrives r
		  JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS k(topic, partition, "offset")
		    ON r.topic = k.topic AND r.partition = k.partition AND r."offset" = k."offset"`,
		pq.Array(topics), pq.Array(parts), pq.Array(offsets))
	if err != nil {
		return nil, fmt.Errorf("read re-driven records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k  recordKey
			at time.Time
		)
		if err := rows.Scan(&k.topic, &k.partition, &k.offset, &at); err != nil {
			return nil, fmt.Errorf("read re-driven records: %w", err)
		}
		out[k] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read re-driven records: %w", err)
	}
	return out, nil
}

// recordRedrives records keys as re-driven by the audit row auditID; keys
// recorded before are left as they are.
func recordRedrives(ctx context.Context, tx *sql.Tx, keys []recordKey, auditID int64) error {
	if len(keys) == 0 {
		return nil
	}
	topics := make([]string, len(keys))
	parts := make([]int64, len(keys))
	offsets := make([]int64, len(keys))
	for i, k := range keys {
		topics[i], parts[i], offsets[i] = k.topic, int64(k.partition), k.offset
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO dlq_redrives (topic, partition, "offset", audit_id)
		SELECT topic, partition, "offset", $4 FROM unnest($1::text[], $2::int[], $3::bigint[]) AS k(topic, partition, "offset")
		ON CONFLICT DO NOTHING`, pq.Array(topics), pq.Array(parts), pq.Array(offsets), auditID)
	if err != nil {
		return fmt.Errorf("record %d re-driven records: %w", len(keys), err)
	}
	return nil
}

// dlqSpan is a DLQ partition's records [from, end) whose re-drives are
// counted.
type dlqSpan struct {
	topic     string
	partition int32
	from, end int64
}

// spanArgs are the parameters $1 to $4 of a query that unnests spans as
// k(topic, partition, f, e).
func spanArgs(spans []dlqSpan) []any {
	topics := make([]string, len(spans))
	parts, froms, ends := make([]int64, len(spans)), make([]int64, len(spans)), make([]int64, len(spans))
	for i, sp := range spans {
		topics[i], parts[i], froms[i], ends[i] = sp.topic, int64(sp.partition), sp.from, sp.end
	}
	return []any{pq.Array(topics), pq.Array(parts), pq.Array(froms), pq.Array(ends)}
}

// redrivenIn counts the re-driven records within each span.
func (s *Service) redrivenIn(ctx context.Context, spans []dlqSpan) (map[dlqSpan]int64, error) {
	out := map[dlqSpan]int64{}
	if len(spans) == 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT k.topic, k.partition, k.f, k.e,
		       (SELECT count(*) FROM dlq_redrives r
		         WHERE r.topic = k.topic AND r.partition = k.partition AND r."offset" >= k.f AND r."offset" < k.e)
		  FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) AS k(topic, partition, f, e)`,
		spanArgs(spans)...)
	if err != nil {
		return nil, fmt.Errorf("count re-driven records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sp dlqSpan
			n  int64
		)
		if err := rows.Scan(&sp.topic, &sp.partition, &sp.from, &sp.end, &n); err != nil {
			return nil, fmt.Errorf("count re-driven records: %w", err)
		}
		out[sp] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count re-driven records: %w", err)
	}
	return out, nil
}

// redrivenWithin returns the re-driven records within spans.
func (s *Service) redrivenWithin(ctx context.Context, spans []dlqSpan) (map[recordKey]bool, error) {
	out := map[recordKey]bool{}
	if len(spans) == 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.topic, r.partition, r."offset"
		  FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) AS k(topic, partition, f, e)
		  JOIN dlq_redrives r ON r.topic = k.topic AND r.partition = k.partition AND r."offset" >= k.f AND r."offset" < k.e`,
		spanArgs(spans)...)
	if err != nil {
		return nil, fmt.Errorf("read re-driven records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k recordKey
		if err := rows.Scan(&k.topic, &k.partition, &k.offset); err != nil {
			return nil, fmt.Errorf("read re-driven records: %w", err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read re-driven records: %w", err)
	}
	return out, nil
}
