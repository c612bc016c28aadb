package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/connect/engine"
)

// metricState is the engine's state gauge.
const metricState = "outboxpay_cdc_state"

// floorReader is the engine's replication reader alone (Options.Discard),
// in this process, on slot A once (a) has drained it: during the steady
// load it decodes the same transactions as the engine process, without
// Kafka. Its commit-to-ack histogram is then commit-to-decoded: what
// Postgres (WAL flush, walsender, decoding), the reader and the scheduling
// of this machine cost before the engine can hand a record to Kafka; the
// engine process's commit-to-ack minus it is the Kafka side's share. Its
// walsender is one more process on the machine during the steady load.
type floorReader struct {
	reg  *prometheus.Registry
	stop context.CancelFunc
	ran  chan error
}

// startFloorReader starts the reader and waits until it has caught up with
// the WAL: a new session decodes again from the slot's restart position,
// which may lie well before its confirmed one (the end of the backlog).
func startFloorReader(ctx context.Context, env *benchEnv, log *slog.Logger) (*floorReader, error) {
	_, cfg, err := env.connectorConfig(slotDecode)
	if err != nil {
		return nil, err
	}
	f := &floorReader{reg: prometheus.NewRegistry(), ran: make(chan error, 1)}
	eng := engine.New("bench-floor", cfg, engine.Options{
		Discard: true,
		Metrics: engine.NewMetrics(f.reg),
		Logger:  log.With("component", "cdc-floor"),
	})
	var runCtx context.Context
	runCtx, f.stop = context.WithCancel(context.WithoutCancel(ctx))
	go func() { f.ran <- eng.Run(runCtx) }()

	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		mfs, err := f.metrics()
		if err != nil {
			return nil, errors.Join(err, f.close())
		}
		if streaming(mfs) {
			break
		}
		select {
		case err := <-f.ran:
			f.ran <- err
			return nil, errors.Join(fmt.Errorf("the floor reader stopped before streaming: %v", err), f.close())
		case <-waitCtx.Done():
			return nil, errors.Join(fmt.Errorf("the floor reader is not streaming: %w", waitCtx.Err()), f.close())
		case <-time.After(20 * time.Millisecond):
		}
	}
	end, err := env.currentLSN(waitCtx)
	if err != nil {
		return nil, errors.Join(err, f.close())
	}
	_, err = backoff.Retry(waitCtx, func() (struct{}, error) {
		st, err := env.slotStats(waitCtx, slotDecode)
		switch {
		case err != nil:
			return struct{}{}, backoff.Permanent(err)
		case st.confirmed < end:
			return struct{}{}, fmt.Errorf("slot %s confirmed to %s, the WAL ends at %s", slotDecode, st.confirmed, end)
		}
		return struct{}{}, nil
	}, every(50*time.Millisecond)...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("the floor reader has not caught up: %w", err), f.close())
	}
	return f, nil
}

// streaming reports whether the engine's state gauge says streaming.
func streaming(mfs families) bool {
	for _, m := range mfs[metricState].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" && l.GetValue() == "streaming" && m.GetGauge().GetValue() == 1 {
				return true
			}
		}
	}
	return false
}

func (f *floorReader) metrics() (families, error) {
	mfs, err := f.reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather the floor reader's metrics: %w", err)
	}
	return byName(mfs), nil
}

// close stops the reader and waits for it, up to 30s.
func (f *floorReader) close() error {
	f.stop()
	select {
	case err := <-f.ran:
		f.ran <- err
		if err != nil {
			return fmt.Errorf("floor reader: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("the floor reader did not stop within 30s")
	}
}
