package consume

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Metrics are the consumer workers' Prometheus metrics, labelled by group.
type Metrics struct {
	handled    *prometheus.CounterVec
	retries    *prometheus.CounterVec
	completion *prometheus.HistogramVec
}

// NewMetrics creates the workers' metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "outboxpay", Subsystem: "consumer",
			Name: "records_total", Help: "Records handled, by outcome: ok, skipped, duplicate, dlq."}, []string{"group", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "outboxpay", Subsystem: "consumer",
			Name: "retries_total", Help: "Retries of records whose handling failed."}, []string{"group"}),
		completion: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "outboxpay", Subsystem: "outbox",
			Name: "commit_to_complete_seconds", Help: "From an outbox row's commit to the moment it became COMPLETE.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}}, []string{"type"}),
	}
	reg.MustRegister(m.handled, m.retries, m.completion)
	// Every type's series exists from the start, so rate() counts the first
	// completions after a restart too.
	for _, t := range event.Types() {
		m.completion.WithLabelValues(t)
	}
	return m
}

// observeCompletion records how long an event took from commit to COMPLETE.
func (m *Metrics) observeCompletion(eventType string, d time.Duration) {
	if m != nil {
		m.completion.WithLabelValues(eventType).Observe(d.Seconds())
	}
}

// groupMetrics are one group's series; nil records nothing.
type groupMetrics struct {
	m     *Metrics
	group string
}

func (m *Metrics) forGroup(group string) *groupMetrics {
	if m == nil {
		return nil
	}
	for _, r := range []string{"ok", "skipped", "duplicate", "dlq"} {
		m.handled.WithLabelValues(group, r)
	}
	m.retries.WithLabelValues(group)
	return &groupMetrics{m: m, group: group}
}

func (g *groupMetrics) handled(result string, n int) {
	if g != nil {
		g.m.handled.WithLabelValues(g.group, result).Add(float64(n))
	}
}

func (g *groupMetrics) retry() {
	if g != nil {
		g.m.retries.WithLabelValues(g.group).Inc()
	}
}
