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

// Slot is a logical replication slot of the database.
type Slot struct {
	Name   string
	Active bool // a client is streaming from it
	// LagBytes is the WAL between the server's current position and the
	// slot's confirmed flush position; -1 when the slot was never
	// confirmed or was invalidated.
	LagBytes int64
}

// Slots reads the logical replication slots of db's database (slotsQuery).
func Slots(ctx context.Context, db *sql.DB) ([]Slot, error) {
	rows, err := db.QueryContext(ctx, slotsQuery)
	if err != nil {
		return nil, fmt.Errorf("query pg_replication_slots: %w", err)
	}
	defer rows.Close()
	out := []Slot{}
	for rows.Next() {
		var (
			s   Slot
			lag sql.NullFloat64
		)
		if err := rows.Scan(&s.Name, &s.Active, &lag); err != nil {
			return nil, fmt.Errorf("scan pg_replication_slots: %w", err)
		}
		s.LagBytes = -1
		if lag.Valid {
			s.LagBytes = int64(max(lag.Float64, 0))
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pg_replication_slots: %w", err)
	}
	return out, nil
}

// collectSlots reports each logical slot's lag in bytes and whether a
// client is streaming from it. Nothing is sent unless the query succeeds.
func (c *Collector) collectSlots(ctx context.Context, ch chan<- prometheus.Metric) error {
	slots, err := Slots(ctx, c.opts.DB)
	if err != nil {
		return err
	}
	for _, s := range slots {
		active := 0.0
		if s.Active {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(c.slotActive, prometheus.GaugeValue, active, s.Name)
		if s.LagBytes >= 0 {
			ch <- prometheus.MustNewConstMetric(c.slotLag, prometheus.GaugeValue, float64(s.LagBytes), s.Name)
		}
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
