package lag

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
)

// partitionKey names one partition of a topic.
type partitionKey struct {
	topic     string
	partition int32
}

// watermarks are a partition's low (first retained) and high (next to be
// written) offsets.
type watermarks struct{ low, high int64 }

// groupState is what the admin API says about one consumer group.
type groupState struct {
	subscribed      map[string]bool        // matching topics assigned to its members
	committed       map[partitionKey]int64 // committed offsets on matching topics
	committedTopics map[string]bool        // matching topics with a committed offset
	err             error                  // what failed, if anything
}

// PartitionEnd is a partition of a matching topic and its watermarks.
type PartitionEnd struct {
	Topic     string
	Partition int32
	Low       int64 // the first retained offset
	High      int64 // the offset after the last record
}

// GroupPartition is a consumer group's position in one partition of a
// matching topic it has committed to or is subscribed to.
type GroupPartition struct {
	Group     string
	Topic     string
	Partition int32
	Committed int64 // -1: nothing committed
	High      int64
	// Lag is what the group has not committed yet: High - Committed, or
	// the whole retained log (High - Low) when it has committed nothing;
	// never negative.
	Lag int64
}

// Offsets is what the Kafka admin API says of the matching topics and the
// groups, sorted by topic and partition (and group).
type Offsets struct {
	Partitions []PartitionEnd
	Groups     []GroupPartition
}

// Offsets reads the watermarks of every partition of the matching topics,
// and each group's committed offset and lag on every partition of them it
// has committed to or is subscribed to: the data of the lag metrics, for
// other readers (the operator console). The committed offsets are read
// before the watermarks, so records that arrive in between never make a
// lag negative. It returns what failed along with what it could read.
func (c *Collector) Offsets(ctx context.Context) (Offsets, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return Offsets{}, errors.New("collector closed")
	}

	var errs []error
	partitions, err := c.topicPartitions(ctx)
	if err != nil {
		if len(partitions) == 0 {
			return Offsets{}, err
		}
		errs = append(errs, err)
	}
	groups, err := c.groupIDs(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	states := c.groupStates(ctx, groups)
	for _, g := range groups {
		if err := states[g].err; err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", g, err))
		}
	}
	marks, err := c.watermarks(ctx, partitions)
	if err != nil {
		errs = append(errs, err)
	}

	var o Offsets
	for _, tp := range partitions {
		if m, ok := marks[tp]; ok {
			o.Partitions = append(o.Partitions, PartitionEnd{Topic: tp.topic, Partition: tp.partition, Low: m.low, High: m.high})
		}
	}
	for _, g := range groups {
		st := states[g]
		for _, tp := range partitions {
			if !st.subscribed[tp.topic] && !st.committedTopics[tp.topic] {
				continue
			}
			m, ok := marks[tp]
			if !ok {
				continue // its watermarks failed, which is counted already
			}
			gp := GroupPartition{Group: g, Topic: tp.topic, Partition: tp.partition, Committed: -1, High: m.high,
				Lag: m.high - m.low}
			if off, ok := st.committed[tp]; ok {
				gp.Committed, gp.Lag = off, m.high-off
			}
			gp.Lag = max(gp.Lag, 0)
			o.Groups = append(o.Groups, gp)
		}
	}
	return o, errors.Join(errs...)
}

// collectKafka reports the high watermark of every partition of the
// matching topics, and each group's committed offset and lag (Offsets). It
// returns what failed; the metrics it could compute are sent anyway.
func (c *Collector) collectKafka(ctx context.Context, ch chan<- prometheus.Metric) error {
	o, err := c.Offsets(ctx)
	for _, p := range o.Partitions {
		ch <- prometheus.MustNewConstMetric(c.highWatermark, prometheus.GaugeValue, float64(p.High),
			p.Topic, partitionLabel(p.Partition))
	}
	for _, g := range o.Groups {
		if g.Committed >= 0 {
			ch <- prometheus.MustNewConstMetric(c.committed, prometheus.GaugeValue, float64(g.Committed),
				g.Group, g.Topic, partitionLabel(g.Partition))
		}
		ch <- prometheus.MustNewConstMetric(c.groupLag, prometheus.GaugeValue, float64(g.Lag),
			g.Group, g.Topic, partitionLabel(g.Partition))
	}
	return err
}

// matches tells whether a topic is reported.
func (c *Collector) matches(topic string) bool {
	return strings.HasPrefix(topic, c.opts.TopicPrefix)
}

// topicPartitions lists the partitions of the matching topics, sorted, from
// the cluster's metadata. With a topic-level error it returns the other
// topics' partitions and the error.
func (c *Collector) topicPartitions(ctx context.Context) ([]partitionKey, error) {
	ms, err := timeoutMs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	md, err := c.admin.GetMetadata(nil, true, ms)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var parts []partitionKey
	var errs []error
	for name, t := range md.Topics {
		if !c.matches(name) {
			continue
		}
		if t.Error.Code() != kafka.ErrNoError {
			errs = append(errs, fmt.Errorf("topic %q metadata: %w", name, t.Error))
			continue
		}
		for _, p := range t.Partitions {
			parts = append(parts, partitionKey{topic: name, partition: p.ID})
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].topic != parts[j].topic {
			return parts[i].topic < parts[j].topic
		}
		return parts[i].partition < parts[j].partition
	})
	return parts, errors.Join(errs...)
}

// groupIDs returns Options.Groups, or when it is nil every group the
// cluster lists, sorted. A partial listing comes with an error.
func (c *Collector) groupIDs(ctx context.Context) ([]string, error) {
	if c.opts.Groups != nil {
		return c.opts.Groups, nil
	}
	res, err := c.admin.ListConsumerGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	ids := make([]string, 0, len(res.Valid))
	for _, g := range res.Valid {
		ids = append(ids, g.GroupID)
	}
	sort.Strings(ids)
	if len(res.Errors) > 0 {
		return ids, fmt.Errorf("list consumer groups: %w", errors.Join(res.Errors...))
	}
	return ids, nil
}

// groupStates asks for the groups' members (their assigned topics) and
// their committed offsets, the offsets one group per call, a few groups at
// a time. A group that does not exist (yet) has neither, without error.
func (c *Collector) groupStates(ctx context.Context, groups []string) map[string]*groupState {
	states := make(map[string]*groupState, len(groups))
	for _, g := range groups {
		states[g] = &groupState{subscribed: map[string]bool{}, committed: map[partitionKey]int64{},
			committedTopics: map[string]bool{}}
	}
	if len(groups) == 0 {
		return states
	}

	desc, err := c.admin.DescribeConsumerGroups(ctx, groups)
	if err != nil {
		for _, st := range states {
			st.err = fmt.Errorf("describe: %w", err)
		}
	}
	for _, d := range desc.ConsumerGroupDescriptions {
		st, ok := states[d.GroupID]
		if !ok {
			continue
		}
		if code := d.Error.Code(); code != kafka.ErrNoError && code != kafka.ErrGroupIDNotFound {
			st.err = fmt.Errorf("describe: %w", d.Error)
			continue
		}
		for _, m := range d.Members {
			for _, tp := range m.Assignment.TopicPartitions {
				if tp.Topic != nil && c.matches(*tp.Topic) {
					st.subscribed[*tp.Topic] = true
				}
			}
		}
	}

	sem := make(chan struct{}, groupOffsetsParallelism)
	var wg sync.WaitGroup
	for _, g := range groups {
		st := states[g]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.committedOffsets(ctx, g, st); err != nil {
				st.err = errors.Join(st.err, err)
			}
		})
	}
	wg.Wait()
	return states
}

// committedOffsets fills st.committed with the group's committed offsets on
// the matching topics.
func (c *Collector) committedOffsets(ctx context.Context, group string, st *groupState) error {
	res, err := c.admin.ListConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: group}})
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrGroupIDNotFound {
		return nil // a group that does not exist (yet) has committed nothing
	}
	if err != nil {
		return fmt.Errorf("list committed offsets: %w", err)
	}
	var errs []error
	for _, gtp := range res.ConsumerGroupsTopicPartitions {
		for _, tp := range gtp.Partitions {
			if tp.Topic == nil || !c.matches(*tp.Topic) {
				continue
			}
			if tp.Error != nil {
				errs = append(errs, fmt.Errorf("committed offset of %s[%d]: %w", *tp.Topic, tp.Partition, tp.Error))
				continue
			}
			if tp.Offset < 0 { // nothing committed
				continue
			}
			st.committed[partitionKey{topic: *tp.Topic, partition: tp.Partition}] = int64(tp.Offset)
			st.committedTopics[*tp.Topic] = true
		}
	}
	return errors.Join(errs...)
}

// watermarks asks the partitions' leaders for their low and high
// watermarks (ListOffsets earliest and latest, read uncommitted), without a
// consumer. A partition is in the result only when both are known.
func (c *Collector) watermarks(ctx context.Context, parts []partitionKey) (map[partitionKey]watermarks, error) {
	marks := make(map[partitionKey]watermarks, len(parts))
	if len(parts) == 0 {
		return marks, nil
	}
	high, errHigh := c.listOffsets(ctx, parts, kafka.LatestOffsetSpec)
	low, errLow := c.listOffsets(ctx, parts, kafka.EarliestOffsetSpec)
	for tp, h := range high {
		if l, ok := low[tp]; ok {
			marks[tp] = watermarks{low: l, high: h}
		}
	}
	if err := errors.Join(errHigh, errLow); err != nil {
		return marks, fmt.Errorf("watermarks: %w", err)
	}
	return marks, nil
}

// listOffsets runs one ListOffsets request for the partitions. It returns
// the offsets it got and an error for the partitions it did not.
func (c *Collector) listOffsets(ctx context.Context, parts []partitionKey, spec kafka.OffsetSpec) (map[partitionKey]int64, error) {
	req := make(map[kafka.TopicPartition]kafka.OffsetSpec, len(parts))
	for _, tp := range parts {
		topic := tp.topic
		req[kafka.TopicPartition{Topic: &topic, Partition: tp.partition}] = spec
	}
	name := "latest"
	if spec == kafka.EarliestOffsetSpec {
		name = "earliest"
	}
	res, err := c.admin.ListOffsets(ctx, req, kafka.SetAdminIsolationLevel(kafka.IsolationLevelReadUncommitted))
	if err != nil {
		return nil, fmt.Errorf("list %s offsets: %w", name, err)
	}
	got := make(map[partitionKey]int64, len(res.ResultInfos))
	var errs []error
	for tp, info := range res.ResultInfos {
		if tp.Topic == nil {
			continue
		}
		if info.Error.Code() != kafka.ErrNoError {
			errs = append(errs, fmt.Errorf("list %s offset of %s[%d]: %w", name, *tp.Topic, tp.Partition, info.Error))
			continue
		}
		got[partitionKey{topic: *tp.Topic, partition: tp.Partition}] = int64(info.Offset)
	}
	if missing := len(parts) - len(got) - len(errs); missing > 0 {
		errs = append(errs, fmt.Errorf("list %s offsets: no answer for %d partitions", name, missing))
	}
	return got, errors.Join(errs...)
}

// timeoutMs is what is left of ctx's deadline in milliseconds, for the
// client calls that take a timeout instead of a context.
func timeoutMs(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return int(DefaultTimeout.Milliseconds()), nil
	}
	left := time.Until(dl)
	if left < time.Millisecond {
		return 0, context.DeadlineExceeded
	}
	return int(left.Milliseconds()), nil
}

// partitionLabel is the partition label's value.
func partitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }
