package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/platform"
	"github.com/outboxpay/outboxpay/consumers/stock"
	"github.com/outboxpay/outboxpay/consumers/tracker"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// outboxTopics matches every outbox topic and no dead-letter topic.
const outboxTopics = `^outbox\.event\.[^.]+$`

// consumerGroups builds the configured consumer groups' workers; kafkaFor
// returns the Kafka settings (the principal) of a group.
func consumerGroups(cfg config, db *sql.DB, kafkaFor func(group string) kafkaclient.Config, reg prometheus.Registerer,
	logger *slog.Logger) ([]*consume.Group, error) {
	m := consume.NewMetrics(reg)
	var groups []*consume.Group
	for _, name := range cfg.ConsumerGroups {
		var (
			h      consume.Handler
			topics []string
		)
		switch name {
		case event.GroupStock:
			h, topics = stock.New(shop.New(db), m, logger), []string{event.Topic(event.AggregateOrder)}
		case event.GroupDataPlatform:
			h = platform.New(db, platform.Config{URL: cfg.PlatformURL, Timeout: cfg.PlatformTimeout, MaxTries: cfg.PlatformMaxTries}, m, logger)
			topics = []string{event.Topic(event.AggregatePayment)}
		case event.GroupOutboxTracker:
			h, topics = tracker.New(db, logger), []string{outboxTopics}
		default:
			return nil, fmt.Errorf("unknown consumer group %q in CONSUMER_GROUPS", name)
		}
		groups = append(groups, consume.New(consume.Config{
			Kafka:            kafkaFor(name),
			Group:            name,
			Topics:           topics,
			ShutdownTimeout:  cfg.ShutdownTimeout,
			VisibilityWindow: cfg.ConsumerVisibilityWindow,
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
