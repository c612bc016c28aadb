package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// How often the session wakes up when the server is quiet, to notice
// acknowledgements and failures; and the least time between two status
// updates sent because the confirmed position advanced.
const (
	pollInterval     = 200 * time.Millisecond
	serverSilence    = 2 * time.Minute // twice Postgres's default wal_sender_timeout: the connection is dead
	minStatusSpacing = time.Second
	lagPollInterval  = 5 * time.Second
	flushOnStop      = 5 * time.Second
)

// session is one streaming connection: a replication connection, a Kafka
// producer and the tracker of what Kafka has acknowledged. It ends at the
// first error; the engine then starts a new one from the slot.
type session struct {
	e        *Engine
	db       *sql.DB
	conn     *pgconn.PgConn
	producer *kafka.Producer
	track    *tracker
	columns  map[uint32]map[string]int // column positions of the outbox relation(s), by relation id
	topics   map[string]*string        // topic names, shared by the records sent to them
	tx       *txn                      // the transaction being received, between Begin and Commit

	// What Debezium's source block of a message record says (see
	// connect.LogicalMessage): the received transaction's id, the commit
	// time of the last transaction received (the session's start before
	// the first), and where the last commit was received.
	txID       uint32
	sourceTime time.Time
	lastCommit pglogrepl.LSN
	nextBeat   time.Time // when the next heartbeat record is due; zero: none

	failed     chan error // first failure reported by a helper goroutine
	lastStatus time.Time
	lastSent   pglogrepl.LSN
	sent       bool // a record was handed to Kafka
	skipped    skippedChanges
}

// stream runs one session. It reports whether the session handed a record
// to Kafka, which resets the engine's count of retries (as a poll that
// returns records does in Debezium's BaseSourceTask).
func (e *Engine) stream(ctx context.Context) (sent bool, err error) {
	s := &session{
		e:       e,
		columns: make(map[uint32]map[string]int),
		topics:  make(map[string]*string),
		failed:  make(chan error, 1),
		skipped: newSkippedChanges(),
	}
	ctx, cancel := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	defer func() {
		cancel()
		s.close()
		helpers.Wait()
	}()

	start, err := s.prepare(ctx)
	if err != nil {
		return false, err
	}
	s.track = newTracker(start)
	s.lastSent = start
	// Microseconds, as Postgres's commit times and the time in Debezium's
	// stored offset (ts_usec) have.
	s.sourceTime, s.lastCommit = time.Now().Truncate(time.Microsecond), start
	if e.cfg.HeartbeatInterval > 0 {
		s.nextBeat = time.Now().Add(e.cfg.HeartbeatInterval)
	}
	if !e.opts.Discard {
		if s.producer, err = e.newProducer(); err != nil {
			return false, err
		}
		helpers.Go(func() { s.deliveries() })
	}
	helpers.Go(func() { s.housekeeping(ctx) })

	if err := s.startReplication(ctx); err != nil {
		return false, err
	}
	e.setState(stateStreaming)
	e.logger.Info("cdc streaming", "slot", e.cfg.SlotName, "publication", e.cfg.PublicationName,
		"from", start.String())
	err = s.receive(ctx)
	return s.sent, err
}

// receive reads the replication stream until ctx is done or an error. It
// polls with a read deadline on the connection rather than a context per
// message, which would cost more than decoding the message.
func (s *session) receive(ctx context.Context) error {
	netConn := s.conn.Conn()
	var deadline time.Time
	lastHeard := time.Now()
	for {
		if err := s.check(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if now := time.Now(); deadline.Sub(now) < pollInterval/2 {
			deadline = now.Add(pollInterval)
			if err := netConn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
		}
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				if time.Since(lastHeard) > serverSilence {
					return fmt.Errorf("nothing from the server for %v on slot %s", serverSilence, s.e.cfg.SlotName)
				}
				continue
			}
			return dbError("receive from slot "+s.e.cfg.SlotName, err)
		}
		lastHeard = time.Now()
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone, *pgproto3.CommandComplete:
			return errors.New("replication stream ended by the server (shutting down?)")
		default:
			return fmt.Errorf("replication stream: unexpected message %T", msg)
		}
	}
}

// check reports a helper's failure, and produces a heartbeat record and
// sends a status update when due.
func (s *session) check(ctx context.Context) error {
	select {
	case err := <-s.failed:
		return err
	default:
	}
	if err := s.heartbeat(ctx); err != nil {
		return err
	}
	return s.sendStatus(ctx, false)
}

// sendStatus tells the server how far the slot may be confirmed: when forced
// (the server asked), when the position advanced (at most once a second),
// or every status.update.interval.ms to keep the connection alive.
func (s *session) sendStatus(ctx context.Context, force bool) error {
	confirmed, _ := s.track.position()
	since := time.Since(s.lastStatus)
	if !force && since < s.e.cfg.StatusUpdatePeriod && !(confirmed > s.lastSent && since >= minStatusSpacing) {
		return nil
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: confirmed})
	if err != nil {
		return dbError("send status to slot "+s.e.cfg.SlotName, err)
	}
	s.lastStatus, s.lastSent = time.Now(), confirmed
	return nil
}

func (s *session) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse keepalive: %w", err)
		}
		// Outside a transaction, everything committed before ServerWALEnd has
		// been received: once Kafka has the rest, the slot may move past it,
		// so WAL of other tables' writes is not pinned.
		if s.tx == nil {
			s.track.add(k.ServerWALEnd)
		}
		return s.sendStatus(ctx, k.ReplyRequested)
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parse xlog data: %w", err)
		}
		return s.handleWAL(ctx, x)
	}
	return nil
}

// close ends the session: it gives Kafka a moment to acknowledge what is in
// flight, confirms what it can, and closes the connections.
func (s *session) close() {
	s.skipped.flush(s.e.logger)
	if s.producer != nil {
		s.producer.Flush(int(flushOnStop.Milliseconds()))
	}
	if s.conn != nil && !s.conn.IsClosed() && s.track != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.sendStatus(ctx, true)
		cancel()
	}
	if s.producer != nil {
		s.producer.Close()
	}
	if s.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.conn.Close(ctx)
		cancel()
	}
	if s.db != nil {
		s.db.Close()
	}
}
