package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pglogrepl"

	"github.com/outboxpay/outboxpay/connect"
)

func (s *session) handleWAL(ctx context.Context, x pglogrepl.XLogData) error {
	m, err := pglogrepl.Parse(x.WALData)
	if err != nil {
		return fmt.Errorf("parse pgoutput message at %s: %w", x.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		s.tx = s.track.begin(m.CommitTime)
		s.txID, s.sourceTime = m.Xid, m.CommitTime
	case *pglogrepl.RelationMessage:
		if m.Namespace != s.e.cfg.Table.Schema || m.RelationName != s.e.cfg.Table.Name {
			delete(s.columns, m.RelationID)
			break
		}
		cols := make(map[string]int, len(m.Columns))
		for i, c := range m.Columns {
			cols[c.Name] = i
		}
		s.columns[m.RelationID] = cols
	case *pglogrepl.InsertMessage:
		return s.handleInsert(ctx, m)
	case *pglogrepl.CommitMessage:
		if s.tx == nil {
			return fmt.Errorf("commit at %s without begin", m.CommitLSN)
		}
		s.track.commit(s.tx, m.TransactionEndLSN)
		s.tx = nil
		s.lastCommit = x.WALStart
	case *pglogrepl.LogicalDecodingMessage:
		return s.handleMessage(ctx, x.WALStart, m)
	case *pglogrepl.UpdateMessage:
		// As the EventRouter with table.op.invalid.behavior=warn: dropped
		// with a warning (Debezium's is one per update; here one per
		// skippedLogInterval with the count).
		if _, ok := s.columns[m.RelationID]; ok {
			s.skipped.updates.add(s.e.logger)
		}
	case *pglogrepl.DeleteMessage:
		// The EventRouter drops deletes, logging them at debug level.
		if _, ok := s.columns[m.RelationID]; ok {
			s.skipped.deletes.add(s.e.logger)
		}
	case *pglogrepl.TruncateMessage:
		// Debezium's skipped.operations defaults to "t": no event.
	}
	return nil
}

func (s *session) handleInsert(ctx context.Context, m *pglogrepl.InsertMessage) error {
	cols, ok := s.columns[m.RelationID]
	if !ok {
		return nil
	}
	if s.tx == nil {
		return errors.New("insert outside a transaction")
	}
	// As Debezium's EventRouter with table.fields.additional.error.on.missing
	// (true by default): a placed column the table lacks fails the task.
	for _, h := range s.e.cfg.Router.Headers {
		if _, ok := cols[h.Column]; !ok {
			return permanent("the outbox table has no column %q, which table.fields.additional.placement places as header %q",
				h.Column, h.Header)
		}
	}
	tuple := m.Tuple.Columns
	get := func(name string) ([]byte, bool) {
		i, ok := cols[name]
		if !ok || i >= len(tuple) || tuple[i].DataType != pglogrepl.TupleDataTypeText {
			return nil, false // absent, or NULL
		}
		return tuple[i].Data, true
	}
	// Stamped with the engine's clock as it processes the change, as
	// Debezium stamps the envelope's ts_ms (not the commit time).
	rec, err := s.e.cfg.Router.RouteFunc(get, time.Now())
	if err != nil {
		// As the EventRouter with table.op.invalid.behavior=warn: skip it.
		s.e.logger.Warn("skipping an outbox row the router cannot route", "err", err)
		return nil
	}
	s.e.metrics.capturedOne()
	return s.produce(ctx, rec, s.tx)
}

// handleMessage publishes a logical decoding message that
// message.prefix.include.list / exclude.list capture to
// connect.Config.MessageTopic, as Debezium's PostgreSQL connector does
// (PostgresEventDispatcher.dispatchLogicalDecodingMessage); the Outbox
// Event Router passes it through. A transactional message is one of its
// transaction's records; a non-transactional one is its own commit, a
// position to confirm once Kafka has its record (at once if not captured).
func (s *session) handleMessage(ctx context.Context, at pglogrepl.LSN, m *pglogrepl.LogicalDecodingMessage) error {
	if m.Transactional && s.tx == nil {
		return errors.New("transactional logical decoding message outside a transaction")
	}
	if !m.Transactional {
		s.lastCommit = at
	}
	if !s.e.cfg.Messages.Captures(m.Prefix) {
		if s.tx == nil {
			s.track.add(m.LSN)
		}
		return nil
	}
	rec := s.e.cfg.MessageRecord(connect.LogicalMessage{
		Prefix: m.Prefix, Content: m.Content, Transactional: m.Transactional,
		LSN: uint64(at), LastCommitLSN: uint64(s.lastCommit), TxID: s.txID, SourceTime: s.sourceTime,
	}, time.Now())
	if s.tx != nil {
		return s.produceOther(ctx, rec, kafka.PartitionAny, s.tx)
	}
	x := s.track.begin(time.Time{})
	err := s.produceOther(ctx, rec, kafka.PartitionAny, x)
	s.track.commit(x, m.LSN)
	return err
}

// skippedLogInterval is the least time between two log lines about changes
// of the outbox that produce no record.
const skippedLogInterval = time.Minute

// skippedChanges counts the outbox's updates and deletes, which a filtered
// publication (every operation) sends and which produce no record.
type skippedChanges struct {
	updates skipCounter
	deletes skipCounter
}

func newSkippedChanges() skippedChanges {
	return skippedChanges{
		updates: skipCounter{level: slog.LevelWarn,
			msg: "ignoring updates of the outbox, as the EventRouter does with table.op.invalid.behavior=warn"},
		deletes: skipCounter{level: slog.LevelDebug, msg: "ignoring deletes of the outbox, as the EventRouter does"},
	}
}

// flush logs what was counted and not logged yet.
func (c *skippedChanges) flush(logger *slog.Logger) {
	c.updates.flush(logger)
	c.deletes.flush(logger)
}

// skipCounter logs one line, with the count, for the first skipped change
// and then at most once per skippedLogInterval, so a stream of updates does
// not flood the log.
type skipCounter struct {
	level  slog.Level
	msg    string
	n      int
	logged time.Time
}

func (c *skipCounter) add(logger *slog.Logger) {
	c.n++
	if time.Since(c.logged) >= skippedLogInterval {
		c.flush(logger)
	}
}

func (c *skipCounter) flush(logger *slog.Logger) {
	if c.n == 0 {
		return
	}
	logger.Log(context.Background(), c.level, c.msg, "count", c.n) // since the last such line
	c.n, c.logged = 0, time.Now()
}
