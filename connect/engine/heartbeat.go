package engine

import (
	"context"
	"database/sql"
	"time"

	"github.com/outboxpay/outboxpay/connect"
)

// heartbeat produces Debezium's heartbeat record (connect.HeartbeatRecord)
// when heartbeat.interval.ms has passed since the last one (or the session's
// start), whether or not changes flow, as HeartbeatImpl does. Like
// Debezium's, whose offset Kafka Connect commits once the record is
// acknowledged, it confirms the slot up to what was received before it
// only once Kafka has it.
func (s *session) heartbeat(ctx context.Context) error {
	if s.nextBeat.IsZero() {
		return nil
	}
	now := time.Now()
	if now.Before(s.nextBeat) {
		return nil
	}
	s.nextBeat = now.Add(s.e.cfg.HeartbeatInterval)
	x := s.track.begin(time.Time{})
	err := s.produceOther(ctx, s.e.cfg.HeartbeatRecord(now), connect.HeartbeatPartition, x)
	s.track.commitAtLast(x)
	return err
}

// housekeeping runs heartbeat.action.query every heartbeat.interval.ms and
// measures the slot's lag. The query runs as a fixed statement with the
// parsed heartbeat.action.query's values bound as parameters.
func (s *session) housekeeping(ctx context.Context) {
	lagTick := time.NewTicker(lagPollInterval)
	defer lagTick.Stop()
	var heartbeat <-chan time.Time
	var heartbeatSQL string
	var heartbeatArgs []any
	if s.e.cfg.HeartbeatInterval > 0 && s.e.cfg.Heartbeat != nil {
		t := time.NewTicker(s.e.cfg.HeartbeatInterval)
		defer t.Stop()
		heartbeat = t.C
		heartbeatSQL, heartbeatArgs = s.e.cfg.Heartbeat.Statement()
	}
	s.measureLag(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat:
			if _, err := s.db.ExecContext(ctx, heartbeatSQL, heartbeatArgs...); err != nil && ctx.Err() == nil {
				s.e.logger.Warn("heartbeat failed", "err", dbError("emit heartbeat", err))
			}
		case <-lagTick.C:
			s.measureLag(ctx)
		}
	}
}

func (s *session) measureLag(ctx context.Context) {
	if s.e.metrics == nil {
		return
	}
	var lag sql.NullFloat64
	err := s.db.QueryRowContext(ctx,
		`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = $1`,
		s.e.cfg.SlotName).Scan(&lag)
	if err == nil && lag.Valid {
		s.e.metrics.setSlotLag(lag.Float64)
	}
}
