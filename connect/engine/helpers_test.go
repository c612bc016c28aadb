package engine_test

import (
	"log/slog"
	"testing"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

func pqArray(v []string) any { return pq.Array(v) }

// metricValue sums the values of a counter or gauge over its labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return logtest.T(t, slog.LevelDebug)
}
