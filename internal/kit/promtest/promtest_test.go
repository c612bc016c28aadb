package promtest_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/kit/promtest"
)

// Value sums the series that carry the given labels, whatever the metric's
// kind.
func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	records := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "records_total"}, []string{"group", "result"})
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "leader"})
	cycle := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cycle_seconds"})
	reg.MustRegister(records, leader, cycle)
	records.WithLabelValues("stock", "ok").Add(3)
	records.WithLabelValues("stock", "duplicate").Add(2)
	records.WithLabelValues("platform", "ok").Add(5)
	leader.Set(1)
	cycle.Observe(0.1)
	cycle.Observe(0.2)

	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"all series", "records_total", nil, 10},
		{"one label", "records_total", []string{"result", "ok"}, 8},
		{"two labels", "records_total", []string{"group", "stock", "result", "duplicate"}, 2},
		{"no such series", "records_total", []string{"group", "tracker"}, 0},
		{"gauge", "leader", nil, 1},
		{"histogram counts samples", "cycle_seconds", nil, 2},
		{"no such metric", "absent_total", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := promtest.Value(t, reg, tc.metric, tc.labels...); got != tc.want {
				t.Errorf("Value(%s, %v) = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
}
