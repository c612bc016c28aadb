package lag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/outbox"
)

// waiting tells whether a row of status s waits for the pipeline or the
// reconciler, and so counts in the oldest unfinished age.
func waiting(s outbox.Status) bool {
	return s == outbox.StatusInit || s == outbox.StatusPublished || s == outbox.StatusFailed
}

// slotsQuery reads the logical slots of the current database and the WAL
// each holds back. On a standby (logical slots there exist since Postgres
// 16) the current position is the last replayed one. confirmed_flush_lsn is
// NULL for a slot that has never been confirmed or was invalidated: then
// the lag is NULL and not reported.
const slotsQuery = `
SELECT slot_name,
       active,
       pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
           confirmed_flush_lsn)::float8
  FROM pg_replication_slots
 WHERE slot_type = 'logical' AND database = current_database()
 ORDER BY slot_name`

// outboxQuery counts the outbox rows by status, with the age of each
// status's oldest unfinished row, in one snapshot, without reading the
// table: the unfinished rows (completed_at NULL: few, unless the pipeline
// lags) through outbox_unfinished_idx, and the finished ones (completed_at
// set, which MarkHandled does with COMPLETE) counted in
// outbox_completed_at_idx alone (an index-only scan). A row COMPLETE
// without completed_at (written by hand) counts in the first part, by its
// status. The age is measured on the database's clock, so the exporter's
// clock does not matter.
const outboxQuery = `
SELECT status, count(*), GREATEST(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
  FROM outbox
 WHERE completed_at IS NULL
 GROUP BY status
UNION ALL
SELECT 'COMPLETE', count(*), 0
  FROM outbox
 WHERE completed_at IS NOT NULL`

// collectPostgres reports the replication slots and the outbox. Each part
// is sent when its query succeeds; it returns what failed.
func (c *Collector) collectPostgres(ctx context.Context, ch chan<- prometheus.Metric) error {
	var errs []error
	if err := c.collectSlots(ctx, ch); err != nil {
		errs = append(errs, fmt.Errorf("replication slots: %w", err))
	}
	if err := c.collectOutbox(ctx, ch); err != nil {
		errs = append(errs, fmt.Errorf("outbox: %w", err))
	}
	return errors.Join(errs...)
}

// collectSlots reports each logical slot's lag in bytes and whether a
// client is streaming from it. Nothing is sent unless the query succeeds.
func (c *Collector) collectSlots(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.opts.DB.QueryContext(ctx, slotsQuery)
	if err != nil {
		return fmt.Errorf("query pg_replication_slots: %w", err)
	}
	defer rows.Close()
	var metrics []prometheus.Metric
	for rows.Next() {
		var (
			name   string
			active bool
			lag    sql.NullFloat64
		)
		if err := rows.Scan(&name, &active, &lag); err != nil {
			return fmt.Errorf("scan pg_replication_slots: %w", err)
		}
		activeValue := 0.0
		if active {
			activeValue = 1
		}
		metrics = append(metrics, prometheus.MustNewConstMetric(c.slotActive, prometheus.GaugeValue, activeValue, name))
		if lag.Valid {
			metrics = append(metrics, prometheus.MustNewConstMetric(c.slotLag, prometheus.GaugeValue, max(lag.Float64, 0), name))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pg_replication_slots: %w", err)
	}
	for _, m := range metrics {
		ch <- m
	}
	return nil
}

// collectOutbox reports the outbox rows by status (every known status, 0
// when it has no rows) and the age of the oldest row still waiting for the
// pipeline or the reconciler (INIT, PUBLISHED or FAILED; 0 when there is
// none): rows an operator parked or discarded wait for nobody. Nothing is sent unless the query succeeds.
func (c *Collector) collectOutbox(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.opts.DB.QueryContext(ctx, outboxQuery)
	if err != nil {
		return fmt.Errorf("count rows by status: %w", err)
	}
	defer rows.Close()
	// Every status the schema allows is reported, 0 when no row has it.
	counts := make(map[string]int64, len(outbox.Statuses()))
	for _, s := range outbox.Statuses() {
		counts[string(s)] = 0
	}
	oldest := 0.0
	for rows.Next() {
		var (
			status string
			n      int64
			age    float64
		)
		if err := rows.Scan(&status, &n, &age); err != nil {
			return fmt.Errorf("scan rows by status: %w", err)
		}
		counts[status] += n
		if waiting(outbox.Status(status)) {
			oldest = max(oldest, age)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rows by status: %w", err)
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.outboxRows, prometheus.GaugeValue, float64(n), status)
	}
	ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, oldest)
	return nil
}
