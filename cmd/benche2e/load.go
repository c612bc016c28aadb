package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// tokenTTL is the lifetime of the bench's tokens.
const tokenTTL = time.Hour

// payAt pays the orders of rg at rate per second for o.duration, one
// request per order, then waits up to o.drain for their events to become
// COMPLETE and measures them.
func (s *system) payAt(ctx context.Context, rate int, o options, rg orderRange, log *slog.Logger) (rateResult, error) {
	targets := make([]vegeta.Target, rg.n)
	for i := range targets {
		id := rg.first + int64(i)
		tok, err := s.issuer.Token(id, []string{"payments"}, tokenTTL)
		if err != nil {
			return rateResult{}, fmt.Errorf("mint token: %w", err)
		}
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tok)
		h.Set("Content-Type", "application/json")
		h.Set("Idempotency-Key", fmt.Sprintf("bench-e2e-%d", id))
		targets[i] = vegeta.Target{Method: http.MethodPost, URL: fmt.Sprintf("%s/orders/%d/payment", s.apiURL, id), Body: []byte("{}"), Header: h}
	}
	var next atomic.Int64
	targeter := func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if i >= int64(len(targets)) {
			return vegeta.ErrNoTargets
		}
		*t = targets[i]
		return nil
	}

	atk := vegeta.NewAttacker(vegeta.Timeout(o.timeout), vegeta.KeepAlive(true), vegeta.Connections(4096), vegeta.Workers(64))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	res := rateResult{offered: rate, duration: o.duration, codes: map[int]int{}}
	var lat []time.Duration
	sampler, stopSampler := s.startCPUSampler(ctx, log)
	defer stopSampler()
	cpu0 := sampler.snapshot(ctx)
	var last time.Time
	for r := range atk.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, o.duration, fmt.Sprint(rate)) {
		res.sent++
		res.codes[int(r.Code)]++
		if r.Code >= 200 && r.Code < 300 {
			res.ok++
		}
		lat = append(lat, r.Latency)
		if end := r.End(); end.After(last) {
			last = end
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.cpu = window(cpu0, sampler.snapshot(ctx))
	res.devRSS = s.devRSS()
	res.load = loadAverage()
	res.sentRate = float64(res.sent) / o.duration.Seconds()
	res.okRate = float64(res.ok) / o.duration.Seconds()
	res.apiP50, res.apiP99 = percentile(lat, 50), percentile(lat, 99)

	log.Info("load done, waiting for COMPLETE", "rate", rate, "sent", res.sent, "ok", res.ok)
	if err := s.waitComplete(ctx, rg, o.drain, &res); err != nil {
		return res, err
	}
	if !last.IsZero() {
		res.drain = max(0, time.Since(last))
	}
	res.perPayment(window(cpu0, sampler.snapshot(ctx)))
	stopSampler()
	if err := s.commitToComplete(ctx, rg, &res); err != nil {
		return res, err
	}
	return res, s.groupRates(ctx, rg, &res)
}

// groupRates reads how many of rg's events each consumer group handled
// per second, from its first to its last processed_events row of them.
func (s *system) groupRates(ctx context.Context, rg orderRange, res *rateResult) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT p.consumer_group, count(*), extract(epoch FROM max(p.processed_at) - min(p.processed_at))
		FROM processed_events p JOIN outbox o ON o.id = p.event_id
		WHERE (o.payload ->> 'orderId')::bigint BETWEEN $1 AND $2
		GROUP BY p.consumer_group ORDER BY p.consumer_group`, rg.first, rg.first+rg.n-1)
	if err != nil {
		return fmt.Errorf("read consumer groups' rates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g groupRate
		var span float64
		if err := rows.Scan(&g.group, &g.events, &span); err != nil {
			return fmt.Errorf("read consumer groups' rates: %w", err)
		}
		g.perSecond = float64(g.events) / max(span, 1e-3)
		res.groups = append(res.groups, g)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read consumer groups' rates: %w", err)
	}
	return nil
}

// countEvents counts the outbox rows of rg's orders and those COMPLETE.
func (s *system) countEvents(ctx context.Context, rg orderRange) (all, complete int, err error) {
	err = s.db.QueryRowContext(ctx, `
		SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETE') FROM outbox
		WHERE (payload ->> 'orderId')::bigint BETWEEN $1 AND $2`, rg.first, rg.first+rg.n-1).Scan(&all, &complete)
	if err != nil {
		return 0, 0, fmt.Errorf("count events: %w", err)
	}
	return all, complete, nil
}

// waitComplete polls until every event of rg is COMPLETE, or for at most
// wait, and records the counts in res.
func (s *system) waitComplete(ctx context.Context, rg orderRange, wait time.Duration, res *rateResult) error {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		all, complete, err := s.countEvents(ctx, rg)
		if err != nil {
			return err
		}
		res.events, res.complete = all, complete
		if complete == all || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// commitToComplete reads completed_at - created_at of rg's COMPLETE events.
func (s *system) commitToComplete(ctx context.Context, rg orderRange, res *rateResult) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT extract(epoch FROM completed_at - created_at) FROM outbox
		WHERE (payload ->> 'orderId')::bigint BETWEEN $1 AND $2 AND status = 'COMPLETE'`, rg.first, rg.first+rg.n-1)
	if err != nil {
		return fmt.Errorf("read commit-to-COMPLETE: %w", err)
	}
	defer rows.Close()
	var ds []time.Duration
	for rows.Next() {
		var secs float64
		if err := rows.Scan(&secs); err != nil {
			return fmt.Errorf("read commit-to-COMPLETE: %w", err)
		}
		ds = append(ds, time.Duration(secs*float64(time.Second)))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read commit-to-COMPLETE: %w", err)
	}
	res.c2cP50, res.c2cP99 = percentile(ds, 50), percentile(ds, 99)
	return nil
}
