package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics, labelled by connector name.
type Metrics struct {
	captured      *prometheus.CounterVec
	produced      *prometheus.CounterVec
	produceErrors *prometheus.CounterVec
	retries       *prometheus.CounterVec
	behindSource  *prometheus.GaugeVec
	slotLag       *prometheus.GaugeVec
	lastEvent     *prometheus.GaugeVec
	state         *prometheus.GaugeVec
	commitToAck   *prometheus.HistogramVec
}

// Engine states reported by the state metric.
const (
	stateStarting  = "starting"
	stateStreaming = "streaming"
	stateRetrying  = "retrying"
	stateStopped   = "stopped"
	stateFailed    = "failed"
)

var engineStates = []string{stateStarting, stateStreaming, stateRetrying, stateStopped, stateFailed}

// NewMetrics creates the engine's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "outboxpay", "cdc"
	l := []string{"connector"}
	m := &Metrics{
		captured: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_captured_total", Help: "Outbox inserts read from the replication slot."}, l),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_produced_total", Help: "Records acknowledged by Kafka (acks=all)."}, l),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "produce_errors_total", Help: "Records Kafka failed to acknowledge."}, l),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "retries_total", Help: "Streaming sessions restarted after a retriable error."}, l),
		behindSource: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "milliseconds_behind_source", Help: "Commit time to Kafka acknowledgement of the last record."}, l),
		slotLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "slot_lag_bytes", Help: "WAL between the server's current position and the slot's confirmed position."}, l),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "last_event_timestamp_seconds", Help: "Commit time of the last record acknowledged by Kafka."}, l),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "state", Help: "1 for the engine's current state."}, []string{"connector", "state"}),
		commitToAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "commit_to_ack_seconds", Help: "Commit time to Kafka acknowledgement, per record.",
			Buckets: []float64{.001, .002, .003, .005, .0075, .01, .015, .02, .025, .035, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, l),
	}
	reg.MustRegister(m.captured, m.produced, m.produceErrors, m.retries, m.behindSource, m.slotLag,
		m.lastEvent, m.state, m.commitToAck)
	return m
}

// connectorMetrics are one connector's series, looked up once: the hot path
// updates them per record. A nil *connectorMetrics records nothing.
type connectorMetrics struct {
	all                                        *Metrics
	name                                       string
	captured, produced, produceErrors, retries prometheus.Counter
	behindSource, slotLag, lastEvent           prometheus.Gauge
	commitToAck                                prometheus.Observer
}

func (m *Metrics) forConnector(name string) *connectorMetrics {
	if m == nil {
		return nil
	}
	return &connectorMetrics{
		all:           m,
		name:          name,
		captured:      m.captured.WithLabelValues(name),
		produced:      m.produced.WithLabelValues(name),
		produceErrors: m.produceErrors.WithLabelValues(name),
		retries:       m.retries.WithLabelValues(name),
		behindSource:  m.behindSource.WithLabelValues(name),
		slotLag:       m.slotLag.WithLabelValues(name),
		lastEvent:     m.lastEvent.WithLabelValues(name),
		commitToAck:   m.commitToAck.WithLabelValues(name),
	}
}

func (c *connectorMetrics) capturedOne() {
	if c != nil {
		c.captured.Inc()
	}
}

func (c *connectorMetrics) producedOne(commitTime time.Time) {
	if c == nil {
		return
	}
	behind := time.Since(commitTime)
	c.produced.Inc()
	c.behindSource.Set(float64(behind.Milliseconds()))
	c.commitToAck.Observe(behind.Seconds())
	c.lastEvent.Set(float64(commitTime.UnixMilli()) / 1000)
}

func (c *connectorMetrics) produceError() {
	if c != nil {
		c.produceErrors.Inc()
	}
}

func (c *connectorMetrics) retry() {
	if c != nil {
		c.retries.Inc()
	}
}

func (c *connectorMetrics) setSlotLag(bytes float64) {
	if c != nil {
		c.slotLag.Set(bytes)
	}
}

func (c *connectorMetrics) setState(state string) {
	if c != nil {
		c.all.setState(c.name, state)
	}
}

func (m *Metrics) setState(connector, state string) {
	for _, s := range engineStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(connector, s).Set(v)
	}
}
