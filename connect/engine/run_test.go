package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
)

// TestRunRetriesUntilPermanentOrLimit checks Run's retry policy: a
// permanent error fails the task at once, even with errors.max.retries=-1
// (retry forever); a retriable one is retried errors.max.retries times.
func TestRunRetriesUntilPermanentOrLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overrides map[string]string
		want      string
		retries   float64
	}{
		{"permanent: a missing publication", map[string]string{"publication.name": "no_such_publication", "errors.max.retries": "-1"},
			"publication no_such_publication does not exist and publication.autocreate.mode is disabled", 0},
		{"retriable: wrong password, two retries", map[string]string{"database.password": "wrong", "errors.max.retries": "2"},
			"gave up after 2 retries: connect to the database: authentication failed", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.overrides)
			cfg, err := connect.ParseConfig(r.raw)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			e := engine.New("outbox", cfg, engine.Options{Kafka: kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()},
				Metrics: engine.NewMetrics(reg), Logger: testLogger(t)})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = e.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error containing %q", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("Run kept retrying until the test's deadline")
			}
			if got := promtest.Value(t, reg, "outboxpay_cdc_retries_total"); got != tc.retries {
				t.Errorf("retries_total %v, want %v", got, tc.retries)
			}
			if got := promtest.Value(t, reg, "outboxpay_cdc_state"); got != 1 {
				t.Errorf("state gauges sum to %v, want 1 (failed)", got)
			}
		})
	}
}
