package ops

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/outboxpay/outboxpay/consumers/lag"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Sources the summary may name in Unavailable.
const (
	SourceKafka     = "kafka"
	SourceConnector = "connector"
)

// Bounds of Summary's window and of Series' span and step.
const (
	MinWindow = 10 * time.Second
	MaxWindow = time.Hour
	MinSpan   = time.Minute
	MaxSpan   = time.Hour
	MinStep   = time.Second
	MaxStep   = 5 * time.Minute
)

// Summary is the pipeline now, and its completions over the last window
// (MinWindow..MaxWindow). Postgres is required; Kafka and Kafka Connect,
// each asked for at most a few seconds, concurrently, are named in
// Unavailable when they cannot be read, their parts left empty. It reads
// no table in full: counts come from partial indexes and the planner's
// statistics, lag from Kafka's admin API.
func (s *Service) Summary(ctx context.Context, window time.Duration) (Summary, error) {
	if window < MinWindow || window > MaxWindow {
		return Summary{}, invalid("window", fmt.Sprintf("must be between %v and %v", MinWindow, MaxWindow))
	}
	sum := Summary{
		At: time.Now().UTC(), Slots: []Slot{}, Consumers: []ConsumerGroup{}, DLQ: []DLQDepth{}, Unavailable: []string{},
		Connector: Connector{Name: s.connector, State: "UNKNOWN", Tasks: []Task{}},
	}
	var (
		wg      sync.WaitGroup
		offsets lag.Offsets
		kafkaOK bool
		conn    = sum.Connector
		connOK  bool
	)
	wg.Go(func() {
		kctx, cancel := context.WithTimeout(ctx, sourceTimeout)
		defer cancel()
		o, err := s.lag.Offsets(kctx)
		if err != nil {
			s.logger.Warn("summary: kafka", "err", err)
		}
		offsets, kafkaOK = o, err == nil || len(o.Partitions) > 0
	})
	wg.Go(func() { conn, connOK = s.connectorState(ctx) })

	counts, ages, err := outbox.CountByStatus(ctx, s.db, false)
	if err == nil {
		sum.Outbox = OutboxSummary{Rows: counts, Failed: counts[outbox.StatusFailed],
			OldestUnfinishedSeconds: max(ages[outbox.StatusInit], ages[outbox.StatusPublished]).Seconds()}
		var c outbox.Completions
		if c, err = outbox.CompletionsSince(ctx, s.db, window); err == nil {
			sum.Window = Window{Seconds: window.Seconds(), Completed: c.N, PerSecond: float64(c.N) / window.Seconds(),
				P50ms: ms(c.P50), P95ms: ms(c.P95), P99ms: ms(c.P99)}
		}
	}
	var slots []lag.Slot
	if err == nil {
		slots, err = lag.Slots(ctx, s.db)
	}
	wg.Wait()
	if err != nil {
		return Summary{}, fmt.Errorf("summary: %w", err)
	}
	for _, sl := range slots {
		sum.Slots = append(sum.Slots, Slot{Name: sl.Name, Active: sl.Active, LagBytes: max(sl.LagBytes, 0)})
	}
	sum.Connector = conn
	if !connOK {
		sum.Unavailable = append(sum.Unavailable, SourceConnector)
	}
	if !kafkaOK {
		sum.Unavailable = append(sum.Unavailable, SourceKafka)
		return sum, nil
	}
	sum.Consumers = consumerGroups(offsets)
	if sum.DLQ, err = s.dlqDepths(ctx, offsets); err != nil {
		return Summary{}, fmt.Errorf("summary: %w", err)
	}
	return sum, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// connectorState asks Kafka Connect for the connector's state; false when
// it cannot (the state is then UNKNOWN).
func (s *Service) connectorState(ctx context.Context) (Connector, bool) {
	c := Connector{Name: s.connector, State: "UNKNOWN", Tasks: []Task{}}
	if s.connect == nil {
		return c, false
	}
	cctx, cancel := context.WithTimeout(ctx, sourceTimeout)
	defer cancel()
	st, err := s.connect.ConnectorStatus(cctx, s.connector)
	if err != nil {
		s.logger.Warn("summary: kafka connect", "err", err)
		return c, false
	}
	c.State = st.Connector.State
	for _, t := range st.Tasks {
		c.Tasks = append(c.Tasks, Task{ID: t.ID, State: t.State})
	}
	return c, true
}

// consumerGroups are the product's consumer groups and their lag, each
// listed even when it has no position yet.
func consumerGroups(o lag.Offsets) []ConsumerGroup {
	groups := kafkaclient.ConsumerGroups()
	out := make([]ConsumerGroup, len(groups))
	for i, g := range groups {
		out[i] = ConsumerGroup{Group: g, Partitions: []PartitionOffset{}}
	}
	for _, gp := range o.Groups {
		i := slices.Index(groups, gp.Group)
		if i < 0 {
			continue
		}
		out[i].Lag += gp.Lag
		out[i].Partitions = append(out[i].Partitions, PartitionOffset{Topic: gp.Topic, Partition: gp.Partition,
			Committed: gp.Committed, End: gp.High, Lag: gp.Lag})
	}
	return out
}

// dlqDepths counts, per DLQ topic, the records not re-driven yet: from the
// replay group's committed offset (the first retained record when it has
// none) to the end, less those re-driven one by one past that offset.
func (s *Service) dlqDepths(ctx context.Context, o lag.Offsets) ([]DLQDepth, error) {
	replayed := map[[2]any]int64{}
	for _, gp := range o.Groups {
		if gp.Group == kafkaclient.ReplayGroup && gp.Committed >= 0 {
			replayed[[2]any{gp.Topic, gp.Partition}] = gp.Committed
		}
	}
	var spans []dlqSpan
	for _, p := range o.Partitions {
		if !slices.Contains(event.DLQTopics(), p.Topic) {
			continue
		}
		from := p.Low
		if c, ok := replayed[[2]any{p.Topic, p.Partition}]; ok {
			from = max(from, c)
		}
		spans = append(spans, dlqSpan{topic: p.Topic, partition: p.Partition, from: from, end: max(p.High, from)})
	}
	redriven, err := s.redrivenIn(ctx, spans)
	if err != nil {
		return nil, err
	}
	depth := map[string]int64{}
	for _, sp := range spans {
		depth[sp.topic] += max(sp.end-sp.from-redriven[sp], 0)
	}
	out := make([]DLQDepth, 0, len(event.DLQTopics()))
	for _, t := range event.DLQTopics() {
		out = append(out, DLQDepth{Topic: t, Depth: depth[t]})
	}
	return out, nil
}

// Series returns the completions of the last span (MinSpan..MaxSpan) in
// buckets of step (MinStep..MaxStep), oldest first; buckets without
// completions are left out.
func (s *Service) Series(ctx context.Context, span, step time.Duration) (Series, error) {
	if span < MinSpan || span > MaxSpan {
		return Series{}, invalid("minutes", fmt.Sprintf("must be between %v and %v", MinSpan, MaxSpan))
	}
	if step < MinStep || step > MaxStep {
		return Series{}, invalid("step", fmt.Sprintf("must be between %v and %v", MinStep, MaxStep))
	}
	cs, err := outbox.CompletionSeries(ctx, s.db, span, step)
	if err != nil {
		return Series{}, err
	}
	out := Series{StepSeconds: step.Seconds(), Buckets: make([]Bucket, len(cs))}
	for i, c := range cs {
		out.Buckets[i] = Bucket{At: c.At.UTC(), Completed: c.N, PerSecond: float64(c.N) / step.Seconds(),
			P50ms: ms(c.P50), P95ms: ms(c.P95), P99ms: ms(c.P99)}
	}
	return out, nil
}
