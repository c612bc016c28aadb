package lag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
// when it has no rows; outbox.CountByStatus, COMPLETE counted exactly) and
// the age of the oldest row still waiting for the pipeline or the
// reconciler (INIT, PUBLISHED or FAILED; 0 when there is none): rows an
// operator parked or discarded wait for nobody. Nothing is sent unless the
// query succeeds.
func (c *Collector) collectOutbox(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts, ages, err := outbox.CountByStatus(ctx, c.opts.DB, true)
	if err != nil {
		return err
	}
	var oldest time.Duration
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.outboxRows, prometheus.GaugeValue, float64(n), string(status))
		if waiting(status) {
			oldest = max(oldest, ages[status])
		}
	}
	ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, oldest.Seconds())
	return nil
}
