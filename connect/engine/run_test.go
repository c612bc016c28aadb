package engine_test

import (
	"context"
	"database/sql"
	"fmt"
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
		insert    bool // commit an outbox row once the engine streams
	}{
		{"permanent: a missing publication", map[string]string{"publication.name": "no_such_publication", "errors.max.retries": "-1"},
			"publication no_such_publication does not exist and publication.autocreate.mode is disabled", 0, false},
		{"retriable: wrong password, two retries", map[string]string{"database.password": "wrong", "errors.max.retries": "2"},
			"gave up after 2 retries: connect to the database: authentication failed", 2, false},
		// As Debezium's EventRouter with table.fields.additional.error.on.missing
		// (true by default), at the first row; a NULL column is a null header
		// (TestRecordTimestampAndNullHeader).
		{"permanent: a placed column the table lacks", map[string]string{
			"transforms.outbox.table.fields.additional.placement": "type:header:eventType,note:header:note"},
			`the outbox table has no column "note", which table.fields.additional.placement places as header "note"`, 0, true},
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
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			if tc.insert {
				r.waitStreaming()
				r.insert("order", "7", 1)
			}
			err = <-done
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

// After a retriable error the engine restarts the task as Debezium's
// BaseSourceTask and ErrorHandler do: after retriable.restart.connector.wait.ms
// each time (a fixed wait, not a growing one), and it fails once
// errors.max.retries consecutive failures have been retried; a session that
// produced a record resets the count.
func TestRetriableRestart(t *testing.T) {
	const wait = 1500 * time.Millisecond
	r := newRig(t, map[string]string{"errors.max.retries": "1", "retriable.restart.connector.wait.ms": fmt.Sprint(wait.Milliseconds())})
	cfg, err := connect.ParseConfig(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e := engine.New("outbox", cfg, engine.Options{Kafka: kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()},
		ProducerConfig: map[string]any{"broker.address.family": "v4"}, Metrics: engine.NewMetrics(reg), Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.waitStreaming()

	// kill ends the engine's replication connection and returns when the
	// engine streams again, or fails the test if it ended instead.
	slotPID := func() (int, error) {
		var pid sql.NullInt64
		err := r.db.QueryRow(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, r.slot).Scan(&pid)
		return int(pid.Int64), err
	}
	// kill first waits for the slot to be confirmed up to now, so the next
	// session does not send again what this one sent.
	kill := func() (pid int) {
		t.Helper()
		var now string
		if err := r.db.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&now); err != nil {
			t.Fatal(err)
		}
		eventually.True(t, time.Minute, "slot confirmed to "+now, func() (bool, error) {
			var ok bool
			err := r.db.QueryRow(`SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, r.slot, now).Scan(&ok)
			return err == nil && ok, err
		})
		eventually.True(t, time.Minute, "the engine's walsender", func() (bool, error) {
			var err error
			pid, err = slotPID()
			return err == nil && pid != 0, err
		})
		if _, err := r.db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	for i := range 2 {
		ids := r.insert("order", fmt.Sprint("k", i), 1)
		r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
		old := kill()
		killed := time.Now()
		eventually.True(t, time.Minute, "streaming again", func() (bool, error) {
			select {
			case err := <-done:
				done <- err
				return false, fmt.Errorf("run ended after %d restarts: %v", i, err)
			default:
			}
			pid, err := slotPID()
			return err == nil && pid != 0 && pid != old, err
		})
		if took := time.Since(killed); took < wait {
			t.Fatalf("restart %d after %v, want at least retriable.restart.connector.wait.ms (%v)", i+1, took, wait)
		}
		if got := promtest.Value(t, reg, "outboxpay_cdc_retries_total"); got != float64(i+1) {
			t.Fatalf("retries_total %v after %d restarts", got, i+1)
		}
	}
	// No record since the last restart: this failure is the second in a
	// row, beyond errors.max.retries=1.
	kill()
	select {
	case err := <-done:
		done <- err
		if err == nil || !strings.Contains(err.Error(), "gave up after 1 retries") {
			t.Fatalf("Run: %v, want it to give up after 1 retry", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the engine kept retrying beyond errors.max.retries")
	}
}
