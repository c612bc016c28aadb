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
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
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

// TestDiscardCountsRecordsProduced checks that Options.Discard, which drops
// every record as if Kafka had acknowledged it at once, reports them as
// produced, with their commit-to-ack latency (make bench-cdc's floor reader
// measures with it).
func TestDiscardCountsRecordsProduced(t *testing.T) {
	r := newRig(t, nil)
	cfg, err := connect.ParseConfig(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e := engine.New("outbox", cfg, engine.Options{Discard: true, Metrics: engine.NewMetrics(reg), Logger: testLogger(t)})
	runtest.Background(t, e.Run)
	r.waitStreaming()
	r.insert("order", "o-1", 3)
	eventually.True(t, 30*time.Second, "3 records produced", func() (bool, error) {
		return promtest.Value(t, reg, "outboxpay_cdc_events_produced_total") == 3, nil
	})
	for _, name := range []string{"outboxpay_cdc_events_captured_total", "outboxpay_cdc_commit_to_ack_seconds"} {
		if got := promtest.Value(t, reg, name); got != 3 {
			t.Errorf("%s = %v, want 3", name, got)
		}
	}
}
