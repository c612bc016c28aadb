package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
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

	failed     chan error // first failure reported by a helper goroutine
	lastStatus time.Time
	lastSent   pglogrepl.LSN
	start      pglogrepl.LSN // the slot's confirmed position when the session began
}

// stream runs one session. It reports whether the session made progress
// (confirmed the slot further), so the engine can reset its backoff.
func (e *Engine) stream(ctx context.Context) (progressed bool, err error) {
	s := &session{
		e:       e,
		columns: make(map[uint32]map[string]int),
		topics:  make(map[string]*string),
		failed:  make(chan error, 1),
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
	s.start, s.lastSent = start, start
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
	confirmed, _ := s.track.position()
	return confirmed > s.start, err
}

// prepare checks the database, creates the publication (if the config asks)
// and the slot (if missing), and returns the slot's confirmed position. Both
// of its connections honour database.sslmode as libpq does (pgconn).
func (s *session) prepare(ctx context.Context) (pglogrepl.LSN, error) {
	cfg := s.e.cfg
	connConfig, err := pgx.ParseConfig(cfg.Database.URL())
	if err != nil {
		// pgconn's message quotes the connection string: not shown.
		return 0, permanent("database settings: %s", connectSettingsError(err))
	}
	// The password is the config's, never the worker's PGPASSWORD or
	// .pgpass, which the ${env:...} allow-list would not let a config reach.
	connConfig.Password = cfg.Database.Password
	db := stdlib.OpenDB(*connConfig)
	db.SetMaxOpenConns(2)
	s.db = db

	var walLevel string
	if err := db.QueryRowContext(ctx, `SHOW wal_level`).Scan(&walLevel); err != nil {
		return 0, dbError("connect to the database", err)
	}
	if walLevel != "logical" {
		return 0, permanent("wal_level is %q; logical decoding needs wal_level=logical", walLevel)
	}
	if err := s.ensurePublication(ctx); err != nil {
		return 0, err
	}

	replConfig, err := pgconn.ParseConfig(cfg.Database.URL() + "&replication=database")
	if err != nil {
		return 0, permanent("database settings: %s", connectSettingsError(err))
	}
	replConfig.Password = cfg.Database.Password
	s.conn, err = pgconn.ConnectConfig(ctx, replConfig)
	if err != nil {
		return 0, dbError("open replication connection", err)
	}
	var confirmed sql.NullString
	err = db.QueryRowContext(ctx,
		`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, cfg.SlotName).Scan(&confirmed)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = pglogrepl.CreateReplicationSlot(ctx, s.conn, cfg.SlotName, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile by another session
			err = nil
		}
		if err != nil {
			return 0, dbError("create replication slot "+cfg.SlotName, err)
		}
		s.e.logger.Info("replication slot created", "slot", cfg.SlotName)
		err = db.QueryRowContext(ctx,
			`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, cfg.SlotName).Scan(&confirmed)
	}
	if err != nil {
		return 0, dbError("read replication slot "+cfg.SlotName, err)
	}
	if !confirmed.Valid {
		return 0, permanent("replication slot %s is not a logical slot", cfg.SlotName)
	}
	lsn, err := pglogrepl.ParseLSN(confirmed.String)
	if err != nil {
		return 0, fmt.Errorf("read replication slot %s: %w", cfg.SlotName, err)
	}
	return lsn, nil
}

// ensurePublication checks that the publication exists and covers the outbox
// table, creating it (inserts only) when publication.autocreate.mode=filtered.
func (s *session) ensurePublication(ctx context.Context) error {
	cfg := s.e.cfg
	var covers bool
	err := s.db.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
		cfg.PublicationName, cfg.Table.Schema, cfg.Table.Name).Scan(&covers)
	if err != nil {
		return dbError("check publication "+cfg.PublicationName, err)
	}
	if covers {
		return nil
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`,
		cfg.PublicationName).Scan(&exists); err != nil {
		return dbError("check publication "+cfg.PublicationName, err)
	}
	switch {
	case exists:
		return permanent("publication %s does not cover table %s", cfg.PublicationName, cfg.Table)
	case !cfg.CreatePublication:
		return permanent("publication %s does not exist and publication.autocreate.mode is disabled", cfg.PublicationName)
	}
	_, err = s.db.ExecContext(ctx, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert')`,
		pgx.Identifier{cfg.PublicationName}.Sanitize(), pgx.Identifier{cfg.Table.Schema, cfg.Table.Name}.Sanitize()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile
		err = nil
	}
	if err != nil {
		return dbError("create publication "+cfg.PublicationName, err)
	}
	s.e.logger.Info("publication created", "publication", cfg.PublicationName, "table", cfg.Table.String())
	return nil
}

func (s *session) startReplication(ctx context.Context) error {
	cfg := s.e.cfg
	err := pglogrepl.StartReplication(ctx, s.conn, cfg.SlotName, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names " + quoteLiteral(cfg.PublicationName),
			"messages 'true'",
		},
	})
	if err != nil {
		return dbError("start replication from slot "+cfg.SlotName, err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

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

// check reports a helper's failure, and sends a status update when due.
func (s *session) check(ctx context.Context) error {
	select {
	case err := <-s.failed:
		return err
	default:
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
	rec, err := s.e.cfg.Router.RouteFunc(get, s.tx.commitTime)
	if err != nil {
		// As the EventRouter with table.op.invalid.behavior=warn: skip it.
		s.e.logger.Warn("skipping an outbox row the router cannot route", "err", err)
		return nil
	}
	s.e.metrics.capturedOne()
	return s.produce(ctx, rec, s.tx)
}

// topic returns a shared pointer to a topic name, as Kafka messages take it.
func (s *session) topic(name string) *string {
	if t, ok := s.topics[name]; ok {
		return t
	}
	t := &name
	s.topics[name] = t
	return t
}

func (s *session) produce(ctx context.Context, rec connect.Record, x *txn) error {
	topic := rec.Topic
	msg := kafkaclient.Message(rec, s.topic(topic), x)
	s.track.produced(x)
	if s.producer == nil { // Options.Discard
		s.track.ack(x)
		return nil
	}
	for {
		err := s.producer.Produce(msg, nil)
		if err == nil {
			return nil
		}
		var kerr kafka.Error
		if !errors.As(err, &kerr) || kerr.Code() != kafka.ErrQueueFull {
			return produceError(topic, err)
		}
		// Backpressure: wait for acknowledgements to free the queue, and keep
		// the replication connection alive meanwhile.
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.failed:
			return err
		case <-time.After(10 * time.Millisecond):
		}
		if err := s.sendStatus(ctx, false); err != nil {
			return err
		}
	}
}

// deliveries turns the producer's delivery reports into acknowledgements.
// A record Kafka failed to take ends the session: the slot is not confirmed
// past it, so the next session sends it again.
func (s *session) deliveries() {
	m := s.e.metrics
	for ev := range s.producer.Events() {
		switch ev := ev.(type) {
		case *kafka.Message:
			x := ev.Opaque.(*txn)
			if err := ev.TopicPartition.Error; err != nil {
				m.produceError()
				s.fail(produceError(*ev.TopicPartition.Topic, err))
				continue
			}
			s.track.ack(x)
			m.producedOne(x.commitTime)
		case kafka.Error:
			if ev.IsFatal() {
				s.fail(fmt.Errorf("kafka producer: %w", ev))
			} else {
				s.e.logger.Debug("kafka producer", "err", ev)
			}
		}
	}
}

// produceError wraps a record Kafka refused. A record too large for Kafka
// fails the task, as Kafka Connect's RecordTooLargeException does: sending it
// again cannot help, and skipping it would lose an event.
func produceError(topic string, err error) error {
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrMsgSizeTooLarge {
		return permanent("a record for %s is larger than Kafka accepts (message.max.bytes): %v", topic, err)
	}
	return fmt.Errorf("kafka did not take a record for %s: %w", topic, err)
}

func (s *session) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

// housekeeping emits the heartbeat every heartbeat.interval.ms and measures
// the slot's lag. The heartbeat runs as a fixed statement with the parsed
// heartbeat.action.query's values bound as parameters.
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

// close ends the session: it gives Kafka a moment to acknowledge what is in
// flight, confirms what it can, and closes the connections.
func (s *session) close() {
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

// newProducer returns the product's producer (idempotent, acks=all, keys
// placed where Kafka's Java producer places them), tuned for streaming.
func (e *Engine) newProducer() (*kafka.Producer, error) {
	cm := e.opts.Kafka.ProducerConfigMap(kafka.ConfigMap{
		"queue.buffering.max.messages": 20000,
		"queue.buffering.max.kbytes":   65536,
		// Delivery reports carry only the Opaque; the Go channels stay small
		// (their defaults hold a million entries the GC scans).
		"go.delivery.report.fields": "none",
		"go.events.channel.size":    10000,
		"go.produce.channel.size":   1000,
		"client.id":                 "outboxpay-cdc-" + e.name,
	})
	for k, v := range e.opts.ProducerConfig {
		cm[k] = v
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	return p, nil
}
