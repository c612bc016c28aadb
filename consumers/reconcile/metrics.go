package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Actions, the values of the action label of outboxpay_reconciler_actions_total.
const (
	ActionRestartConnector   = "restart_connector"
	ActionRepublishInit      = "republish_init"
	ActionRepublishPublished = "republish_published"
	ActionMarkFailed         = "mark_failed"
	ActionDeleteComplete     = "delete_complete"
	// ActionDeleteIdempotencyKeys counts idempotency keys deleted by retention.
	ActionDeleteIdempotencyKeys = "delete_idempotency_keys"
	// ActionExpireOrder counts orders marked EXPIRED.
	ActionExpireOrder = "expire_order"
)

// Steps of a cycle, the values of the step label of
// outboxpay_reconciler_errors_total.
const (
	stepLock      = "lock"
	stepConnector = "connector"
	stepRepublish = "republish"
	stepFail      = "mark_failed"
	stepRetention = "retention"
	// stepKeyRetention is the retention of idempotency keys.
	stepKeyRetention = "idempotency_key_retention"
	// stepExpiry is the expiry of unpaid orders.
	stepExpiry = "order_expiry"
)

// metrics are the reconciler's Prometheus metrics.
type metrics struct {
	actions    *prometheus.CounterVec
	failedRows prometheus.Gauge
	leader     prometheus.Gauge
	cycle      prometheus.Histogram
	errors     *prometheus.CounterVec
}

// newMetrics creates the metrics and registers them on reg (nil: not
// registered).
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxpay_reconciler_actions_total",
			Help: "What the reconciler did: connector restarts, rows republished, rows marked FAILED, COMPLETE rows and idempotency keys deleted.",
		}, []string{"action"}),
		failedRows: f.NewGauge(prometheus.GaugeOpts{
			Name: "outboxpay_reconciler_failed_rows",
			Help: "Outbox rows in status FAILED after the last cycle; alert when above zero.",
		}),
		leader: f.NewGauge(prometheus.GaugeOpts{
			Name: "outboxpay_reconciler_leader",
			Help: "1 while this instance holds the reconciler lock and acts, 0 while it stands by.",
		}),
		cycle: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "outboxpay_reconciler_cycle_seconds",
			Help:    "Duration of reconciler cycles.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9), // 5ms .. ~5.5min
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxpay_reconciler_errors_total",
			Help: "Errors of the reconciler by step (lock, connector, republish, mark_failed, retention, idempotency_key_retention).",
		}, []string{"step"}),
	}
	for _, a := range []string{ActionRestartConnector, ActionRepublishInit, ActionRepublishPublished,
		ActionMarkFailed, ActionDeleteComplete, ActionDeleteIdempotencyKeys, ActionExpireOrder} {
		m.actions.WithLabelValues(a)
	}
	for _, s := range []string{stepLock, stepConnector, stepRepublish, stepFail, stepRetention, stepKeyRetention, stepExpiry} {
		m.errors.WithLabelValues(s)
	}
	return m
}
