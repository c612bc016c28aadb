package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/logging"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Handler handles one record. nil, ErrSkipped and ErrDuplicate mean done; an
// error wrapped with backoff.Permanent sends the record to the DLQ; one
// wrapped with RetryWhileRecent is retried while the record is recent, one
// wrapped with RetryUpTo so many times, then sent to the DLQ; any other
// error (a database outage, say) is retried with backoff, holding the
// partition. The group wraps every handler in the same middleware
// (pipeline.go); HandlerFunc, BatchFunc, Middleware, OnlyTypes and Inbox
// build one.
type Handler interface {
	Handle(ctx context.Context, rec Record) error
}

// BatchHandler handles the records a partition has queued, up to
// Config.MaxBatch at once, in offset order; the same rules apply to its
// error as to Handler's, for the whole batch.
type BatchHandler interface {
	HandleBatch(ctx context.Context, recs []Record) error
}

// Config configures a Group.
type Config struct {
	// Kafka is the cluster and the group's principal there.
	Kafka kafkaclient.Config
	Group string
	// Topics to subscribe to; a name starting with ^ is a regular expression.
	Topics []string
	// MaxBatch bounds the records a BatchHandler gets at once (default 500).
	MaxBatch int
	// RetryInitial and RetryMax bound the backoff between retries of a
	// record whose handling failed (defaults 10ms, 10s). The first retry is
	// soon because the commonest failure is a row whose commit is not
	// visible yet, a matter of milliseconds; the backoff doubles from there.
	RetryInitial, RetryMax time.Duration
	// VisibilityWindow and VisibilityAttempts bound the retries of a record
	// whose handler returns a RetryWhileRecent error: the record goes to the
	// DLQ once VisibilityWindow has passed since the group first saw it (by
	// this process's clock) or after VisibilityAttempts attempts, whichever
	// comes first (defaults outbox.VisibilityWindow, 20).
	VisibilityWindow   time.Duration
	VisibilityAttempts int
	// ShutdownTimeout is how long revocation and shutdown wait for a record
	// in progress before abandoning it (default 10s).
	ShutdownTimeout time.Duration
	// ConsumerConfig overrides librdkafka consumer properties.
	ConsumerConfig map[string]any
}

const queueSize = 1000

// Group is one consumer group's worker.
type Group struct {
	cfg     Config
	handler Handler
	batch   BatchHandler // handler, if it handles batches
	handle  step         // the handler in the group's middleware (pipeline)
	metrics *groupMetrics
	logger  *slog.Logger

	consumer *kafka.Consumer
	dlq      *kafka.Producer
	parts    map[partitionKey]*partition // owned by the Run goroutine
	resume   chan partitionKey           // partitions whose queue has room again
}

type partitionKey struct {
	topic string
	part  int32
}

// New returns a Group that hands records to h (a Handler, or a BatchHandler
// as well).
func New(cfg Config, h Handler, m *Metrics, logger *slog.Logger) *Group {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 10 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.VisibilityWindow <= 0 {
		cfg.VisibilityWindow = outbox.VisibilityWindow
	}
	if cfg.VisibilityAttempts <= 0 {
		cfg.VisibilityAttempts = 20
	}
	logger = logging.OrDiscard(logger)
	g := &Group{cfg: cfg, handler: h, metrics: m.forGroup(cfg.Group), logger: logger.With("group", cfg.Group)}
	g.batch, _ = h.(BatchHandler)
	g.handle = g.pipeline()
	return g
}

// Run consumes until ctx is done or the consumer fails. On the way out it
// lets each partition finish the record in progress (up to ShutdownTimeout,
// then abandons it without storing its offset) and commits what was handled.
func (g *Group) Run(ctx context.Context) error {
	cm := g.cfg.Kafka.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"group.id":                           g.cfg.Group,
		"enable.auto.commit":                 true,
		"auto.commit.interval.ms":            1000,
		"enable.auto.offset.store":           false,
		"auto.offset.reset":                  "earliest",
		"partition.assignment.strategy":      "cooperative-sticky",
		"topic.metadata.refresh.interval.ms": 5000, // finds new topics matching a pattern
		"enable.metrics.push":                false,
		"log.connection.close":               false,
		// A replica that crashes gives its partitions up after 15 s without
		// heartbeats. The rebalance timeout (max.poll.interval.ms; the poll
		// loop never blocks longer than ShutdownTimeout) bounds how long a
		// replica killed mid-rebalance can hold its group: a broker may
		// drop it only then (the embedded one does).
		"session.timeout.ms":   15000,
		"max.poll.interval.ms": 30000,
	}) {
		cm[k] = v
	}
	for k, v := range g.cfg.ConsumerConfig {
		cm[k] = v
	}
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", g.cfg.Group, err)
	}
	g.consumer = c
	dlqCM := g.cfg.Kafka.ProducerConfigMap(nil)
	g.dlq, err = kafka.NewProducer(&dlqCM)
	if err != nil {
		c.Close()
		return fmt.Errorf("dlq producer of %s: %w", g.cfg.Group, err)
	}
	// The DLQ producer's events other than delivery reports (client errors)
	// are drained until Close closes its channel, so they never fill it.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for ev := range g.dlq.Events() {
			if kerr, ok := ev.(kafka.Error); ok {
				g.logger.Debug("dead-letter producer", "err", kerr)
			}
		}
	}()
	defer func() { g.dlq.Close(); <-drained }()
	g.parts = make(map[partitionKey]*partition)
	g.resume = make(chan partitionKey, 64)

	if err := c.SubscribeTopics(g.cfg.Topics, g.rebalance); err != nil {
		c.Close()
		return fmt.Errorf("subscribe %s to %v: %w", g.cfg.Group, g.cfg.Topics, err)
	}
	g.logger.Info("consumer group started", "topics", g.cfg.Topics)
	runErr := g.poll(ctx)
	g.stopPartitions(slices.Collect(maps.Keys(g.parts)))
	if _, err := c.Commit(); err != nil && !isNoOffset(err) {
		g.logger.Warn("final commit failed", "err", err)
	}
	if err := c.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close consumer %s: %w", g.cfg.Group, err))
	}
	g.logger.Info("consumer group stopped")
	return runErr
}

func (g *Group) poll(ctx context.Context) error {
	for ctx.Err() == nil {
		for resumed := true; resumed; {
			select {
			case k := <-g.resume:
				g.resumePartition(k)
			default:
				resumed = false
			}
		}
		switch ev := g.consumer.Poll(100).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				g.logger.Warn("consume error", "err", ev.TopicPartition.Error)
				continue
			}
			g.dispatch(ctx, ev)
		case kafka.Error:
			if ev.IsFatal() {
				return fmt.Errorf("consumer %s: %w", g.cfg.Group, ev)
			}
			g.logger.Debug("consumer", "err", ev)
		}
	}
	return nil
}

// dispatch queues a record for its partition's goroutine. A full queue
// pauses the partition and rewinds it to this record, so nothing is lost and
// the poll loop never blocks on one slow partition.
func (g *Group) dispatch(ctx context.Context, m *kafka.Message) {
	k := partitionKey{*m.TopicPartition.Topic, m.TopicPartition.Partition}
	p := g.parts[k]
	if p == nil {
		p = g.startPartition(ctx, k)
	}
	if p.paused {
		return // fetched before the pause; it is fetched again after the resume
	}
	select {
	case p.queue <- queued{m, time.Now()}:
	default:
		tp := m.TopicPartition
		if err := g.consumer.Pause([]kafka.TopicPartition{tp}); err != nil {
			g.logger.Warn("pause partition", "partition", k, "err", err)
		}
		if err := g.consumer.Seek(tp, -1); err != nil {
			g.logger.Warn("rewind partition", "partition", k, "err", err)
		}
		p.paused = true
		p.wantResume.Store(true)
		g.logger.Debug("partition paused: its queue is full", "partition", k.String())
	}
}

func (g *Group) resumePartition(k partitionKey) {
	p := g.parts[k]
	if p == nil || !p.paused {
		return
	}
	topic := k.topic
	if err := g.consumer.Resume([]kafka.TopicPartition{{Topic: &topic, Partition: k.part}}); err != nil {
		g.logger.Warn("resume partition", "partition", k, "err", err)
		return
	}
	p.paused = false
	g.logger.Debug("partition resumed", "partition", k.String())
}

// rebalance starts goroutines for assigned partitions and, for revoked
// ones, lets them finish and commits what they handled before letting go.
func (g *Group) rebalance(c *kafka.Consumer, ev kafka.Event) error {
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		g.logger.Info("partitions assigned", "partitions", describe(e.Partitions))
		return c.IncrementalAssign(e.Partitions)
	case kafka.RevokedPartitions:
		g.logger.Info("partitions revoked", "partitions", describe(e.Partitions), "lost", c.AssignmentLost())
		keys := make([]partitionKey, len(e.Partitions))
		for i, tp := range e.Partitions {
			keys[i] = partitionKey{*tp.Topic, tp.Partition}
		}
		g.stopPartitions(keys)
		if !c.AssignmentLost() {
			if _, err := c.Commit(); err != nil && !isNoOffset(err) {
				g.logger.Warn("commit on revoke failed", "err", err)
			}
		}
		return c.IncrementalUnassign(e.Partitions)
	}
	return nil
}

func describe(tps []kafka.TopicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = *tp.Topic + "/" + strconv.Itoa(int(tp.Partition))
	}
	return out
}

func (k partitionKey) String() string { return k.topic + "/" + strconv.Itoa(int(k.part)) }

func describeKeys(keys []partitionKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return out
}

func isNoOffset(err error) bool {
	var kerr kafka.Error
	return errors.As(err, &kerr) && kerr.Code() == kafka.ErrNoOffset
}

// queued is a record waiting for its partition's goroutine, with the time
// the group first saw it: the poll that fetched it.
type queued struct {
	m    *kafka.Message
	seen time.Time
}

// partition is one assigned partition's queue and goroutine.
type partition struct {
	key        partitionKey
	queue      chan queued
	paused     bool        // Run goroutine only
	wantResume atomic.Bool // set when paused; the goroutine asks for a resume once the queue drains
	cancel     context.CancelFunc
	stopping   chan struct{}
	done       chan struct{}
}

func (g *Group) startPartition(ctx context.Context, k partitionKey) *partition {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &partition{
		key:      k,
		queue:    make(chan queued, queueSize),
		cancel:   cancel,
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	g.parts[k] = p
	go g.work(hctx, p)
	return p
}

// stopPartitions stops the goroutines of the partitions: what is queued is
// dropped (its offsets are not stored, so it is consumed again), the record
// in progress gets ShutdownTimeout to finish, then its context is canceled.
func (g *Group) stopPartitions(keys []partitionKey) {
	var wg sync.WaitGroup
	for _, k := range keys {
		p := g.parts[k]
		if p == nil {
			continue
		}
		delete(g.parts, k)
		close(p.stopping)
		wg.Go(func() {
			select {
			case <-p.done:
			case <-time.After(g.cfg.ShutdownTimeout):
				g.logger.Warn("abandoning a record in progress", "partition", p.key.String())
				p.cancel()
				<-p.done
			}
			p.cancel()
		})
	}
	g.logger.Debug("partitions stopping: finishing the records in progress", "partitions", describeKeys(keys))
	wg.Wait()
}

// work handles a partition's records in order.
func (g *Group) work(ctx context.Context, p *partition) {
	defer close(p.done)
	for {
		select {
		case <-p.stopping: // before the queue: what is queued is dropped
			return
		default:
		}
		var first queued
		select {
		case <-p.stopping:
			return
		case first = <-p.queue:
		}
		batch := []queued{first}
		if g.batch != nil {
		drain:
			for len(batch) < g.cfg.MaxBatch {
				select {
				case m := <-p.queue:
					batch = append(batch, m)
				default:
					break drain
				}
			}
		}
		d := &delivery{recs: make([]Record, len(batch)), seen: make([]time.Time, len(batch)), stopping: p.stopping}
		for i, q := range batch {
			d.recs[i], d.seen[i] = recordOf(q.m), q.seen
		}
		if err := g.handle(ctx, d); err != nil {
			return // stopping, or abandoned
		}
		last := batch[len(batch)-1].m.TopicPartition
		last.Offset++
		if _, err := g.consumer.StoreOffsets([]kafka.TopicPartition{last}); err != nil {
			g.logger.Debug("store offset", "err", err) // the partition was revoked meanwhile
		}
		if p.wantResume.Load() && len(p.queue) < queueSize/2 {
			p.wantResume.Store(false)
			select {
			case g.resume <- p.key:
			case <-p.stopping:
				return
			}
		}
	}
}

// deadLetter sends a record to its topic's DLQ with the reason, and waits
// until Kafka has it.
func (g *Group) deadLetter(ctx context.Context, r Record, reason error) error {
	msg := dlqMessage(r, g.cfg.Group, reason, time.Now())
	topic := *msg.TopicPartition.Topic
	delivered := make(chan kafka.Event, 1)
	err := g.dlq.Produce(msg, delivered)
	if err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	select {
	case ev := <-delivered:
		if m, ok := ev.(*kafka.Message); ok && m.TopicPartition.Error != nil {
			return fmt.Errorf("produce to %s: %w", topic, m.TopicPartition.Error)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	g.metrics.handled("dlq", 1)
	g.logger.Warn("record sent to the dead-letter topic", "record", r.String(), "dlq", topic, "reason", reason)
	return nil
}
