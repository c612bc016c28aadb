package reconcile

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// maxLockCheck bounds the time between two checks of the lock's connection
// while leading, and the time one check may take.
const maxLockCheck = 5 * time.Second

// Run reconciles until ctx is done, then returns nil. Only the instance
// that holds the Postgres advisory lock cfg.LockID acts: Run tries to take
// it every Interval, and while it holds it, runs a cycle every Interval.
// The lock lives in one database session; if that session's connection
// breaks, the lock is gone with it, so Run stops acting at once (the cycle
// in progress is canceled) and goes back to standby.
func (r *Reconciler) Run(ctx context.Context) error {
	defer r.m.leader.Set(0)
	standby := false
	for {
		lock, err := r.tryLock(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.m.errors.WithLabelValues(stepLock).Inc()
			r.logger.Warn("cannot try the reconciler lock; retrying", "err", err, "in", r.cfg.Interval)
		case lock != nil:
			standby = false
			r.lead(ctx, lock)
		case err == nil && !standby:
			standby = true
			r.logger.Info("reconciler standing by: another instance holds the lock", "lock_id", r.cfg.LockID)
		}
		if !sleep(ctx, r.cfg.Interval) {
			return nil
		}
	}
}

// tryLock takes the advisory lock on a connection of its own and returns
// that connection, or nil when another session holds the lock.
func (r *Reconciler) tryLock(ctx context.Context) (*sql.Conn, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconciler lock: connect: %w", err)
	}
	var locked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, r.cfg.LockID).Scan(&locked); err != nil {
		discard(conn) // it may hold the lock without our knowing
		return nil, fmt.Errorf("reconciler lock %d: %w", r.cfg.LockID, err)
	}
	if !locked {
		_ = conn.Close() // back to the pool: it holds nothing
		return nil, nil
	}
	return conn, nil
}

// lead runs cycles while the lock is held: until ctx is done or the lock's
// connection fails. It always gives the lock up before returning.
func (r *Reconciler) lead(ctx context.Context, lock *sql.Conn) {
	r.m.leader.Set(1)
	r.logger.Info("reconciler leading", "lock_id", r.cfg.LockID, "interval", r.cfg.Interval)
	leadCtx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if err := r.watchLock(leadCtx, lock); err != nil {
			r.m.errors.WithLabelValues(stepLock).Inc()
			r.logger.Warn("reconciler lock lost: its connection failed; standing by", "err", err)
			cancel()
		}
	}()
	defer func() {
		cancel()
		<-watched
		discard(lock) // ends the session, which releases the lock
		r.m.leader.Set(0)
		r.logger.Info("reconciler gave up the lock", "lock_id", r.cfg.LockID)
	}()
	for {
		rep, err := r.RunOnce(leadCtx)
		if leadCtx.Err() != nil {
			return
		}
		r.logger.Debug("reconciler cycle", "report", rep, "err", err)
		if !sleep(leadCtx, r.cfg.Interval) {
			return
		}
	}
}

// watchLock checks the lock's connection every min(Interval, maxLockCheck)
// until ctx is done (nil) or the check fails (its error).
func (r *Reconciler) watchLock(ctx context.Context, lock *sql.Conn) error {
	every := min(r.cfg.Interval, maxLockCheck)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, maxLockCheck)
		err := lock.PingContext(checkCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("check reconciler lock connection: %w", err)
		}
	}
}

// discard closes the connection's session instead of returning it to the
// pool, so no lock it may hold outlives it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// sleep waits for d, or returns false when ctx is done first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
