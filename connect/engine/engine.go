// Package engine is the embedded CDC engine: it does Debezium's job for the
// outbox (PostgreSQL connector with pgoutput + Outbox Event Router). It reads
// committed outbox inserts from a logical replication slot, produces one
// Kafka record per row with acks=all and idempotence, and confirms the slot
// only up to the last transaction whose records Kafka has all acknowledged.
//
// The files follow the protocol: engine.go runs sessions and retries them;
// slot.go sets up the publication and the replication slot; stream.go is a
// session's read loop and its status updates to the server; decode.go turns
// pgoutput messages into records (outbox rows through the router, captured
// logical decoding messages as Debezium publishes them); produce.go hands
// records to Kafka and turns delivery reports into acknowledgements, which
// tracker.go orders into the position the slot may be confirmed to;
// heartbeat.go produces Debezium's heartbeat records, runs
// heartbeat.action.query and measures the slot's lag.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/logging"
)

// Options are the engine's settings that are not part of the connector config.
type Options struct {
	// Kafka is the cluster and the connector's principal there.
	Kafka kafkaclient.Config
	// ProducerConfig overrides librdkafka producer properties (tests, tuning).
	ProducerConfig map[string]any
	// Discard builds every record and drops it instead of producing it, as
	// if Kafka had acknowledged it at once (the metrics count it produced):
	// the reader alone, for measuring how fast and how soon the slot can be
	// decoded (make bench-cdc).
	Discard bool
	Metrics *Metrics
	Logger  *slog.Logger
}

// Engine streams one connector's outbox to Kafka. It implements the
// Kafka Connect worker's task: Run until the context ends or it fails.
type Engine struct {
	name    string
	cfg     connect.Config
	opts    Options
	metrics *connectorMetrics // nil without Options.Metrics
	logger  *slog.Logger
}

// New returns an engine for the named connector.
func New(name string, cfg connect.Config, opts Options) *Engine {
	opts.Logger = logging.OrDiscard(opts.Logger)
	return &Engine{
		name:    name,
		cfg:     cfg,
		opts:    opts,
		metrics: opts.Metrics.forConnector(name), // exports the counters at 0 from the start
		logger:  opts.Logger.With("connector", name),
	}
}

// permanent returns an error that retrying cannot fix (a missing
// publication, wal_level not logical): backoff.Permanent, so Run fails the
// task, which waits for an operator.
func permanent(format string, args ...any) error {
	return backoff.Permanent(fmt.Errorf(format, args...))
}

// Run streams until ctx is done (returning nil) or a permanent error, or
// retriable errors beyond errors.max.retries, stop it. Retriable errors
// (Postgres restarts, Kafka outages, a slot still held by a dead session)
// restart streaming from the slot's confirmed position, with exponential
// backoff between errors.retry.delay.initial.ms and errors.retry.delay.max.ms;
// a session that confirmed the slot further resets the backoff and the
// count of retries.
func (e *Engine) Run(ctx context.Context) error {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     e.cfg.RetryDelayInitial,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         e.cfg.RetryDelayMax,
	}
	retries := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		e.setState(stateStarting)
		progressed, err := e.stream(ctx)
		if ctx.Err() != nil {
			return struct{}{}, nil // stopped, not failed
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			return struct{}{}, err
		}
		if err == nil { // the session ended with ctx alive: stream again
			err = errors.New("streaming ended")
		}
		if progressed {
			b.Reset()
			retries = 0
		}
		retries++
		if e.cfg.MaxRetries >= 0 && retries > e.cfg.MaxRetries {
			return struct{}{}, backoff.Permanent(fmt.Errorf("gave up after %d retries: %w", e.cfg.MaxRetries, err))
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxElapsedTime(0), // errors.max.retries bounds the retries
		backoff.WithNotify(func(err error, delay time.Duration) {
			e.setState(stateRetrying)
			e.metrics.retry()
			e.logger.Warn("cdc streaming interrupted; retrying from the slot's confirmed position",
				"err", err, "retry", retries, "in", delay)
		}))
	if ctx.Err() != nil {
		e.setState(stateStopped)
		return nil
	}
	if err != nil {
		e.setState(stateFailed)
		return err
	}
	e.setState(stateStopped)
	return nil
}

func (e *Engine) setState(s string) { e.metrics.setState(s) }
