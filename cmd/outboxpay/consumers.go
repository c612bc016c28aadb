package main

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/platform"
	"github.com/outboxpay/outboxpay/consumers/stock"
	"github.com/outboxpay/outboxpay/consumers/tracker"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// consumerGroups builds the workers of CONSUMER_GROUPS, on the workers'
// database of d, each group with the Kafka settings of its principal (its
// name: d.kafkaAs(group)).
func consumerGroups(d deps) ([]*consume.Group, error) {
	cfg, db, logger := d.cfg, d.dbs.worker, d.logger
	m := consume.NewMetrics(d.reg)
	var groups []*consume.Group
	for _, name := range cfg.ConsumerGroups {
		var (
			h      consume.Handler
			topics []string
		)
		switch name {
		case event.GroupStock:
			h, topics = stock.New(db, m, logger), []string{event.Topic(event.AggregateOrder)}
		case event.GroupDataPlatform:
			h = platform.New(db, platform.Config{URL: cfg.PlatformURL, Timeout: cfg.PlatformTimeout,
				MaxTries: cfg.PlatformMaxTries, InFlight: cfg.PlatformInFlight}, m, logger)
			topics = []string{event.Topic(event.AggregatePayment)}
		case event.GroupOutboxTracker:
			h, topics = tracker.New(db, logger), []string{event.TopicPattern}
		default:
			return nil, fmt.Errorf("unknown consumer group %q in CONSUMER_GROUPS", name)
		}
		groups = append(groups, consume.New(consume.Config{
			Kafka:            d.kafkaAs(name),
			Group:            name,
			Topics:           topics,
			ShutdownTimeout:  cfg.ShutdownTimeout,
			VisibilityWindow: cfg.ConsumerVisibilityWindow,
			ConsumerConfig:   kafkaclient.ConsumerFetchBounds(),
		}, h, m, logger))
	}
	return groups, nil
}

// runGroups runs consumer groups until ctx is done.
func runGroups(ctx context.Context, groups []*consume.Group) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, grp := range groups {
		g.Go(func() error { return grp.Run(ctx) })
	}
	return g.Wait()
}

// runConsumers runs the consumer groups of CONSUMER_GROUPS, with /metrics
// (worker metrics and the lag exporter) on METRICS_ADDR. One process is one
// principal: run one process per group to give each group its own.
func runConsumers(ctx context.Context, d deps) error {
	return runWorker(ctx, d, func(ctx context.Context, d deps) error {
		groups, err := consumerGroups(d)
		if err != nil {
			return err
		}
		return runGroups(ctx, groups)
	})
}
