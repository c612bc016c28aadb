package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// groupRig is an embedded Kafka (3 partitions a topic) and a producer.
type groupRig struct {
	t         *testing.T
	bootstrap string
	producer  *kafka.Producer
}

func newGroupRig(t *testing.T) *groupRig {
	t.Helper()
	kc, err := kafkacluster.Start(t.Context(), kafkacluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": kc.Bootstrap(), "broker.address.family": "v4",
		"enable.metrics.push": false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &groupRig{t: t, bootstrap: kc.Bootstrap(), producer: p}
}

// produce sends n records to a partition of topic, with values
// "<partition>/<seq>" for seq from..from+n-1, and waits until Kafka has
// them.
func (r *groupRig) produce(topic string, part int32, from, n int) {
	r.t.Helper()
	delivered := make(chan kafka.Event, n)
	for seq := from; seq < from+n; seq++ {
		if err := r.producer.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: part},
			Key: []byte(strconv.Itoa(int(part))), Value: fmt.Appendf(nil, "%d/%d", part, seq)}, delivered); err != nil {
			r.t.Fatal(err)
		}
	}
	for range n {
		if m := (<-delivered).(*kafka.Message); m.TopicPartition.Error != nil {
			r.t.Fatal(m.TopicPartition.Error)
		}
	}
}

// config is a group's configuration for the tests: short retries.
func (r *groupRig) config(group string, topics ...string) Config {
	return Config{
		Kafka:           kafkaclient.Config{Bootstrap: r.bootstrap},
		Group:           group,
		Topics:          topics,
		RetryInitial:    10 * time.Millisecond,
		RetryMax:        100 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		ConsumerConfig:  map[string]any{"broker.address.family": "v4"},
	}
}

// run runs a group until stop, which returns Run's error; the test's end
// stops it too.
func (r *groupRig) run(cfg Config, h Handler, m *Metrics, logger *slog.Logger) (stop func() error) {
	g := New(cfg, h, m, logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	r.t.Cleanup(func() { _ = stop() })
	return stop
}

// committed returns the group's committed offsets of topic's partitions.
func (r *groupRig) committed(group, topic string) map[int32]int64 {
	r.t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": r.bootstrap, "group.id": group,
		"broker.address.family": "v4", "enable.metrics.push": false})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	var tps []kafka.TopicPartition
	for p := range int32(3) {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
	}
	got, err := c.Committed(tps, 10000)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, tp := range got {
		out[tp.Partition] = int64(tp.Offset)
	}
	return out
}

// seen is what a handler was given, in order.
type seen struct {
	mu   sync.Mutex
	recs []Record
}

func (s *seen) add(recs ...Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
}

func (s *seen) all() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.recs...)
}

// values returns how often each value was handled.
func (s *seen) values() map[string]int {
	out := map[string]int{}
	for _, r := range s.all() {
		out[string(r.Value)]++
	}
	return out
}

// onMessage is a slog.Handler that closes seen when a record with msg is
// logged.
type onMessage struct {
	msg  string
	seen chan struct{}
	once sync.Once
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onMessage) WithGroup(string) slog.Handler            { return h }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

// Each partition's records are handled in offset order, also across
// retries, by a Handler and a BatchHandler alike; the outcomes are counted.
func TestOrderPerPartition(t *testing.T) {
	r := newGroupRig(t)
	const perPartition = 40
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch %v", batch), func(t *testing.T) {
			topic, group := fmt.Sprintf("order-%v", batch), fmt.Sprintf("order-%v", batch)
			for p := range int32(3) {
				r.produce(topic, p, 0, perPartition)
			}
			var got seen
			failed := map[string]bool{} // each record whose seq ends in 3 fails once
			var mu sync.Mutex
			handle := func(_ context.Context, recs []Record) error {
				mu.Lock()
				defer mu.Unlock()
				for _, rec := range recs {
					if v := string(rec.Value); strings.HasSuffix(v, "3") && !failed[v] {
						failed[v] = true
						return errors.New("transient")
					}
				}
				got.add(recs...)
				return nil
			}
			var h Handler = BatchFunc(handle)
			if !batch {
				h = HandlerFunc(func(ctx context.Context, rec Record) error { return handle(ctx, []Record{rec}) })
			}
			m := NewMetrics(prometheus.NewRegistry())
			r.run(r.config(group, topic), h, m, nil)
			eventually.True(t, time.Minute, "every record handled", func() (bool, error) {
				return len(got.all()) >= 3*perPartition, nil
			})
			next := map[int32]int64{}
			for _, rec := range got.all() {
				if want := next[rec.Partition]; rec.Offset != want {
					t.Fatalf("partition %d: offset %d handled after %d", rec.Partition, rec.Offset, want-1)
				}
				if string(rec.Value) != fmt.Sprintf("%d/%d", rec.Partition, rec.Offset) {
					t.Fatalf("record %s holds %q", rec, rec.Value)
				}
				next[rec.Partition]++
			}
			if ok := testutil.ToFloat64(m.handled.WithLabelValues(group, "ok")); ok != 3*perPartition {
				t.Errorf("ok counted %v, want %d", ok, 3*perPartition)
			}
			if retries := testutil.ToFloat64(m.retries.WithLabelValues(group)); retries < 3*4 {
				t.Errorf("retries counted %v, want at least 12", retries)
			}
		})
	}
}

// A batch that keeps failing (one record in it keeps failing, a flaky
// remote service) is tried batchAttempts times, then record by record: the
// records are all handled, in offset order.
func TestFailingBatchIsSplit(t *testing.T) {
	r := newGroupRig(t)
	const n = 30
	topic := "split"
	r.produce(topic, 0, 0, n) // queued before the group starts: it gets batches
	var (
		mu      sync.Mutex
		got     seen
		batches int
		first   = true
	)
	h := BatchFunc(func(_ context.Context, recs []Record) error {
		mu.Lock()
		defer mu.Unlock()
		if len(recs) > 1 {
			batches++
			return errors.New("one of them fails")
		}
		if first { // the backoff lets the rest of the records queue up behind a first record alone
			first = false
			return errors.New("not yet")
		}
		got.add(recs...)
		return nil
	})
	m := NewMetrics(prometheus.NewRegistry())
	r.run(r.config(topic, topic), h, m, nil)
	eventually.True(t, time.Minute, "every record handled", func() (bool, error) {
		return len(got.all()) >= n, nil
	})
	for i, rec := range got.all() {
		if rec.Offset != int64(i) {
			t.Fatalf("offset %d handled as record %d", rec.Offset, i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if batches == 0 || batches%batchAttempts != 0 {
		t.Errorf("%d calls with a batch, want a multiple of %d (each batch tried %d times)", batches, batchAttempts, batchAttempts)
	}
	if ok := testutil.ToFloat64(m.handled.WithLabelValues(topic, "ok")); ok != n {
		t.Errorf("ok counted %v, want %d", ok, n)
	}
}

// Shutting down lets the record in progress finish and commits its
// offset; one that does not finish within ShutdownTimeout is abandoned
// (its context is canceled) and its offset is not stored, so it is
// consumed again, as are the records queued behind it.
func TestShutdown(t *testing.T) {
	r := newGroupRig(t)
	for _, tc := range []struct {
		name   string
		finish bool // the record in progress finishes once shutdown starts
	}{
		{"in-flight work finishes", true},
		{"in-flight work abandoned", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := strings.ReplaceAll(tc.name, " ", "-")
			group := topic
			r.produce(topic, 0, 0, 10)
			var got seen
			inFlight, release := make(chan struct{}), make(chan struct{})
			canceled := make(chan struct{}, 1)
			h := HandlerFunc(func(ctx context.Context, rec Record) error {
				if rec.Offset == 5 {
					close(inFlight)
					select {
					case <-release:
					case <-ctx.Done():
						canceled <- struct{}{}
						return ctx.Err()
					}
				}
				got.add(rec)
				return nil
			})
			cfg := r.config(group, topic)
			cfg.ShutdownTimeout = 500 * time.Millisecond
			if tc.finish {
				cfg.ShutdownTimeout = time.Minute
			}
			stopping := &onMessage{msg: "partitions stopping: finishing the records in progress", seen: make(chan struct{})}
			stop := r.run(cfg, h, nil, slog.New(stopping))
			select {
			case <-inFlight:
			case <-time.After(time.Minute):
				t.Fatal("the group did not reach offset 5")
			}
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			if tc.finish {
				<-stopping.seen // the record is still in progress when the shutdown starts
				close(release)
			}
			if err := <-stopped; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !tc.finish {
				select {
				case <-canceled:
				default:
					t.Fatal("the abandoned record's context was not canceled")
				}
			}
			// What was handled is committed, and nothing else: offsets 0-4,
			// and the one in flight if it finished; the queued ones are dropped.
			want := int64(5)
			if tc.finish {
				want = 6
			}
			if c, handled := r.committed(group, topic)[0], len(got.all()); c != want || handled != int(want) {
				t.Fatalf("committed offset %d, %d records handled; want %d: %v", c, handled, want, got.values())
			}

			// The next run starts at the committed offset.
			var again seen
			r.run(cfg, HandlerFunc(func(_ context.Context, rec Record) error { again.add(rec); return nil }), nil, nil)
			eventually.True(t, time.Minute, "the rest consumed again", func() (bool, error) {
				return len(again.all()) == int(10-want), nil
			})
			if first := again.all()[0].Offset; first != want {
				t.Fatalf("the next run started at offset %d, want %d", first, want)
			}
		})
	}
}

// A partition taken from a member is committed before it is handed over:
// with the periodic commit out of the way, the member that gets it goes on
// from where the first left off, and no record is handled twice.
func TestCommitOnRevoke(t *testing.T) {
	r := newGroupRig(t)
	const topic, group, n = "revoke", "revoke", 10
	cfg := r.config(group, topic)
	cfg.ConsumerConfig["auto.commit.interval.ms"] = 3_600_000
	var a, b seen
	r.run(cfg, HandlerFunc(func(_ context.Context, rec Record) error { a.add(rec); return nil }), nil, nil)
	for p := range int32(3) {
		r.produce(topic, p, 0, n)
	}
	eventually.True(t, time.Minute, "the first member handles everything", func() (bool, error) {
		return len(a.all()) == 3*n, nil
	})
	r.run(cfg, HandlerFunc(func(_ context.Context, rec Record) error { b.add(rec); return nil }), nil, nil)
	round := 0
	eventually.TrueEvery(t, time.Minute, 500*time.Millisecond, "the second member handles records", func() (bool, error) {
		round++
		for p := range int32(3) {
			r.produce(topic, p, round*n, n)
		}
		err := eventually.Wait(time.Minute, func() (bool, error) {
			return len(a.values())+len(b.values()) >= 3*n*(round+1), nil
		})
		return len(b.all()) > 0, err
	})
	counts := a.values()
	for v, c := range b.values() {
		counts[v] += c
	}
	for v, c := range counts {
		if c != 1 {
			t.Errorf("%s handled %d times", v, c)
		}
	}
}

// A record that fails permanently, or whose retries are used up, goes to
// its topic's DLQ with the reason and its origin; the records behind it are
// handled. In a batch, only the poison record goes.
func TestDeadLetter(t *testing.T) {
	r := newGroupRig(t)
	errPoison := errors.New("poison")
	for _, tc := range []struct {
		name   string
		err    error // the poison record's error, every time
		batch  bool
		reason string
		tries  int // the poison record's attempts, 0 = not checked
	}{
		{"permanent", backoff.Permanent(errPoison), false, "poison", 1},
		{"tries used up", RetryUpTo(3, errPoison), false, "gave up after 3 tries: poison", 3},
		{"visibility window over", RetryWhileRecent(errPoison), false, "after the group first saw the record", 0},
		{"in a batch", backoff.Permanent(errPoison), true, "poison", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := strings.ReplaceAll(tc.name, " ", "-")
			group := "dlq-" + topic
			r.produce(topic, 1, 0, 10)
			var got seen
			var mu sync.Mutex
			tries := 0
			handle := func(_ context.Context, recs []Record) error {
				for _, rec := range recs {
					if rec.Offset == 3 {
						mu.Lock()
						tries++
						mu.Unlock()
						return tc.err
					}
				}
				got.add(recs...)
				return nil
			}
			var h Handler = BatchFunc(handle)
			if !tc.batch {
				h = HandlerFunc(func(ctx context.Context, rec Record) error { return handle(ctx, []Record{rec}) })
			}
			cfg := r.config(group, topic)
			cfg.VisibilityWindow = time.Second
			m := NewMetrics(prometheus.NewRegistry())
			r.run(cfg, h, m, nil)
			dead := kafkatest.ReadAll(t, r.bootstrap, []string{event.DLQTopic(topic)}, 1, time.Minute)
			eventually.True(t, time.Minute, "the other records handled", func() (bool, error) {
				return len(got.all()) == 9, nil
			})
			d := dead[0]
			for h, want := range map[string]string{event.HeaderDLQReason: tc.reason, event.HeaderDLQHandler: group,
				event.HeaderDLQTopic: topic, event.HeaderDLQPartition: "1", event.HeaderDLQOffset: "3"} {
				if v := kafkatest.Header(d, h); !strings.Contains(v, want) {
					t.Errorf("DLQ header %s = %q, want %q in it", h, v, want)
				}
			}
			if string(d.Value) != "1/3" || string(d.Key) != "1" {
				t.Errorf("DLQ record %q=%q, want the poison one", d.Key, d.Value)
			}
			if v := got.values(); len(v) != 9 || v["1/3"] != 0 {
				t.Errorf("handled %v", v)
			}
			if tc.tries != 0 && tries != tc.tries {
				t.Errorf("the poison record was tried %d times, want %d", tries, tc.tries)
			}
			if dlq, ok := testutil.ToFloat64(m.handled.WithLabelValues(group, "dlq")), testutil.ToFloat64(m.handled.WithLabelValues(group, "ok")); dlq != 1 || ok != 9 {
				t.Errorf("counted dlq %v, ok %v; want 1, 9", dlq, ok)
			}
		})
	}
}

// A partition whose queue is full is paused and rewound, and resumed once
// the queue drains: no record is lost or handled twice, and the order holds.
func TestPauseResume(t *testing.T) {
	r := newGroupRig(t)
	const topic, group, n = "pause", "pause", queueSize + 500
	r.produce(topic, 2, 0, n)
	var got seen
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, rec Record) error {
		if rec.Offset == 0 {
			<-release
		}
		got.add(rec)
		return nil
	})
	paused := &onMessage{msg: "partition paused: its queue is full", seen: make(chan struct{})}
	r.run(r.config(group, topic), h, nil, slog.New(paused))
	select {
	case <-paused.seen:
	case <-time.After(time.Minute):
		t.Fatal("the partition was not paused")
	}
	close(release)
	eventually.True(t, time.Minute, "every record handled", func() (bool, error) { return len(got.all()) >= n, nil })
	for i, rec := range got.all() {
		if rec.Offset != int64(i) {
			t.Fatalf("record %d handled at position %d", rec.Offset, i)
		}
	}
	if len(got.all()) != n {
		t.Fatalf("%d records handled, want %d", len(got.all()), n)
	}
}
