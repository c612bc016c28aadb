package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Kind is a kind of fault.
type Kind string

// The faults a run injects.
const (
	KillConnect      Kind = "kill-connect"
	KillStock        Kind = "kill-consumer-stock"
	KillDataPlatform Kind = "kill-consumer-data-platform"
	KillTracker      Kind = "kill-consumer-outbox-tracker"
	KillReconciler   Kind = "kill-reconciler"
	KillAPI          Kind = "kill-api"
	RestartPostgres  Kind = "restart-postgres"
	RestartKafka     Kind = "restart-kafka"
	Platform5xx      Kind = "platform-5xx"
	PlatformTimeouts Kind = "platform-timeouts"
	PlatformSlow     Kind = "platform-slow"
	PauseConnector   Kind = "pause-connector"
	// KillMidRebalance restarts one replica of a consumer group (chosen by
	// the seed) and, while the group rebalances to take it back in, kills
	// another replica of the same group, which comes back after a pause.
	// It needs two replicas or more (Config.Replicas).
	KillMidRebalance Kind = "kill-consumer-mid-rebalance"
)

// Kinds lists every kind, in report order.
var Kinds = []Kind{KillConnect, KillStock, KillDataPlatform, KillTracker, KillReconciler, KillAPI,
	RestartPostgres, RestartKafka, Platform5xx, PlatformTimeouts, PlatformSlow, PauseConnector, KillMidRebalance}

// killed maps the kill faults to the process they kill (one of its
// replicas, chosen by the seed, when it runs more than once).
var killed = map[Kind]string{
	KillConnect: procConnect, KillStock: procStock, KillDataPlatform: procDataPlat,
	KillTracker: procTracker, KillReconciler: procReconciler, KillAPI: procAPI,
}

// ParseSchedule reads "kind=count,kind=count"; kinds not named get 0.
func ParseSchedule(s string) (map[Kind]int, error) {
	out := map[Kind]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("fault schedule %q: want kind=count with count 0..100", part)
		}
		if !slices.Contains(Kinds, Kind(k)) {
			return nil, fmt.Errorf("fault schedule: unknown fault kind %q (kinds: %v)", k, Kinds)
		}
		out[Kind(k)] = n
	}
	return out, nil
}

// fault is one scheduled fault.
type fault struct {
	at   time.Duration // from the start of the load
	kind Kind
}

// schedule spreads the faults over the middle of the run, in a seeded order.
func schedule(counts map[Kind]int, duration time.Duration, rng *rand.Rand) []fault {
	var fs []fault
	for _, k := range Kinds {
		for range counts[k] {
			at := duration/10 + time.Duration(rng.Int64N(int64(duration*7/10)))
			fs = append(fs, fault{at: at, kind: k})
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
	return fs
}

// injector carries out faults on a system.
type injector struct {
	s       *system
	rng     *rand.Rand
	pause   time.Duration // how long the connector stays paused
	degrade time.Duration // how long the platform stays degraded
	done    map[Kind]int
	lastEnd time.Time
	// rebalancing counts the KillMidRebalance faults whose kill found the
	// group rebalancing (as Kafka described it).
	rebalancing int
}

// run injects the faults at their times (after the previous one is over)
// until they are all done or ctx ends.
func (in *injector) run(ctx context.Context, start time.Time, faults []fault) {
	for _, f := range faults {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(f.at))):
		}
		begin := time.Now()
		if err := in.inject(ctx, f.kind); err != nil {
			in.s.logger.Warn("fault", "kind", f.kind, "err", err)
			continue
		}
		in.done[f.kind]++
		in.lastEnd = time.Now()
		in.s.logger.Info("fault injected", "kind", f.kind, "took", time.Since(begin).Round(time.Millisecond))
	}
}

func (in *injector) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (in *injector) inject(ctx context.Context, kind Kind) error {
	s := in.s
	switch kind {
	case KillConnect, KillStock, KillDataPlatform, KillTracker, KillReconciler, KillAPI:
		names := s.replicasOf(killed[kind])
		p := s.procs[names[0]]
		if len(names) > 1 { // one process: the seed's schedule as without replicas
			p = s.procs[names[in.rng.IntN(len(names))]]
		}
		if err := p.kill(); err != nil {
			return err
		}
		in.sleep(ctx, time.Duration(500+in.rng.IntN(3500))*time.Millisecond)
		return p.start()
	case KillMidRebalance:
		return in.killMidRebalance(ctx)
	case RestartKafka:
		p := s.procs[procKafka]
		if err := p.kill(); err != nil {
			return err
		}
		in.sleep(ctx, time.Duration(1000+in.rng.IntN(4000))*time.Millisecond)
		return p.start()
	case RestartPostgres:
		// pg_ctl stop -m fast: sessions are cut, then a clean start.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return s.pg.Restart(rctx)
	case Platform5xx:
		return in.degradePlatform(ctx, map[string]any{"failureRate": 0.4})
	case PlatformTimeouts:
		return in.degradePlatform(ctx, map[string]any{"timeoutRate": 0.2})
	case PlatformSlow:
		return in.degradePlatform(ctx, map[string]any{"latencyMs": 300})
	case PauseConnector:
		c := s.connectClient()
		// The engine may be coming back from a kill: wait for its REST API.
		err := poll(ctx, time.Minute, "pause connector", func() (bool, error) {
			err := c.PauseConnector(ctx, "outbox")
			return err == nil, err
		})
		if err != nil {
			return err
		}
		in.sleep(ctx, in.pause)
		// The connector may have been restarted meanwhile (a killed engine
		// comes back PAUSED, its target state persisted): resume it anyway.
		return poll(context.WithoutCancel(ctx), time.Minute, "resume connector", func() (bool, error) {
			err := c.ResumeConnector(context.WithoutCancel(ctx), "outbox")
			return err == nil, err
		})
	}
	return fmt.Errorf("unknown fault %q", kind)
}

// degradePlatform sets the mock's faults for in.degrade, then clears them.
func (in *injector) degradePlatform(ctx context.Context, faults map[string]any) error {
	if err := in.setPlatformFaults(ctx, faults); err != nil {
		return err
	}
	in.sleep(ctx, in.degrade)
	return in.setPlatformFaults(context.WithoutCancel(ctx), map[string]any{})
}

func (in *injector) setPlatformFaults(ctx context.Context, faults map[string]any) error {
	body := map[string]any{"failureRate": 0.0, "latencyMs": 0, "timeoutRate": 0.0}
	for k, v := range faults {
		body[k] = v
	}
	client := &http.Client{Timeout: 5 * time.Second}
	status, resp, err := call(ctx, client, "PUT", in.s.platform+"/faults", body, in.s.operatorHeaders())
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("set platform faults %v: %d %s %v", body, status, resp, err)
	}
	return nil
}

// killMidRebalance kills one replica of a group and starts it again; once
// it has subscribed, and as soon as Kafka describes the group as
// rebalancing (or after 20 s without), it kills another replica of the
// same group, and starts it again 0.5-4 s later.
func (in *injector) killMidRebalance(ctx context.Context) error {
	s := in.s
	g := consumerProcs[in.rng.IntN(len(consumerProcs))].group
	reps := s.consumers[g]
	if len(reps) < 2 {
		return fmt.Errorf("%s needs two replicas of each consumer group or more", KillMidRebalance)
	}
	i := in.rng.IntN(len(reps))
	first, second := s.procs[reps[i].name], s.procs[reps[(i+1+in.rng.IntN(len(reps)-1))%len(reps)].name]
	started := logCount(first.logPath, groupStarted)
	if err := first.kill(); err != nil {
		return err
	}
	in.sleep(ctx, time.Duration(500+in.rng.IntN(1500))*time.Millisecond)
	if err := first.start(); err != nil {
		return err
	}
	if err := poll(ctx, time.Minute, first.name+" subscribed", func() (bool, error) {
		return logCount(first.logPath, groupStarted) > started, nil
	}); err != nil {
		return err
	}
	if in.awaitRebalance(ctx, g, 20*time.Second) {
		in.rebalancing++
	}
	if err := second.kill(); err != nil {
		return err
	}
	in.s.logger.Info("killed a replica mid-rebalance", "group", g, "restarted", first.name, "killed", second.name)
	in.sleep(ctx, time.Duration(500+in.rng.IntN(3500))*time.Millisecond)
	return second.start()
}

// groupStarted is what a consumer process logs once its group subscribed.
const groupStarted = `"consumer group started"`

// logCount counts the lines of a log that hold s.
func logCount(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// awaitRebalance reports whether Kafka describes group as rebalancing
// (preparing or completing it) within timeout.
func (in *injector) awaitRebalance(ctx context.Context, group string, timeout time.Duration) bool {
	cm := in.s.kafkaAdmin().ConfigMap()
	cm["enable.metrics.push"] = false
	admin, err := kafka.NewAdminClient(&cm)
	if err != nil {
		in.s.logger.Warn("describe consumer group", "group", group, "err", err)
		return false
	}
	defer admin.Close()
	err = poll(ctx, timeout, "group "+group+" rebalancing", func() (bool, error) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := admin.DescribeConsumerGroups(dctx, []string{group})
		if err != nil {
			return false, err
		}
		for _, d := range res.ConsumerGroupDescriptions {
			switch d.State {
			case kafka.ConsumerGroupStatePreparingRebalance, kafka.ConsumerGroupStateCompletingRebalance:
				return true, nil
			}
		}
		return false, nil
	})
	return err == nil
}
