package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgbenchrun"
)

// newKafkaConsumer returns a consumer that joins no group (it is assigned
// partitions) and commits nothing.
func newKafkaConsumer(bootstrap string) (*kafka.Consumer, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":    bootstrap,
		"group.id":             "benchcdc-unused",
		"enable.auto.commit":   false,
		"fetch.wait.max.ms":    100,
		"enable.metrics.push":  false,
		"log.connection.close": false,
	})
	if err != nil {
		return nil, fmt.Errorf("create kafka consumer: %w", err)
	}
	return c, nil
}

// topicEnds returns each partition's log end (high watermark) and the
// number of records the topic holds.
func topicEnds(c *kafka.Consumer, topic string) (ends map[int32]int64, total int64, err error) {
	md, err := c.GetMetadata(&topic, false, 10_000)
	if err != nil {
		return nil, 0, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	t, ok := md.Topics[topic]
	if !ok || t.Error.Code() != kafka.ErrNoError || len(t.Partitions) == 0 {
		return nil, 0, fmt.Errorf("metadata of %s: topic not found (%v)", topic, t.Error)
	}
	ends = make(map[int32]int64, len(t.Partitions))
	for _, p := range t.Partitions {
		low, high, err := c.QueryWatermarkOffsets(topic, p.ID, 10_000)
		if err != nil {
			return nil, 0, fmt.Errorf("watermarks of %s[%d]: %w", topic, p.ID, err)
		}
		ends[p.ID] = high
		total += high - low
	}
	return ends, total, nil
}

// topicRecords is the number of records a topic holds.
func topicRecords(bootstrap, topic string) (int64, error) {
	c, err := newKafkaConsumer(bootstrap)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_, total, err := topicEnds(c, topic)
	return total, err
}

// latencyConsumer reads a topic from its current end and records, per
// record, receive time minus the time the row was inserted (writtenAt, a
// moment before its commit): insert-to-consume. Records without it are
// not counted.
type latencyConsumer struct {
	c     *kafka.Consumer
	quit  chan struct{}
	done  chan struct{}
	close func() []time.Duration // stops it and returns what it measured

	mu  sync.Mutex
	lat []time.Duration
	at  []time.Time // when each was received
}

func startLatencyConsumer(bootstrap, topic string) (*latencyConsumer, error) {
	c, err := newKafkaConsumer(bootstrap)
	if err != nil {
		return nil, err
	}
	ends, _, err := topicEnds(c, topic)
	if err != nil {
		c.Close()
		return nil, err
	}
	var parts []kafka.TopicPartition
	for p, end := range ends {
		parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.Offset(end)})
	}
	if err := c.Assign(parts); err != nil {
		c.Close()
		return nil, fmt.Errorf("assign %s: %w", topic, err)
	}
	l := &latencyConsumer{c: c, quit: make(chan struct{}), done: make(chan struct{})}
	l.close = sync.OnceValue(l.stop)
	go l.loop()
	return l, nil
}

func (l *latencyConsumer) loop() {
	defer close(l.done)
	for {
		select {
		case <-l.quit:
			return
		default:
		}
		m, ok := l.c.Poll(50).(*kafka.Message)
		if !ok || m.TopicPartition.Error != nil {
			continue
		}
		now := time.Now()
		written, ok := writtenAt(m.Value)
		if !ok {
			continue
		}
		l.mu.Lock()
		l.lat = append(l.lat, now.Sub(written))
		l.at = append(l.at, now)
		l.mu.Unlock()
	}
}

func (l *latencyConsumer) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lat)
}

func (l *latencyConsumer) stop() []time.Duration {
	close(l.quit)
	<-l.done
	l.c.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lat
}

// writtenAtField is the payload field of outboxScript's rows that says when
// the row was inserted, in microseconds since the Unix epoch.
const writtenAtField = "benchWrittenAtUs"

// writtenAt returns the insert time a payload of outboxScript carries, or
// false if it carries none.
func writtenAt(payload []byte) (time.Time, bool) {
	var p map[string]json.RawMessage
	if json.Unmarshal(payload, &p) != nil {
		return time.Time{}, false
	}
	us, err := strconv.ParseInt(string(p[writtenAtField]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// windows splits the latencies by receive time into windows of width
// from start, each sorted.
func (l *latencyConsumer) windows(start time.Time, width time.Duration) [][]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]time.Duration
	for i, at := range l.at {
		w := max(int(at.Sub(start)/width), 0)
		for len(out) <= w {
			out = append(out, nil)
		}
		out[w] = append(out[w], l.lat[i])
	}
	for _, w := range out {
		slices.Sort(w)
	}
	return out
}

// steadyResult is the steady load's outcome.
type steadyResult struct {
	pgbench  pgbenchrun.Result
	drain    time.Duration     // after pgbench ended, until Kafka had acknowledged every row
	ack      histogram         // the engine's commit-to-ack observations during the load
	floor    histogram         // the reader alone's commit-to-decoded observations (floorReader)
	load     [2]string         // the machine's load averages (/proc/loadavg) before and after
	gcCycles uint64            // the engine process's GC cycles during the load
	gcMax    float64           // the longest of its recent GC pauses (stop the world), seconds
	consumed []time.Duration   // insert-to-consume, sorted
	windows  [][]time.Duration // insert-to-consume per windowWidth of the load, each sorted
	cpu      cpuUsage
}

// windowWidth is the steady load's reporting interval.
const windowWidth = 5 * time.Second

// steadyLoad runs pgbench at o.rate for o.duration while the engine
// streams, and measures commit-to-Kafka-ack latency from the engine's own
// histogram (scraped before and after) and insert-to-consume from a
// consumer in this process.
func steadyLoad(ctx context.Context, env *benchEnv, eng *engineProc, tools pgTools, o options, tmp string,
	prof *profiler, log *slog.Logger) (steadyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.duration+5*time.Minute)
	defer cancel()
	before, err := eng.metrics(ctx)
	if err != nil {
		return steadyResult{}, err
	}
	floor, err := startFloorReader(ctx, env, tmp)
	if err != nil {
		return steadyResult{}, err
	}
	defer func() {
		if err := floor.close(); err != nil {
			log.Warn("stop the floor reader", "err", err)
		}
	}()
	floorBefore, err := floor.metrics(ctx)
	if err != nil {
		return steadyResult{}, err
	}
	cons, err := startLatencyConsumer(env.kafka.Bootstrap(), event.Topic(event.AggregateOrder))
	if err != nil {
		return steadyResult{}, err
	}
	defer cons.close()

	var res steadyResult
	res.load[0] = loadAverage()
	stopPerf := prof.startPerf(eng.c.p.Pid(), "engine-steady")
	defer stopPerf()
	win := env.sampler.begin()
	began := time.Now()
	res.pgbench, err = pgbench(ctx, tools, env.url, tmp, o.clients,
		pgbenchrun.Options{Rate: o.rate, Duration: max(time.Second, o.duration.Round(time.Second))})
	if err != nil {
		win.end()
		return res, err
	}
	ended := time.Now()
	log.Info("steady load written; waiting for Kafka to acknowledge it",
		"transactions", res.pgbench.Processed, "tps", res.pgbench.TPS)
	target := int(before.counter(metricProduced)) + res.pgbench.Processed
	read := func(ctx context.Context) (float64, error) {
		mfs, err := eng.metrics(ctx)
		if err != nil {
			return 0, err
		}
		return mfs.counter(metricProduced), nil
	}
	p, err := waitCount(ctx, ended, 20*time.Millisecond, target, read, log, "steady load events acknowledged by Kafka")
	res.cpu = win.end()
	res.load[1] = loadAverage()
	stopPerf()
	if err != nil {
		return res, fmt.Errorf("%w (%s)", err, eng.status(context.WithoutCancel(ctx)))
	}
	res.drain = p.done
	floorTarget := int(floorBefore.counter(metricCaptured)) + res.pgbench.Processed
	readFloor := func(ctx context.Context) (float64, error) {
		mfs, err := floor.metrics(ctx)
		if err != nil {
			return 0, err
		}
		return mfs.counter(metricCaptured), nil
	}
	if _, err := waitCount(ctx, ended, 20*time.Millisecond, floorTarget, readFloor, log, "steady load events decoded by the floor reader"); err != nil {
		return res, err
	}
	floorAfter, err := floor.metrics(ctx)
	if err != nil {
		return res, err
	}
	res.floor = floorAfter.histogram(metricCommitToAck).minus(floorBefore.histogram(metricCommitToAck))

	after, err := eng.metrics(ctx)
	if err != nil {
		return res, err
	}
	res.ack = after.histogram(metricCommitToAck).minus(before.histogram(metricCommitToAck))
	res.gcCycles = after.summaryCount(metricGCDuration) - before.summaryCount(metricGCDuration)
	res.gcMax = after.summaryMax(metricGCDuration)
	if err := waitConsumed(ctx, cons, res.pgbench.Processed); err != nil {
		return res, err
	}
	res.windows = cons.windows(began, windowWidth)
	res.consumed = slices.Clone(cons.close())
	slices.Sort(res.consumed)
	return res, nil
}

// loadAverage is the machine's load averages as /proc/loadavg puts them
// (1, 5, 15 minutes); "n/a" where it is unreadable.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// waitConsumed waits, up to 30s, until the consumer has read n records.
func waitConsumed(ctx context.Context, cons *latencyConsumer, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if cons.count() < n {
			return struct{}{}, errors.New("not all read yet")
		}
		return struct{}{}, nil
	}, every(20*time.Millisecond)...)
	if err != nil {
		return fmt.Errorf("the bench consumer read %d of %d records: %w", cons.count(), n, err)
	}
	return nil
}

// percentile is the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
