package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Drain is one pass of the throughput phase: a backlog built while every
// consumer was stopped, then drained by Replicas processes of each group.
type Drain struct {
	Replicas int
	Payments int64 // the backlog's payments
	Groups   []GroupDrain
	Load     string // the machine's load averages (1, 5, 15 min) at the end
}

// GroupDrain is how fast one group drained its part of the backlog.
type GroupDrain struct {
	Group  string
	Events int // records the group handled (its inbox rows; the tracker's PUBLISHED marks)
	// Span is from the group's first handled record to its last; Total
	// from the connector's resume (the backlog streaming) to its last.
	Span, Total time.Duration
	// PerReplica is what each replica handled in the pass (worker metrics).
	PerReplica map[string]int64
}

// Rate is the group's drain rate in events per second over Span.
func (g GroupDrain) Rate() float64 {
	if g.Span <= 0 {
		return 0
	}
	return float64(g.Events) / g.Span.Seconds()
}

// drain measures the consumers' drain rate with 1, then Config.Replicas,
// processes of each group: each pass stops every consumer and the
// reconciler (which would republish the backlog) and pauses the connector,
// has the API take n payments, starts the pass's replicas, waits until
// each group has every replica holding partitions, resumes the connector
// (which streams the backlog far faster than the consumers take it) and
// waits until every outbox row is COMPLETE. The products are
// restocked first (and the seed's initial stock with them) so that the
// backlog is payments, not refusals. It leaves every process running.
func drain(ctx context.Context, s *system, sd *seedData, sh *shares, n int64, rng *rand.Rand) ([]Drain, error) {
	const restock = 1_000_000
	rows, err := s.db.QueryContext(ctx, `UPDATE product_details SET stock = stock + $1 RETURNING id`, restock)
	if err != nil {
		return nil, fmt.Errorf("restock: %w", err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("restock: %w", err)
		}
		sd.initialStock[id] += restock
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("restock: %w", err)
	}
	var out []Drain
	for _, k := range []int{1, s.cfg.replicas()} {
		d, err := drainPass(ctx, s, *sd, sh, n, k, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
		if err != nil {
			// Whatever failed, the connector streams again and every
			// process runs, for the checks.
			return out, errors.Join(err, setConnector(ctx, s, false), s.ensureRunning())
		}
		out = append(out, d)
		s.logger.Info("drain pass", "replicas", k, "payments", d.Payments)
	}
	return out, s.ensureRunning()
}

func drainPass(ctx context.Context, s *system, sd seedData, sh *shares, n int64, k int, rng *rand.Rand) (Drain, error) {
	d := Drain{Replicas: k}
	stopped := []string{procReconciler}
	for _, g := range consumerProcs {
		stopped = append(stopped, s.replicasOf(g.proc)...)
	}
	for _, name := range stopped {
		if err := s.procs[name].stop(15 * time.Second); err != nil {
			return d, err
		}
	}
	if err := setConnector(ctx, s, true); err != nil {
		return d, err
	}
	// The backlog: n payments through the API replicas, 16 at a time,
	// left in the outbox (the connector paused, the consumers stopped).
	l := &load{apis: s.apiURLs, seed: sd, rng: rng, client: &http.Client{Timeout: 10 * time.Second}, soldOut: map[int64]bool{}}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tries := int64(0); ctx.Err() == nil && l.stats.payments.Load() < n && tries < 3*n; tries++ {
				user, items := l.pick()
				l.orderAndPay(ctx, user, items)
			}
		}()
	}
	wg.Wait()
	d.Payments = l.stats.payments.Load()
	if err := ctx.Err(); err != nil {
		return d, err
	}
	// The pass's replicas start, and their groups settle with every
	// replica holding partitions, before the engine streams the backlog:
	// the drain then measures the replicas sharing the work.
	for i := 1; i <= k; i++ {
		for _, g := range consumerProcs {
			if err := s.procs[replicaName(g.proc, i, s.cfg.replicas())].start(); err != nil {
				return d, err
			}
		}
	}
	if err := awaitGroupsSettled(ctx, s, k); err != nil {
		s.logger.Warn("drain: the groups did not settle; measuring anyway", "replicas", k, "err", err)
	}
	var start time.Time
	if err := s.db.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&start); err != nil {
		return d, fmt.Errorf("drain: %w", err)
	}
	before := sh.get()
	if err := setConnector(ctx, s, false); err != nil {
		return d, err
	}
	if err := poll(ctx, s.cfg.ConvergeTimeout, "the backlog drained (no outbox row INIT or PUBLISHED)", func() (bool, error) {
		var pending int
		err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE status IN ('INIT', 'PUBLISHED')`).Scan(&pending)
		return err == nil && pending == 0, err
	}); err != nil {
		return d, err
	}
	sh.scrapeAll(ctx, s) // the last records' counts
	after := sh.get()
	for _, g := range consumerProcs {
		gd := GroupDrain{Group: g.group, PerReplica: map[string]int64{}}
		q := `SELECT count(*), min(processed_at), max(processed_at) FROM processed_events
			WHERE consumer_group = $1 AND processed_at >= $2`
		args := []any{g.group, start}
		if g.group == event.GroupOutboxTracker {
			q = `SELECT count(*), min(published_at), max(published_at) FROM outbox WHERE published_at >= $1`
			args = args[1:]
		}
		var first, last sql.NullTime
		if err := s.db.QueryRowContext(ctx, q, args...).Scan(&gd.Events, &first, &last); err != nil {
			return d, fmt.Errorf("drain rate of %s: %w", g.group, err)
		}
		if first.Valid {
			gd.Span, gd.Total = last.Time.Sub(first.Time), last.Time.Sub(start)
		}
		for i := 1; i <= k; i++ {
			name := replicaName(g.proc, i, s.cfg.replicas())
			gd.PerReplica[name] = after[name].All - before[name].All
		}
		d.Groups = append(d.Groups, gd)
	}
	d.Load = loadAverage()
	return d, nil
}

// setConnector pauses or resumes the connector and waits until it and its
// tasks are in that state.
func setConnector(ctx context.Context, s *system, pause bool) error {
	c := s.connectClient()
	want, set := "RUNNING", c.ResumeConnector
	if pause {
		want, set = "PAUSED", c.PauseConnector
	}
	return poll(ctx, 2*time.Minute, "connector "+want, func() (bool, error) {
		if err := set(ctx, "outbox"); err != nil {
			return false, err
		}
		st, err := c.ConnectorStatus(ctx, "outbox")
		if err != nil {
			return false, err
		}
		ok := st.Connector.State == want && len(st.Tasks) > 0
		for _, t := range st.Tasks {
			ok = ok && t.State == want
		}
		return ok, fmt.Errorf("connector %s, tasks %v", st.Connector.State, st.Tasks)
	})
}

// awaitGroupsSettled waits until Kafka describes every consumer group as
// stable with k members, each assigned partitions.
func awaitGroupsSettled(ctx context.Context, s *system, k int) error {
	cm := s.kafkaAdmin().ConfigMap()
	cm["enable.metrics.push"] = false
	admin, err := kafka.NewAdminClient(&cm)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer admin.Close()
	groups := make([]string, 0, len(consumerProcs))
	for _, g := range consumerProcs {
		groups = append(groups, g.group)
	}
	return poll(ctx, 2*time.Minute, fmt.Sprintf("consumer groups stable with %d members each holding partitions", k), func() (bool, error) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := admin.DescribeConsumerGroups(dctx, groups)
		if err != nil {
			return false, err
		}
		for _, g := range res.ConsumerGroupDescriptions {
			if g.State != kafka.ConsumerGroupStateStable || len(g.Members) != k {
				return false, fmt.Errorf("group %s: %v with %d members", g.GroupID, g.State, len(g.Members))
			}
			for _, m := range g.Members {
				if len(m.Assignment.TopicPartitions) == 0 {
					return false, fmt.Errorf("group %s: member %s holds no partition", g.GroupID, m.ClientID)
				}
			}
		}
		return len(res.ConsumerGroupDescriptions) == len(groups), nil
	})
}

// loadAverage is the machine's load averages over 1, 5 and 15 minutes.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
