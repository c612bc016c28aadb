package ops

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/consumers/lag"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Defaults of Config.
const (
	DefaultConnectorName = "outbox"
	DefaultDLQScan       = 1000
	// sourceTimeout bounds what the summary waits for Kafka and for Kafka
	// Connect, each.
	sourceTimeout = 3 * time.Second
)

// Config configures New.
type Config struct {
	// DB is the application database as the operator's role
	// (outboxpay_operator). Required.
	DB *sql.DB
	// Kafka is the cluster (its Bootstrap is required) as the operator's
	// principal (kafkaclient.PrincipalOperator).
	Kafka kafkaclient.Config
	// Connect reaches the Kafka Connect REST API running the connector;
	// nil: the connector's state is UNKNOWN and its actions ErrUpstream.
	Connect *rest.Client
	// ConnectorName is the CDC connector's name, default "outbox".
	ConnectorName string
	// Router builds a retried row's record, as the reconciler's does;
	// zero: connect.DefaultRouter.
	Router connect.Router
	// Publisher publishes retried rows and re-driven records; nil: the
	// service makes a reconcile.KafkaPublisher of Kafka, closed by Close.
	Publisher reconcile.Publisher
	// DLQScan bounds the records read per DLQ partition by DLQ and Life,
	// the newest ones; default 1000.
	DLQScan int
	// Logger receives what fails behind an answer; nil discards.
	Logger *slog.Logger
}

// Service is the operator's view of the pipeline and its actions. Its
// methods are safe for concurrent use. Create it with New; Close it.
type Service struct {
	db        *sql.DB
	kafka     kafkaclient.Config
	connect   *rest.Client
	connector string
	router    connect.Router
	columns   []string // what router reads of a row
	pub       reconcile.Publisher
	ownPub    *reconcile.KafkaPublisher // pub, when New made it
	lag       *lag.Collector
	dlqScan   int
	logger    *slog.Logger
	// redriveMu serializes the re-drives of this service, so that two
	// at once never read the same records.
	redriveMu sync.Mutex
}

// New returns the service. It opens Kafka clients (which connect lazily)
// and contacts nothing.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil {
		return nil, errors.New("ops: new service: Config.DB is nil")
	}
	if cfg.ConnectorName == "" {
		cfg.ConnectorName = DefaultConnectorName
	}
	if cfg.Router.TopicTemplate == "" {
		cfg.Router = connect.DefaultRouter
	}
	if cfg.DLQScan <= 0 {
		cfg.DLQScan = DefaultDLQScan
	}
	logger := logging.OrDiscard(cfg.Logger).With("component", "ops")
	s := &Service{
		db: cfg.DB, kafka: cfg.Kafka, connect: cfg.Connect, connector: cfg.ConnectorName,
		router: cfg.Router, columns: cfg.Router.ReadColumns(), pub: cfg.Publisher, dlqScan: cfg.DLQScan, logger: logger,
	}
	var err error
	s.lag, err = lag.New(lag.Options{
		DB: cfg.DB, Kafka: cfg.Kafka, Groups: append(kafkaclient.ConsumerGroups(), kafkaclient.ReplayGroup),
		Timeout: sourceTimeout, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("ops: new service: %w", err)
	}
	if s.pub == nil {
		if s.ownPub, err = reconcile.NewKafkaPublisher(cfg.Kafka, map[string]any{"client.id": "outboxpay-operator"}); err != nil {
			s.lag.Close()
			return nil, fmt.Errorf("ops: new service: %w", err)
		}
		s.pub = s.ownPub
	}
	return s, nil
}

// Close closes the Kafka clients the service made. It does not close
// Config.DB nor Config.Publisher.
func (s *Service) Close() {
	s.lag.Close()
	if s.ownPub != nil {
		s.ownPub.Close()
	}
}

// invalid is ErrInvalid about a parameter.
func invalid(param, why string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, param, why)
}

// validActor returns a's reason trimmed, or ErrInvalid.
func validActor(a Actor) (string, error) {
	if strings.TrimSpace(a.Name) == "" {
		return "", invalid("actor", "must not be empty")
	}
	reason := strings.TrimSpace(a.Reason)
	if reason == "" {
		return "", invalid("reason", "must not be empty")
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonLen || !utf8.ValidString(reason) {
		return "", invalid("reason", fmt.Sprintf("at most %d characters of valid UTF-8", MaxReasonLen))
	}
	return reason, nil
}

// limit checks a limit of 1..500, 0 meaning def.
func limit(n, def int) (int, error) {
	if n == 0 {
		return def, nil
	}
	if n < 1 || n > 500 {
		return 0, invalid("limit", "must be between 1 and 500")
	}
	return n, nil
}

// Retry sends a FAILED or PARKED row back through the normal path
// (outbox.Retry) and, once that is committed with its audit row, publishes
// its record at once as the reconciler republishes it. A publish that fails
// then is logged and audited; the row is PUBLISHED or INIT with no
// attempts, so the reconciler republishes it later.
func (s *Service) Retry(ctx context.Context, a Actor, id uuid.UUID) (Result, error) {
	var rec *event.Record
	res, err := s.transition(ctx, a, id, ActionRetry, func(tx *sql.Tx) (outbox.Transition, error) {
		tr, err := outbox.Retry(ctx, tx, id)
		if err != nil || !tr.Changed {
			return tr, err
		}
		cols, err := outbox.ColumnsOf(ctx, tx, id, s.columns)
		if err != nil {
			return tr, err
		}
		r, err := s.router.Route(connect.Columns(cols), time.Now())
		if err != nil {
			s.logger.Warn("retry: the row's record cannot be built; the reconciler counts it as an attempt",
				"event", id, "err", err)
			return tr, nil
		}
		rec = &r
		return tr, nil
	})
	if err != nil || rec == nil {
		return res, err
	}
	if err := s.pub.Publish(ctx, []event.Record{*rec}); err != nil {
		s.logger.Warn("retry: publishing at once failed; the reconciler republishes the row", "event", id, "err", err)
		if _, aerr := s.audit(ctx, s.db, a.Name, ActionRetry, id.String(), strings.TrimSpace(a.Reason), false,
			"publishing at once failed; the reconciler republishes the row"); aerr != nil {
			s.logger.Error("retry: audit the failed publish", "event", id, "err", aerr)
		}
	}
	return res, nil
}

// Park sets a row aside (outbox.Park), with an audit row.
func (s *Service) Park(ctx context.Context, a Actor, id uuid.UUID) (Result, error) {
	return s.transition(ctx, a, id, ActionPark, func(tx *sql.Tx) (outbox.Transition, error) {
		return outbox.Park(ctx, tx, id)
	})
}

// Discard gives a row up (outbox.Discard), with an audit row.
func (s *Service) Discard(ctx context.Context, a Actor, id uuid.UUID) (Result, error) {
	return s.transition(ctx, a, id, ActionDiscard, func(tx *sql.Tx) (outbox.Transition, error) {
		return outbox.Discard(ctx, tx, id)
	})
}

// transition runs change and writes its audit row in one transaction.
// ErrNotFound and ErrConflict change nothing and write no audit row.
func (s *Service) transition(ctx context.Context, a Actor, id uuid.UUID, action string,
	change func(*sql.Tx) (outbox.Transition, error)) (Result, error) {
	reason, err := validActor(a)
	if err != nil {
		return Result{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Result{}, fmt.Errorf("%s %s: %w", action, id, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	tr, err := change(tx)
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		return Result{}, fmt.Errorf("%s %s: %w", action, id, ErrNotFound)
	case errors.Is(err, outbox.ErrConflict):
		return Result{Status: tr.Was}, fmt.Errorf("%s %s (%s): %w", action, id, tr.Was, ErrConflict)
	case err != nil:
		return Result{}, err
	}
	detail := fmt.Sprintf("%s -> %s", tr.Was, tr.Now)
	if !tr.Changed {
		detail = fmt.Sprintf("already %s", tr.Now)
	}
	auditID, err := s.audit(ctx, tx, a.Name, action, id.String(), reason, tr.Changed, detail)
	if err != nil {
		return Result{}, err
	}
	if err := tx.Commit(); err != nil {
		return Result{}, fmt.Errorf("%s %s: commit: %w", action, id, err)
	}
	return Result{Changed: tr.Changed, Status: tr.Now, AuditID: auditID}, nil
}

// Connector pauses, resumes or restarts (with its tasks) the connector
// through Kafka Connect's REST API, and writes an audit row. A pause of a
// PAUSED connector or a resume of a RUNNING one changes nothing (and is
// audited so). Kafka Connect's errors are logged and returned as
// ErrUpstream.
func (s *Service) Connector(ctx context.Context, a Actor, action string) (Result, error) {
	reason, err := validActor(a)
	if err != nil {
		return Result{}, err
	}
	var do func(context.Context) error
	var already string
	switch action {
	case ActionConnectorPause:
		do, already = func(ctx context.Context) error { return s.connect.PauseConnector(ctx, s.connector) }, "PAUSED"
	case ActionConnectorResume:
		do, already = func(ctx context.Context) error { return s.connect.ResumeConnector(ctx, s.connector) }, "RUNNING"
	case ActionConnectorRestart:
		do = func(ctx context.Context) error {
			_, err := s.connect.RestartConnector(ctx, s.connector, true, false)
			return err
		}
	default:
		return Result{}, invalid("action", "must be pause, resume or restart")
	}
	if s.connect == nil {
		return Result{}, fmt.Errorf("%s: no Kafka Connect configured: %w", action, ErrUpstream)
	}
	changed := true
	if already != "" {
		st, err := s.connect.ConnectorStatus(ctx, s.connector)
		if err != nil {
			s.logger.Warn("connector action: status", "action", action, "err", err)
			return Result{}, fmt.Errorf("%s: %w", action, ErrUpstream)
		}
		changed = st.Connector.State != already
	}
	if changed {
		if err := do(ctx); err != nil {
			s.logger.Warn("connector action", "action", action, "err", err)
			return Result{}, fmt.Errorf("%s: %w", action, ErrUpstream)
		}
	}
	detail := ""
	if !changed {
		detail = "already " + already
	}
	id, err := s.audit(ctx, s.db, a.Name, action, s.connector, reason, changed, detail)
	if err != nil {
		return Result{}, err
	}
	return Result{Changed: changed, AuditID: id}, nil
}

// Search returns the outbox rows q selects, newest first.
func (s *Service) Search(ctx context.Context, q Query) ([]Event, error) {
	n, err := limit(q.Limit, 50)
	if err != nil {
		return nil, err
	}
	switch {
	case q.OrderID < 0:
		return nil, invalid("order", "must be positive")
	case q.OlderThan < 0:
		return nil, invalid("older_than", "must not be negative")
	case q.NewerThan < 0:
		return nil, invalid("newer_than", "must not be negative")
	case q.Status != "" && !validStatus(q.Status):
		return nil, invalid("status", "must be one of "+statusList())
	}
	rows, err := outbox.Search(ctx, s.db, outbox.Filter{
		OrderID: q.OrderID, ID: q.EventID, AggregateType: q.AggregateType, AggregateID: q.AggregateID,
		Type: q.Type, Status: q.Status, OlderThan: q.OlderThan, NewerThan: q.NewerThan, Limit: n,
	})
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = eventOf(r)
	}
	return out, nil
}

func validStatus(st outbox.Status) bool {
	for _, v := range outbox.Statuses() {
		if v == st {
			return true
		}
	}
	return false
}

func statusList() string {
	names := make([]string, 0, len(outbox.Statuses()))
	for _, v := range outbox.Statuses() {
		names = append(names, string(v))
	}
	return strings.Join(names, ", ")
}

// eventOf is the API's view of a row.
func eventOf(r outbox.Row) Event {
	return Event{
		ID: r.ID, Type: r.Type, AggregateType: r.AggregateType, AggregateID: r.AggregateID,
		Topic: event.Topic(r.AggregateType), OrderID: r.OrderID, Status: r.Status, Attempts: r.Attempts,
		CreatedAt: r.CreatedAt, PublishedAt: r.PublishedAt, CompletedAt: r.CompletedAt, FailedAt: r.FailedAt,
		LastError: r.LastError, HandledBy: r.HandledBy,
	}
}
