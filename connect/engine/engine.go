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
// retriable errors beyond errors.max.retries, stop it. As Debezium's
// BaseSourceTask and ErrorHandler do, a retriable error (a Postgres
// restart, a Kafka outage, a slot still held by a dead session) restarts
// streaming from the slot's confirmed position after the fixed
// retriable.restart.connector.wait.ms; errors.max.retries counts the
// consecutive retries (-1 without limit, 0 none: the first error fails the
// task), and a session that handed a record to Kafka resets the count.
func (e *Engine) Run(ctx context.Context) error {
	retries := 0
	for {
		e.setState(stateStarting)
		sent, err := e.stream(ctx)
		if ctx.Err() != nil {
			e.setState(stateStopped)
			return nil
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			e.setState(stateFailed)
			return perm.Err
		}
		if err == nil { // the session ended with ctx alive: stream again
			err = errors.New("streaming ended")
		}
		if sent {
			retries = 0
		}
		if e.cfg.MaxRetries >= 0 && retries >= e.cfg.MaxRetries {
			e.setState(stateFailed)
			if e.cfg.MaxRetries == 0 {
				return err
			}
			return fmt.Errorf("gave up after %d retries: %w", e.cfg.MaxRetries, err)
		}
		retries++
		e.setState(stateRetrying)
		e.metrics.retry()
		e.logger.Warn("cdc streaming interrupted; restarting from the slot's confirmed position",
			"err", err, "retry", retries, "in", e.cfg.RestartWait)
		wait := time.NewTimer(e.cfg.RestartWait)
		select {
		case <-ctx.Done():
			wait.Stop()
			e.setState(stateStopped)
			return nil
		case <-wait.C:
		}
	}
}

func (e *Engine) setState(s string) { e.metrics.setState(s) }
