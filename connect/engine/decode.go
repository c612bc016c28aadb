package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

func (s *session) handleWAL(ctx context.Context, x pglogrepl.XLogData) error {
	m, err := pglogrepl.Parse(x.WALData)
	if err != nil {
		return fmt.Errorf("parse pgoutput message at %s: %w", x.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		s.tx = s.track.begin(m.CommitTime)
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
	case *pglogrepl.LogicalDecodingMessage:
		// Heartbeats (pg_logical_emit_message) and other messages carry no
		// events; outside a transaction they are a position to confirm.
		if !m.Transactional && s.tx == nil {
			s.track.add(m.LSN)
		}
		// Debezium would publish a message that message.prefix.*.list
		// captures to topic.prefix + ".message"; the engine does not.
		if s.e.cfg.Messages.Captures(m.Prefix) {
			s.e.logger.Warn("ignoring a logical decoding message that Debezium would publish",
				"prefix", m.Prefix, "topic", s.e.cfg.MessageTopic())
		}
	case *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage, *pglogrepl.TruncateMessage:
		// The outbox publication carries inserts only; were it to carry more,
		// updates and deletes are dropped, as the EventRouter does with
		// table.op.invalid.behavior=warn.
		s.e.logger.Warn("ignoring a non-insert change of the outbox", "type", m.Type().String())
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
