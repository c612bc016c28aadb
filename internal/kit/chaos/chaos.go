// Package chaos runs the whole system as separate processes under load,
// kills and restarts every part of it on a seeded schedule, then checks the
// invariants the design promises: money and stock conserved, every paid
// order COMPLETE or refunded, every event on Kafka, every side effect
// applied once. `make chaos` runs it; a short profile runs in `make test`.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/outboxpay/outboxpay/internal/logging"
)

// Config is one run.
type Config struct {
	// Binary is the outboxpay binary every process runs.
	Binary string
	// Dir holds Postgres, Kafka and the processes' logs.
	Dir string
	// Duration is how long load and faults last.
	Duration time.Duration
	// Seed makes the load and the fault schedule repeatable.
	Seed uint64
	// Rate is the orders (each then paid) per second.
	Rate float64
	// Faults is how many faults of each kind to inject.
	Faults map[Kind]int
	// StuckAfter is the reconciler's stuck-after; it republishes INIT rows
	// after twice that and PUBLISHED rows after three times.
	StuckAfter time.Duration
	// Pause is how long the connector stays paused (beyond the
	// reconciler's thresholds); Degrade how long the platform misbehaves.
	Pause, Degrade time.Duration
	// ConvergeTimeout bounds the wait for convergence after the faults.
	ConvergeTimeout time.Duration
	// Replicas is how many processes of each consumer group (same group
	// id) and of the API (behind the same database, the load spread over
	// them in turn) run; 0 means 1. With two or more, each group's records
	// must have been shared by all its replicas.
	Replicas int
	// DrainPayments, with Replicas >= 2, adds a throughput phase after the
	// faults: a backlog of that many payments drained by 1, then Replicas,
	// processes of each group (see Report.Drains). 0 skips it.
	DrainPayments int64
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// DefaultFaults is the default profile's schedule: each process killed
// three times, Postgres and Kafka restarted twice, the platform failing,
// timing out and slow twice each, the connector paused once.
func DefaultFaults() map[Kind]int {
	return map[Kind]int{KillConnect: 3, KillStock: 3, KillDataPlatform: 3, KillTracker: 3, KillReconciler: 3,
		KillAPI: 3, RestartPostgres: 2, RestartKafka: 2, Platform5xx: 2, PlatformTimeouts: 2, PlatformSlow: 2,
		PauseConnector: 1}
}

// ReplicaFaults is the replicas profile's schedule: the default one (each
// kill hits one replica, chosen by the seed) plus three kills of a
// consumer replica while its group rebalances.
func ReplicaFaults() map[Kind]int {
	f := DefaultFaults()
	f[KillMidRebalance] = 3
	return f
}

func (c Config) replicas() int { return max(1, c.Replicas) }

// Report is what a run did and found.
type Report struct {
	Seed                 uint64
	Duration             time.Duration
	Faults               map[Kind]int
	Crashes              map[string]int // process exits the run did not cause
	Orders, Payments     int64
	OrdersRefused        int64 // 409/4xx at order time (stock short, ...)
	PaymentsRefused      int64
	Unknown              int64 // requests without a definite answer
	RateLimited          int64 // 429 answers (each retried after its Retry-After)
	AuthRefused          int64 // 401/403 answers to the load's tokens: must be 0
	Races                int64 // two orders racing for a detail's last units
	Events               int
	KafkaRecords         int
	EngineDuplicates     int
	ReconcilerDuplicates int
	PlatformFirst        int
	PlatformDuplicates   int // duplicates delivered to the platform (absorbed)
	DuplicatesApplied    int // must be 0
	PaidOrders           int
	Refunds              int
	MinStock             int64
	Converged            time.Duration // from the end of the last fault to convergence
	ConvergedAfterLoad   time.Duration // from the end of the load (faults cleared) to convergence
	MaxCommitToComplete  time.Duration
	// Replicas is the processes per consumer group and of the API.
	Replicas int
	// Shares is what each consumer replica handled over the run, by group
	// and process (lower bounds: see shares); only with Replicas >= 2.
	Shares map[string]map[string]share
	// MidRebalance counts the KillMidRebalance kills that found their group
	// rebalancing, as Kafka described it.
	MidRebalance int
	// Drains are the throughput phase's passes (1, then Replicas).
	Drains     []Drain
	Violations []string
}

// OK reports whether every invariant held.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Run starts the system, drives it through the faults, waits for
// convergence and checks the invariants. It stops every process it started
// before returning, also when ctx is canceled. The error is for a run that
// could not be carried out; broken invariants are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Logger = logging.OrDiscard(cfg.Logger)
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Binary == "" || cfg.Dir == "" {
		return nil, errors.New("chaos: Binary, Dir, a positive Duration and Rate are required")
	}
	if cfg.Faults[KillMidRebalance] > 0 && cfg.replicas() < 2 {
		return nil, fmt.Errorf("chaos: fault %s needs Replicas >= 2", KillMidRebalance)
	}
	logger := cfg.Logger
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))

	logger.Info("starting the system", "dir", cfg.Dir)
	s, err := startSystem(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("chaos: start the system: %w", err)
	}
	defer s.close()

	// The load's tokens outlive the run: requests in flight when the load
	// ends are retried for up to two minutes.
	sd, err := seed(ctx, s.db, s.apiURLs[0], s.issuer, cfg.Duration+cfg.ConvergeTimeout+time.Hour, rng)
	if err != nil {
		return nil, fmt.Errorf("chaos: seed: %w", err)
	}
	logger.Info("seeded", "users", len(sd.users), "details", len(sd.details), "charged", sd.charged)

	// Stock is sampled through the whole run: it must never go negative.
	var minStock sampledMin
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { defer sampler.Done(); minStock.sample(sampleCtx, s) }()
	defer func() { stopSampling(); sampler.Wait() }()
	// Each consumer replica's handled records, from its /metrics.
	sh := newShares()
	sampler.Add(1)
	go func() { defer sampler.Done(); sh.run(sampleCtx, s) }()

	l := &load{apis: s.apiURLs, seed: sd, rate: cfg.Rate, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
		client: &http.Client{Timeout: 10 * time.Second}, soldOut: map[int64]bool{}}
	in := &injector{s: s, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), pause: cfg.Pause,
		degrade: cfg.Degrade, done: map[Kind]int{}}
	faults := schedule(cfg.Faults, cfg.Duration, rng)
	logger.Info("load and faults", "duration", cfg.Duration, "rate", cfg.Rate, "faults", len(faults))

	start := time.Now()
	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.run(runCtx) }()
	go func() { defer wg.Done(); in.run(ctx, start, faults) }() // a fault under way completes
	<-runCtx.Done()
	stopRun()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chaos: interrupted: %w", err)
	}
	if in.lastEnd.IsZero() {
		in.lastEnd = time.Now()
	}
	logger.Info("load and faults over; waiting for convergence", "payments", l.stats.payments.Load())

	// Faults over: every process up, the platform healthy, the connector running.
	if err := s.ensureRunning(); err != nil {
		return nil, fmt.Errorf("chaos: restart processes: %w", err)
	}
	if err := in.setPlatformFaults(ctx, map[string]any{}); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	settled := time.Now()
	err = poll(ctx, cfg.ConvergeTimeout, "convergence (no outbox row INIT or PUBLISHED)", func() (bool, error) {
		var pending int
		err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE status IN ('INIT', 'PUBLISHED')`).Scan(&pending)
		return err == nil && pending == 0, err
	})
	converged, afterLoad := time.Since(in.lastEnd), time.Since(settled)
	if err != nil {
		logger.Warn("no convergence", "err", err)
		for _, line := range s.describeGroups(ctx) {
			logger.Warn("consumer groups as Kafka describes them", "group", line)
		}
	}
	logger.Info("checking invariants", "converged_after_last_fault", converged.Round(time.Millisecond),
		"after_faults_cleared", time.Since(settled).Round(time.Millisecond))

	var drains []Drain
	if cfg.DrainPayments > 0 && cfg.replicas() >= 2 && err == nil {
		logger.Info("throughput phase", "payments", cfg.DrainPayments, "replicas", cfg.replicas())
		drains, err = drain(ctx, s, &sd, sh, cfg.DrainPayments, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chaos: interrupted: %w", ctx.Err())
			}
			err = fmt.Errorf("throughput phase: %w", err)
			logger.Warn("throughput phase", "err", err)
			if rerr := s.ensureRunning(); rerr != nil {
				return nil, fmt.Errorf("chaos: restart processes: %w", rerr)
			}
		}
		if perr := poll(ctx, cfg.ConvergeTimeout, "convergence after the throughput phase", func() (bool, error) {
			var pending int
			err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE status IN ('INIT', 'PUBLISHED')`).Scan(&pending)
			return err == nil && pending == 0, err
		}); perr != nil {
			err = errors.Join(err, perr)
		}
	}

	stopSampling()
	sampler.Wait()
	sh.scrapeAll(ctx, s)
	c, cerr := check(ctx, s, sd, minStock.get())
	if cerr != nil {
		return nil, fmt.Errorf("chaos: check: %w", cerr)
	}
	r := &Report{
		Seed: cfg.Seed, Duration: cfg.Duration, Faults: in.done, Crashes: s.crashes(),
		Orders: l.stats.orders.Load(), Payments: l.stats.payments.Load(), OrdersRefused: l.stats.ordersRefused.Load(),
		PaymentsRefused: l.stats.paymentsRefused.Load(), Unknown: l.stats.unknown.Load(), Races: l.stats.races.Load(),
		RateLimited: l.stats.rateLimited.Load(), AuthRefused: l.stats.authRefused.Load(),
		Events: c.events, KafkaRecords: c.kafkaRecords, EngineDuplicates: c.engineDuplicates,
		ReconcilerDuplicates: c.reconcilerDuplicates, PlatformFirst: c.platformFirst,
		PlatformDuplicates: c.platformDuplicatesDelivered, DuplicatesApplied: c.duplicatesApplied,
		PaidOrders: c.paidOrders, Refunds: c.refunds, MinStock: minStock.get(), Converged: converged, ConvergedAfterLoad: afterLoad,
		MaxCommitToComplete: c.maxCommitToComplete, Violations: c.violations,
		Replicas: cfg.replicas(), MidRebalance: in.rebalancing, Drains: drains,
	}
	if r.Replicas >= 2 {
		r.Shares = map[string]map[string]share{}
		got := sh.get()
		for _, g := range consumerProcs {
			r.Shares[g.group] = map[string]share{}
			for _, rep := range s.consumers[g.group] {
				r.Shares[g.group][rep.name] = got[rep.name]
				if got[rep.name].All == 0 {
					r.Violations = append(r.Violations, fmt.Sprintf(
						"group %s: replica %s handled no record: the group protocol did not share the records among the replicas", g.group, rep.name))
				}
			}
		}
	}
	if err != nil {
		r.Violations = append([]string{err.Error()}, r.Violations...)
	}
	if r.AuthRefused > 0 {
		r.Violations = append(r.Violations, fmt.Sprintf("%d requests of the load refused with 401/403: its tokens must be accepted", r.AuthRefused))
	}
	for kind, n := range cfg.Faults {
		if in.done[kind] < n {
			r.Violations = append(r.Violations, fmt.Sprintf("fault %s injected %d of %d times", kind, in.done[kind], n))
		}
	}
	return r, nil
}

// sampledMin is the smallest stock seen.
type sampledMin struct {
	mu  sync.Mutex
	min int64
	set bool
}

func (m *sampledMin) sample(ctx context.Context, s *system) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var v int64
		// Errors (Postgres restarting) just skip a sample.
		if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(min(stock), 0) FROM product_details`).Scan(&v); err == nil {
			m.mu.Lock()
			if !m.set || v < m.min {
				m.min, m.set = v, true
			}
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *sampledMin) get() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.min
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos run: seed %d, %v of load and faults, %d replica(s) of each consumer group and of the API\n\n",
		r.Seed, r.Duration, max(1, r.Replicas))
	fmt.Fprintf(w, "faults injected:\n")
	total := 0
	for _, k := range Kinds {
		if n := r.Faults[k]; n > 0 {
			fmt.Fprintf(w, "  %-30s %d\n", k, n)
			total += n
		}
	}
	fmt.Fprintf(w, "  %-30s %d\n", "total", total)
	if n := r.Faults[KillMidRebalance]; n > 0 {
		fmt.Fprintf(w, "  (%d of the %d mid-rebalance kills found their group rebalancing, as Kafka described it)\n", r.MidRebalance, n)
	}
	if len(r.Crashes) > 0 {
		names := make([]string, 0, len(r.Crashes))
		for n := range r.Crashes {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "processes that exited by themselves (restarted):\n")
		for _, n := range names {
			fmt.Fprintf(w, "  %-30s %d\n", n, r.Crashes[n])
		}
	}
	fmt.Fprintf(w, "\nload: %d orders (%d refused), %d payments (%d refused), %d requests without a definite answer, %d races for last units\n",
		r.Orders, r.OrdersRefused, r.Payments, r.PaymentsRefused, r.Unknown, r.Races)
	fmt.Fprintf(w, "api limits: %d answers 429 (rate limited, retried after Retry-After), %d answers 401/403 to the load's tokens (must be 0)\n",
		r.RateLimited, r.AuthRefused)
	fmt.Fprintf(w, "outcome: %d paid orders, %d refunded (short stock), min stock sampled %d\n", r.PaidOrders, r.Refunds, r.MinStock)
	if len(r.Drains) > 0 {
		fmt.Fprintf(w, "  (the outcome and what follows include the throughput phase's payments)\n")
	}
	fmt.Fprintf(w, "events: %d outbox rows, %d records on Kafka\n", r.Events, r.KafkaRecords)
	fmt.Fprintf(w, "duplicates delivered: %d by the engine, %d by the reconciler, %d POSTs to the platform\n",
		r.EngineDuplicates, r.ReconcilerDuplicates, r.PlatformDuplicates)
	fmt.Fprintf(w, "duplicates applied: %d (must be 0)\n", r.DuplicatesApplied)
	fmt.Fprintf(w, "platform: %d events recorded as first deliveries\n", r.PlatformFirst)
	fmt.Fprintf(w, "converged %v after the last fault ended (%v after the load stopped); max commit-to-COMPLETE %v\n",
		r.Converged.Round(time.Millisecond), r.ConvergedAfterLoad.Round(time.Millisecond), r.MaxCommitToComplete.Round(time.Millisecond))
	if len(r.Shares) > 0 {
		fmt.Fprintf(w, "records shared by the group protocol over the whole run (each replica's outboxpay_consumer_records_total,\n")
		fmt.Fprintf(w, "  all results / ok; lower bounds):\n")
		for _, g := range consumerProcs {
			names := make([]string, 0, len(r.Shares[g.group]))
			for n := range r.Shares[g.group] {
				names = append(names, n)
			}
			sort.Strings(names)
			parts := make([]string, 0, len(names))
			for _, n := range names {
				parts = append(parts, fmt.Sprintf("%s %d/%d", n, r.Shares[g.group][n].All, r.Shares[g.group][n].OK))
			}
			fmt.Fprintf(w, "  %-16s %s\n", g.group, strings.Join(parts, ", "))
		}
	}
	if len(r.Drains) > 0 {
		fmt.Fprintf(w, "throughput: a backlog of payments built with every consumer stopped and the connector paused, drained by N processes\n")
		fmt.Fprintf(w, "  per group once the connector resumed (events/s from the first to the last record handled; in brackets the time\n")
		fmt.Fprintf(w, "  from the resume; per replica: records handled):\n")
		for _, d := range r.Drains {
			fmt.Fprintf(w, "  %d replica(s), %d payments, load average %s:\n", d.Replicas, d.Payments, d.Load)
			for _, g := range d.Groups {
				names := make([]string, 0, len(g.PerReplica))
				for n := range g.PerReplica {
					names = append(names, n)
				}
				sort.Strings(names)
				parts := make([]string, 0, len(names))
				for _, n := range names {
					parts = append(parts, fmt.Sprintf("%s %d", n, g.PerReplica[n]))
				}
				fmt.Fprintf(w, "    %-16s %6d events in %7v: %7.1f events/s (%v)  [%s]\n", g.Group, g.Events,
					g.Span.Round(time.Millisecond), g.Rate(), g.Total.Round(time.Millisecond), strings.Join(parts, ", "))
			}
		}
		if len(r.Drains) == 2 {
			fmt.Fprintf(w, "  %d vs 1 replica(s), events/s:", r.Drains[1].Replicas)
			for i, g := range r.Drains[0].Groups {
				if i < len(r.Drains[1].Groups) {
					fmt.Fprintf(w, " %s %.1f vs %.1f;", g.Group, r.Drains[1].Groups[i].Rate(), g.Rate())
				}
			}
			fmt.Fprintln(w)
		}
	}
	if r.OK() {
		fmt.Fprintf(w, "\nPASS: every invariant held (%d answers 429)\n", r.RateLimited)
		return
	}
	fmt.Fprintf(w, "\nFAIL: %d invariant violations:\n  %s\n", len(r.Violations), strings.Join(r.Violations, "\n  "))
}
