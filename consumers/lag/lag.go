// Package lag is the project's lag exporter: a Prometheus collector that, on
// every scrape, asks Kafka (admin API) how far each consumer group is behind
// on the outbox topics, and asks Postgres how far each logical replication
// slot is behind the WAL and how the outbox rows stand.
//
// Because it reads only Kafka's admin API and pg_replication_slots, never the
// CDC engine's own metrics, the dashboards built on it work the same with
// Debezium on Kafka Connect and with the embedded engine.
//
// Nothing is cached: each scrape queries both sources, concurrently, under
// one deadline (Options.Timeout). A source that fails or times out is counted
// in outboxpay_lag_exporter_errors_total{source} and logged; the other
// source's metrics are still reported.
package lag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/logging"
)

// Defaults of Options.
const (
	DefaultTopicPrefix = event.TopicPrefix
	DefaultTimeout     = 5 * time.Second
)

// Error sources, the values of the source label of
// outboxpay_lag_exporter_errors_total.
const (
	sourceKafka    = "kafka"
	sourcePostgres = "postgres"
)

// groupOffsetsParallelism bounds the concurrent ListConsumerGroupOffsets
// calls of one scrape (the admin API takes one group per call).
const groupOffsetsParallelism = 8

// Options configures New.
type Options struct {
	// DB is the application database (lib/pq), where the outbox table and
	// the CDC engine's replication slot live. Required.
	DB *sql.DB
	// Kafka is the cluster (its Bootstrap is required) and the exporter's
	// principal there.
	Kafka kafkaclient.Config
	// Groups are the consumer groups to report. nil reports every group
	// the admin API lists; an empty, non-nil slice reports none (only the
	// topics' high watermarks).
	Groups []string
	// TopicPrefix selects the topics to report, default the event topics'
	// (event.TopicPrefix). The DLQ topics (event.DLQTopic) share the prefix
	// and are included.
	TopicPrefix string
	// Timeout bounds one scrape, both sources together, default 5s.
	Timeout time.Duration
	// Logger receives scrape failures (warn) and the Kafka client's own
	// messages (debug). nil discards them.
	Logger *slog.Logger
}

// Collector is the lag exporter, a prometheus.Collector. Register it with a
// registry; every Gather then queries Kafka and Postgres. Its methods are
// safe for concurrent use.
type Collector struct {
	opts   Options
	logger *slog.Logger

	// producer only carries the admin client's connection and routes the
	// librdkafka log to logger; nothing is produced. A standalone
	// AdminClient cannot forward its log and would write it to stderr.
	producer *kafka.Producer
	admin    *kafka.AdminClient
	drained  chan struct{} // closed when the producer's channels are drained

	// mu is held for reading by a scrape's Kafka queries and for writing
	// by Close, so that the client is never closed under a running call.
	mu     sync.RWMutex
	closed bool

	errors *prometheus.CounterVec

	groupLag      *prometheus.Desc
	committed     *prometheus.Desc
	highWatermark *prometheus.Desc
	slotLag       *prometheus.Desc
	slotActive    *prometheus.Desc
	outboxRows    *prometheus.Desc
	oldestAge     *prometheus.Desc
	scrapeSeconds *prometheus.Desc
}

// New creates the collector and its Kafka admin client, which stays open
// (and reconnects by itself) until Close. It does not contact Kafka or
// Postgres: an unreachable source shows up in the scrapes, not here.
func New(opts Options) (*Collector, error) {
	if opts.DB == nil {
		return nil, errors.New("lag: new collector: Options.DB is nil")
	}
	if strings.TrimSpace(opts.Kafka.Bootstrap) == "" {
		return nil, errors.New("lag: new collector: Options.Kafka.Bootstrap is empty")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("lag: new collector: negative Options.Timeout %v", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = DefaultTopicPrefix
	}
	if opts.Groups != nil {
		opts.Groups = append([]string{}, opts.Groups...)
	}
	logger := opts.Logger
	logger = logging.OrDiscard(logger)
	logger = logger.With("component", "lag-exporter")

	cm := opts.Kafka.ConfigMap()
	for k, v := range (kafka.ConfigMap{
		"client.id":              "outboxpay-lag-exporter",
		"enable.metrics.push":    false,
		"log.connection.close":   false,
		"go.delivery.reports":    false,
		"go.logs.channel.enable": true,
	}) {
		cm[k] = v
	}
	for k, v := range kafkaclient.GoChannelSizes() {
		cm[k] = v
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("lag: create kafka client for %s: %w", opts.Kafka.Bootstrap, err)
	}
	admin, err := kafka.NewAdminClientFromProducer(p)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("lag: create kafka admin client for %s: %w", opts.Kafka.Bootstrap, err)
	}

	const ns = "outboxpay"
	c := &Collector{
		opts:     opts,
		logger:   logger,
		producer: p,
		admin:    admin,
		drained:  make(chan struct{}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "lag_exporter",
			Name: "errors_total", Help: "Scrapes in which querying a source (kafka or postgres) failed, fully or in part."},
			[]string{"source"}),
		groupLag: prometheus.NewDesc(ns+"_consumer_group_lag",
			"Records a consumer group has not committed yet: high watermark minus committed offset, or the whole retained log (high minus low watermark) when the group has committed nothing on the partition.",
			[]string{"group", "topic", "partition"}, nil),
		committed: prometheus.NewDesc(ns+"_consumer_group_committed_offset",
			"Offset a consumer group has committed on a partition (the next record it will read).",
			[]string{"group", "topic", "partition"}, nil),
		highWatermark: prometheus.NewDesc(ns+"_topic_high_watermark",
			"Offset after the last record of a partition.",
			[]string{"topic", "partition"}, nil),
		slotLag: prometheus.NewDesc(ns+"_replication_slot_lag_bytes",
			"WAL between the server's current position and the logical slot's confirmed flush position.",
			[]string{"slot"}, nil),
		slotActive: prometheus.NewDesc(ns+"_replication_slot_active",
			"1 when a client is streaming from the logical slot, else 0.",
			[]string{"slot"}, nil),
		outboxRows: prometheus.NewDesc(ns+"_outbox_rows",
			"Outbox rows by status.", []string{"status"}, nil),
		oldestAge: prometheus.NewDesc(ns+"_outbox_oldest_unfinished_age_seconds",
			"Age of the oldest outbox row that is INIT, PUBLISHED or FAILED (not COMPLETE, nor set aside by an operator: PARKED, DISCARDED); 0 when there is none.", nil, nil),
		scrapeSeconds: prometheus.NewDesc(ns+"_lag_exporter_scrape_seconds",
			"Duration of the last scrape of Kafka and Postgres.", nil, nil),
	}
	// Both series exist from the start, so rate() sees the first error.
	c.errors.WithLabelValues(sourceKafka)
	c.errors.WithLabelValues(sourcePostgres)

	go c.drainKafkaEvents()
	return c, nil
}

// drainKafkaEvents forwards the client's log and error events to the logger
// at debug level (what matters for the metrics surfaces as a scrape error)
// until Close closes both channels.
func (c *Collector) drainKafkaEvents() {
	defer close(c.drained)
	events, logs := c.producer.Events(), c.producer.Logs()
	for events != nil || logs != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			c.logger.Debug("kafka client event", "event", ev.String())
		case l, ok := <-logs:
			if !ok {
				logs = nil
				continue
			}
			c.logger.Debug("kafka client log", "tag", l.Tag, "level", l.Level, "message", l.Message)
		}
	}
}

// Close closes the Kafka client, waiting for a scrape that is querying it.
// Scrapes after Close report the Kafka source as failed. Close does not
// close Options.DB.
func (c *Collector) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.admin.Close()
	c.producer.Close()
	c.mu.Unlock()
	<-c.drained
}

// Describe sends the descriptors of every metric the collector reports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.groupLag, c.committed, c.highWatermark, c.slotLag,
		c.slotActive, c.outboxRows, c.oldestAge, c.scrapeSeconds} {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect queries Kafka and Postgres concurrently, within Options.Timeout,
// and sends what each source gave. A failing source is counted and logged;
// the other one's metrics are sent all the same.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.collectKafka(ctx, ch); err != nil {
			c.errors.WithLabelValues(sourceKafka).Inc()
			c.logger.Warn("lag scrape: kafka", "bootstrap", c.opts.Kafka.Bootstrap, "err", err)
		}
	})
	wg.Go(func() {
		if err := c.collectPostgres(ctx, ch); err != nil {
			c.errors.WithLabelValues(sourcePostgres).Inc()
			c.logger.Warn("lag scrape: postgres", "err", err)
		}
	})
	wg.Wait()

	c.errors.Collect(ch)
	ch <- prometheus.MustNewConstMetric(c.scrapeSeconds, prometheus.GaugeValue, time.Since(start).Seconds())
}
