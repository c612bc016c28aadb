package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/connect/engine"
)

// stallAfter is how long a pass may go without progress before it fails.
const stallAfter = time.Minute

// passResult is one drain of the backlog.
type passResult struct {
	events     int
	elapsed    time.Duration // from start (process start, registration) to the last event
	firstEvent time.Duration // from start to the first event; 0 when not observed
	cpu        cpuUsage
	slot       slotStats // the slot afterwards, as Postgres reports it
	note       string
	runtime    runtimeStats // (c): the engine process's Go runtime
}

// runtimeStats are the engine process's Go runtime figures.
type runtimeStats struct {
	gcCycles  uint64 // during the pass
	heapInUse uint64 // bytes, at the end
	goSys     uint64 // bytes the Go runtime holds from the OS, at the end
}

func (p passResult) rate() float64 { return float64(p.events) / p.elapsed.Seconds() }

// progress is how a counter reached its target.
type progress struct {
	first, done time.Duration // since start: first movement, target reached
}

// waitCount polls read every interval until it reaches target. It fails
// when read fails, ctx ends, or the count stalls for stallAfter.
func waitCount(ctx context.Context, start time.Time, interval time.Duration, target int,
	read func(context.Context) (float64, error), log *slog.Logger, what string) (progress, error) {
	var (
		p         progress
		last      = -1.0
		lastMoved = time.Now()
		lastLog   = time.Now()
	)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		v, err := read(ctx)
		now := time.Now()
		if err != nil {
			return p, err
		}
		if v > 0 && p.first == 0 {
			p.first = now.Sub(start)
		}
		if v >= float64(target) {
			p.done = now.Sub(start)
			return p, nil
		}
		if v != last {
			last, lastMoved = v, now
		} else if now.Sub(lastMoved) > stallAfter {
			return p, fmt.Errorf("%s stalled at %.0f of %d for %v", what, v, target, stallAfter)
		}
		if now.Sub(lastLog) >= 5*time.Second {
			log.Info("progress", "what", what, "count", int64(v), "of", target)
			lastLog = now
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("%s at %.0f of %d: %w", what, v, target, ctx.Err())
		case <-t.C:
		}
	}
}

// decodePass is (a): the engine's own replication reader, in this process,
// on slot A, building every record and dropping it (Options.Discard). Its
// rate is the rate at which this Postgres can decode the backlog for the
// engine. It ends when the engine has captured every backlog event.
func decodePass(ctx context.Context, env *benchEnv, events int, prof *profiler, log *slog.Logger) (passResult, error) {
	_, cfg, err := env.connectorConfig(slotDecode)
	if err != nil {
		return passResult{}, err
	}
	reg := prometheus.NewRegistry()
	eng := engine.New("bench-decode", cfg, engine.Options{
		Discard: true,
		Metrics: engine.NewMetrics(reg),
		Logger:  log.With("component", "cdc-decode"),
	})

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	runCtx, stopEngine := context.WithCancel(ctx)
	defer stopEngine()
	stopProfile := prof.startGo("decode-inprocess")
	win := env.sampler.begin()
	start := time.Now()
	ran := make(chan error, 1)
	go func() { ran <- eng.Run(runCtx) }()

	read := func(context.Context) (float64, error) {
		select {
		case err := <-ran:
			ran <- err // for the wait below
			if err == nil {
				err = errors.New("engine.Run returned nil")
			}
			return 0, fmt.Errorf("engine stopped before the end of the backlog: %w", err)
		default:
		}
		mfs, err := reg.Gather()
		if err != nil {
			return 0, fmt.Errorf("gather engine metrics: %w", err)
		}
		return byName(mfs).counter(metricCaptured), nil
	}
	p, err := waitCount(ctx, start, 10*time.Millisecond, events, read, log, "(a) events captured")
	cpu := win.end()
	stopProfile()
	prof.writeAllocs("decode-inprocess")
	stopEngine()
	select {
	case runErr := <-ran:
		if runErr != nil && err == nil {
			err = fmt.Errorf("engine: %w", runErr)
		}
	case <-time.After(30 * time.Second):
		err = errors.Join(err, errors.New("engine did not stop within 30s"))
	}
	if err != nil {
		return passResult{}, err
	}

	res := passResult{events: events, elapsed: p.done, firstEvent: p.first, cpu: cpu}
	if err := env.slotInactive(ctx, slotDecode, 30*time.Second); err != nil {
		return res, err
	}
	if res.slot, err = env.slotStats(ctx, slotDecode); err != nil {
		return res, err
	}
	log.Info("(a) done", "events", events, "took", res.elapsed.Round(time.Millisecond), "events_per_s", int(res.rate()))
	return res, nil
}
