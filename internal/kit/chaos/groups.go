package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// describeGroups returns, for each consumer group of the run, its state as
// Kafka describes it and each member's client id and partitions: what a
// reader of a failed run needs to see which partitions had no consumer.
func (s *system) describeGroups(ctx context.Context) []string {
	cm := s.kafkaAdmin().ConfigMap()
	cm["enable.metrics.push"] = false
	admin, err := kafka.NewAdminClient(&cm)
	if err != nil {
		return []string{fmt.Sprintf("describe consumer groups: %v", err)}
	}
	defer admin.Close()
	groups := make([]string, len(consumerProcs))
	for i, g := range consumerProcs {
		groups[i] = g.group
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := admin.DescribeConsumerGroups(dctx, groups)
	if err != nil {
		return []string{fmt.Sprintf("describe consumer groups: %v", err)}
	}
	var out []string
	for _, d := range res.ConsumerGroupDescriptions {
		out = append(out, fmt.Sprintf("group %s: %s, %d members", d.GroupID, d.State, len(d.Members)))
		for _, m := range d.Members {
			parts := make([]string, 0, len(m.Assignment.TopicPartitions))
			for _, tp := range m.Assignment.TopicPartitions {
				parts = append(parts, fmt.Sprintf("%s/%d", *tp.Topic, tp.Partition))
			}
			slices.Sort(parts)
			out = append(out, fmt.Sprintf("  %s (%s): %s", m.ClientID, m.ConsumerID, strings.Join(parts, " ")))
		}
	}
	return out
}
