// Package reconcile is the outbox reconciler: the safety net behind change
// data capture. Every Interval, one active instance (the holder of a
// Postgres advisory lock) looks for outbox rows that are stuck and heals or
// flags them:
//
//  1. INIT rows older than StuckAfter: the CDC connector is asked for its
//     status over the Kafka Connect REST API (the embedded engine's or
//     Debezium's) and restarted if it or its task FAILED.
//  2. INIT rows untouched for RepublishAfter: published to Kafka directly,
//     with exactly the records the connector would have produced.
//  3. PUBLISHED rows not COMPLETE for PublishedStuckAfter: published again
//     (consumers are idempotent by event id).
//  4. Rows that have had MaxAttempts attempts: marked FAILED, which the
//     outboxpay_reconciler_failed_rows gauge shows for alerting.
//  5. COMPLETE rows older than Retention: deleted in batches.
//  6. Idempotency keys older than IdempotencyKeyRetention: deleted in
//     batches, so a request with such a key is a new request.
//  7. ORDERED orders older than OrderExpiry: marked EXPIRED in batches
//     (shop.ExpireOrders); they never took stock, so nothing is released.
//
// Delivery stays at least once: a republished record may duplicate one the
// connector sends late, and consumers drop the repeat by its id.
package reconcile

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// DefaultLockID is the advisory lock key of the reconciler: "outboxrc" in
// ASCII.
const DefaultLockID int64 = 0x6f7574626f787263

// Config tunes the reconciler. Zero values take the defaults.
type Config struct {
	Interval            time.Duration // between cycles, and between tries of the lock; default 30s
	StuckAfter          time.Duration // INIT longer than this: check the connector, default 5m
	RepublishAfter      time.Duration // INIT untouched this long (since created_at / last attempt): publish directly, default 10m
	PublishedStuckAfter time.Duration // PUBLISHED but not COMPLETE, untouched this long: republish, default 5m
	MaxAttempts         int           // attempts after which a row is FAILED, default 5
	Retention           time.Duration // COMPLETE rows older than this are deleted, default 168h
	DeleteBatch         int           // rows per DELETE (outbox rows and idempotency keys), default 1000
	// IdempotencyKeyRetention: idempotency keys created longer ago are
	// deleted, default 24h.
	IdempotencyKeyRetention time.Duration
	// OrderExpiry: ORDERED orders older than this are marked EXPIRED,
	// default 30m.
	OrderExpiry    time.Duration
	ExpireBatch    int    // orders per expiry UPDATE, default 1000
	RepublishBatch int    // rows per republish query, default 500
	MaxRepublish   int    // rows republished per status and cycle at most, default 5000
	Connector      string // the CDC connector's name, default "outbox"
	LockID         int64  // advisory lock key, default DefaultLockID
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	setDuration := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDuration(&c.Interval, 30*time.Second)
	setDuration(&c.StuckAfter, 5*time.Minute)
	setDuration(&c.RepublishAfter, 10*time.Minute)
	setDuration(&c.PublishedStuckAfter, 5*time.Minute)
	setDuration(&c.Retention, 168*time.Hour)
	setDuration(&c.IdempotencyKeyRetention, 24*time.Hour)
	setDuration(&c.OrderExpiry, 30*time.Minute)
	setInt(&c.MaxAttempts, 5)
	setInt(&c.DeleteBatch, 1000)
	setInt(&c.ExpireBatch, 1000)
	setInt(&c.RepublishBatch, 500)
	setInt(&c.MaxRepublish, 5000)
	if c.Connector == "" {
		c.Connector = "outbox"
	}
	if c.LockID == 0 {
		c.LockID = DefaultLockID
	}
	return c
}

// Report is what one cycle found and did.
type Report struct {
	StuckInit            int64  // INIT rows older than StuckAfter
	ConnectorState       string // connector and task states, when the connector was checked
	RestartedConnector   bool   // the connector or its task was FAILED and has been restarted
	RepublishedInit      int    // INIT rows republished, acknowledged by Kafka
	RepublishedPublished int    // PUBLISHED rows republished, acknowledged by Kafka
	RepublishFailed      int    // rows whose republish failed (Kafka refused, or no record could be built); counted as attempts
	MarkedFailed         int    // rows marked FAILED
	Deleted              int64  // COMPLETE rows deleted by retention
	DeleteBatches        int    // DELETE statements that deleted them
	KeysDeleted          int64  // idempotency keys deleted by retention
	KeyDeleteBatches     int    // DELETE statements that deleted them
	Expired              int64  // ORDERED orders marked EXPIRED
	ExpireBatches        int    // UPDATE statements that marked them
	FailedRows           int64  // rows FAILED after the cycle
}

// Reconciler heals or flags stuck outbox rows. Create it with New.
type Reconciler struct {
	db      *sql.DB
	connect *rest.Client
	pub     Publisher
	router  connect.Router
	columns []string // the outbox columns the router reads
	cfg     Config
	m       *metrics
	logger  *slog.Logger
}

// New returns a reconciler of the outbox in db. connectClient reaches the
// Kafka Connect REST API running cfg.Connector (nil skips the connector
// check); pub publishes the records router builds from stuck rows. Its
// metrics are registered on reg (nil: not registered); logger nil discards.
func New(db *sql.DB, connectClient *rest.Client, pub Publisher, router connect.Router, cfg Config,
	reg prometheus.Registerer, logger *slog.Logger) *Reconciler {
	logger = logging.OrDiscard(logger)
	return &Reconciler{
		db:      db,
		connect: connectClient,
		pub:     pub,
		router:  router,
		columns: router.ReadColumns(),
		cfg:     cfg.withDefaults(),
		m:       newMetrics(reg),
		logger:  logger,
	}
}

// RunOnce runs one cycle. Callers must hold the reconciler lock (Run does),
// or two instances may republish the same rows. A step that fails is
// logged, counted in outboxpay_reconciler_errors_total and returned, joined
// with the others' errors; the following steps still run.
func (r *Reconciler) RunOnce(ctx context.Context) (Report, error) {
	start := time.Now()
	defer func() { r.m.cycle.Observe(time.Since(start).Seconds()) }()
	var (
		rep  Report
		errs []error
	)
	step := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		if err := f(); err != nil {
			errs = append(errs, err)
			if ctx.Err() == nil {
				r.m.errors.WithLabelValues(name).Inc()
				r.logger.Error("reconciler step failed", "step", name, "err", err)
			}
		}
	}
	step(stepConnector, func() error { return r.checkConnector(ctx, &rep) })
	step(stepRepublish, func() error {
		return r.republish(ctx, outbox.StatusInit, r.cfg.RepublishAfter, ActionRepublishInit, &rep.RepublishedInit, &rep)
	})
	step(stepRepublish, func() error {
		return r.republish(ctx, outbox.StatusPublished, r.cfg.PublishedStuckAfter, ActionRepublishPublished,
			&rep.RepublishedPublished, &rep)
	})
	step(stepFail, func() error { return r.failExhausted(ctx, &rep) })
	step(stepRetention, func() error { return r.deleteComplete(ctx, &rep) })
	step(stepKeyRetention, func() error { return r.deleteExpiredKeys(ctx, &rep) })
	step(stepExpiry, func() error { return r.expireOrders(ctx, &rep) })
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// checkConnector asks the connector's status when INIT rows are stuck, and
// restarts what FAILED (KIP-745: includeTasks, onlyFailed).
func (r *Reconciler) checkConnector(ctx context.Context, rep *Report) error {
	if r.connect == nil {
		return nil
	}
	n, oldest, err := outbox.Stuck(ctx, r.db, outbox.StatusInit, r.cfg.StuckAfter)
	if err != nil {
		return err
	}
	rep.StuckInit = n
	if n == 0 {
		return nil
	}
	name := r.cfg.Connector
	st, err := r.connect.ConnectorStatus(ctx, name)
	if err != nil {
		return fmt.Errorf("check connector %s for %d stuck INIT rows: %w", name, n, err)
	}
	rep.ConnectorState = describeStates(st)
	failed := failures(st)
	if len(failed) == 0 {
		r.logger.Warn("outbox rows stuck in INIT while the connector is not failed",
			"connector", name, "stuck_init", n, "oldest", roundAge(oldest), "state", rep.ConnectorState)
		return nil
	}
	if _, err := r.connect.RestartConnector(ctx, name, true, true); err != nil {
		return fmt.Errorf("restart failed connector %s: %w", name, err)
	}
	rep.RestartedConnector = true
	r.m.actions.WithLabelValues(ActionRestartConnector).Inc()
	attrs := []any{"connector", name, "stuck_init", n, "oldest", roundAge(oldest), "state", rep.ConnectorState}
	for _, f := range failed {
		attrs = append(attrs, f.what+"_trace", f.trace)
	}
	r.logger.Warn("restarted the failed CDC connector", attrs...)
	return nil
}

// failure is a FAILED connector or task and its trace.
type failure struct{ what, trace string }

// failures lists what is FAILED in a connector's status.
func failures(st connect.ConnectorStatus) []failure {
	var out []failure
	if st.Connector.State == connect.StateFailed {
		out = append(out, failure{"connector", st.Connector.Trace})
	}
	for _, t := range st.Tasks {
		if t.State == connect.StateFailed {
			out = append(out, failure{fmt.Sprintf("task%d", t.ID), t.Trace})
		}
	}
	return out
}

// describeStates renders a status as "connector=RUNNING task0=FAILED".
func describeStates(st connect.ConnectorStatus) string {
	s := "connector=" + st.Connector.State
	for _, t := range st.Tasks {
		s += fmt.Sprintf(" task%d=%s", t.ID, t.State)
	}
	return s
}

// republish publishes the rows of status untouched for idle, batch by batch,
// at most cfg.MaxRepublish rows; acked counts those Kafka acknowledged.
func (r *Reconciler) republish(ctx context.Context, status outbox.Status, idle time.Duration, action string,
	acked *int, rep *Report) error {
	for done := 0; done < r.cfg.MaxRepublish; {
		limit := min(r.cfg.RepublishBatch, r.cfg.MaxRepublish-done)
		b, err := r.republishBatch(ctx, status, idle, limit)
		*acked += b.acked
		rep.RepublishFailed += b.failed
		if err != nil {
			return err
		}
		if b.acked > 0 {
			r.m.actions.WithLabelValues(action).Add(float64(b.acked))
		}
		if b.rows < limit {
			return nil
		}
		done += b.rows
	}
	r.logger.Warn("republish bound reached; the rest waits for the next cycle",
		"status", status, "max", r.cfg.MaxRepublish)
	return nil
}

// batch is what one republishBatch did.
type batch struct {
	rows   int // rows selected
	acked  int // records Kafka acknowledged
	failed int // rows whose record failed
}

// republishBatch locks up to limit stale rows, publishes their records and
// counts the attempt on each row, in one transaction: the rows cannot
// become COMPLETE between the publish and the count, and a consumer
// completing one meanwhile waits at most the publish.
func (r *Reconciler) republishBatch(ctx context.Context, status outbox.Status, idle time.Duration, limit int) (batch, error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return batch{}, fmt.Errorf("republish %s rows: %w", status, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	rows, err := outbox.LockStale(ctx, tx, outbox.StaleQuery{
		Status: status, IdleFor: idle, MaxAttempts: r.cfg.MaxAttempts, Limit: limit, Columns: r.columns,
	})
	if err != nil || len(rows) == 0 {
		return batch{}, err
	}

	notes := make(map[uuid.UUID]string, len(rows))
	recs := make([]event.Record, 0, len(rows))
	sent := make([]outbox.StaleRow, 0, len(rows)) // the row of each record
	for _, row := range rows {
		// Stamped now, as a CDC engine stamps the change it processes.
		rec, err := r.router.Route(connect.Columns(row.Columns), time.Now())
		if err != nil {
			notes[row.ID] = fmt.Sprintf("republish by the reconciler failed (%s for %s): %v", status, roundAge(row.InStatus), err)
			continue
		}
		recs = append(recs, rec)
		sent = append(sent, row)
	}
	b := batch{rows: len(rows), failed: len(rows) - len(recs)}
	refused, err := r.publish(ctx, recs)
	if err != nil {
		return batch{}, fmt.Errorf("republish %d %s rows: %w", len(recs), status, err)
	}
	var firstErr error
	for i, row := range sent {
		if perr, ok := refused[i]; ok {
			notes[row.ID] = fmt.Sprintf("republish by the reconciler failed (%s for %s): %v", status, roundAge(row.InStatus), perr)
			b.failed++
			firstErr = cmp.Or(firstErr, perr)
			continue
		}
		notes[row.ID] = fmt.Sprintf("republished by the reconciler: %s for %s", status, roundAge(row.InStatus))
		b.acked++
	}
	if _, err := outbox.RecordAttempts(ctx, tx, notes); err != nil {
		return batch{}, err
	}
	if err := tx.Commit(); err != nil {
		return batch{}, fmt.Errorf("republish %s rows: commit: %w", status, err)
	}
	r.logBatch(status, rows, b, firstErr)
	return b, nil
}

// publish publishes recs and returns the records Kafka refused by index; an
// error means the outcome of the records is unknown.
func (r *Reconciler) publish(ctx context.Context, recs []event.Record) (map[int]error, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	err := r.pub.Publish(ctx, recs)
	var perr *PublishError
	if errors.As(err, &perr) {
		return perr.Failed, nil
	}
	return nil, err
}

// logBatch writes the line of one republished batch.
func (r *Reconciler) logBatch(status outbox.Status, rows []outbox.StaleRow, b batch, firstErr error) {
	oldest := rows[0].InStatus
	for _, row := range rows {
		oldest = max(oldest, row.InStatus)
	}
	if b.acked > 0 {
		r.logger.Info("republished stuck outbox rows", "status", status, "rows", b.acked,
			"oldest", roundAge(oldest), "first_id", rows[0].ID)
	}
	if b.failed > 0 {
		r.logger.Warn("republishing stuck outbox rows failed; attempts counted", "status", status,
			"rows", b.failed, "err", firstErr)
	}
}

// maxFailedLines bounds the log lines of rows marked FAILED in one cycle.
const maxFailedLines = 20

// failExhausted marks FAILED the rows out of attempts and updates the
// failed_rows gauge.
func (r *Reconciler) failExhausted(ctx context.Context, rep *Report) error {
	reason := fmt.Sprintf("FAILED by the reconciler: not COMPLETE after %d attempts", r.cfg.MaxAttempts)
	failed, err := outbox.FailExhausted(ctx, r.db, r.cfg.MaxAttempts, reason)
	if err != nil {
		return err
	}
	rep.MarkedFailed = len(failed)
	if len(failed) > 0 {
		r.m.actions.WithLabelValues(ActionMarkFailed).Add(float64(len(failed)))
	}
	for i, f := range failed {
		if i == maxFailedLines {
			r.logger.Error("more outbox rows marked FAILED", "rows", len(failed)-i)
			break
		}
		r.logger.Error("outbox row marked FAILED", "id", f.ID, "type", f.Type, "was", f.Was, "attempts", f.Attempts)
	}
	n, err := outbox.CountStatus(ctx, r.db, outbox.StatusFailed)
	if err != nil {
		return err
	}
	rep.FailedRows = n
	r.m.failedRows.Set(float64(n))
	return nil
}

// deleteComplete deletes COMPLETE rows past retention, DeleteBatch rows per
// statement, until none is left or ctx is done.
func (r *Reconciler) deleteComplete(ctx context.Context, rep *Report) error {
	return r.batched(ctx, r.cfg.DeleteBatch, ActionDeleteComplete, &rep.Deleted, &rep.DeleteBatches, func() (int64, error) {
		return outbox.DeleteComplete(ctx, r.db, r.cfg.Retention, r.cfg.DeleteBatch)
	}, "deleted COMPLETE outbox rows past retention", "retention", r.cfg.Retention)
}

// deleteExpiredKeys deletes idempotency keys past IdempotencyKeyRetention,
// DeleteBatch keys per statement, until none is left or ctx is done.
func (r *Reconciler) deleteExpiredKeys(ctx context.Context, rep *Report) error {
	return r.batched(ctx, r.cfg.DeleteBatch, ActionDeleteIdempotencyKeys, &rep.KeysDeleted, &rep.KeyDeleteBatches, func() (int64, error) {
		return shop.DeleteExpiredIdempotencyKeys(ctx, r.db, r.cfg.IdempotencyKeyRetention, r.cfg.DeleteBatch)
	}, "deleted idempotency keys past retention", "retention", r.cfg.IdempotencyKeyRetention)
}

// expireOrders marks ORDERED orders older than OrderExpiry as EXPIRED, in
// batches of ExpireBatch.
func (r *Reconciler) expireOrders(ctx context.Context, rep *Report) error {
	return r.batched(ctx, r.cfg.ExpireBatch, ActionExpireOrder, &rep.Expired, &rep.ExpireBatches, func() (int64, error) {
		return shop.ExpireOrders(ctx, r.db, r.cfg.OrderExpiry, r.cfg.ExpireBatch)
	}, "expired unpaid orders", "expiry", r.cfg.OrderExpiry)
}

// batched runs one batched chore with inBatches: it adds each batch's rows
// to *rows and *batches and to the action's metric, and logs msg with the
// totals and attrs when it did anything.
func (r *Reconciler) batched(ctx context.Context, size int, action string, rows *int64, batches *int,
	batch func() (int64, error), msg string, attrs ...any) error {
	defer func() {
		if *rows > 0 {
			r.logger.Info(msg, append([]any{"rows", *rows, "batches", *batches}, attrs...)...)
		}
	}()
	return inBatches(ctx, size, batch, func(n int64) {
		*rows += n
		*batches++
		r.m.actions.WithLabelValues(action).Add(float64(n))
	})
}

// inBatches runs batch until it does fewer than size rows, fails, or ctx is
// done; done is told each batch's count.
func inBatches(ctx context.Context, size int, batch func() (int64, error), done func(n int64)) error {
	for ctx.Err() == nil {
		n, err := batch()
		if err != nil {
			return err
		}
		if n > 0 {
			done(n)
		}
		if n < int64(size) {
			return nil
		}
	}
	return nil
}

// roundAge rounds a duration for people: to the second, or to the
// millisecond below a second.
func roundAge(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
