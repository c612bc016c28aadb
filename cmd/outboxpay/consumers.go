package main

import (
	"context"
	"database/sql"
	"errors"
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

// runConsumers runs the consumer groups of CONSUMER_GROUPS, with /metrics
// (worker metrics and the lag exporter) on METRICS_ADDR.
func runConsumers(ctx context.Context, cfg config, logger *slog.Logger) error {
	if cfg.KafkaBootstrap == "" {
		return errors.New("KAFKA_BOOTSTRAP_SERVERS is not set")
	}
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := newRegistry()
	// One process, one principal: run one process per group to give each
	// group its own.
	kc := cfg.kafka(cfg.KafkaBootstrap)
	groups, err := consumerGroups(cfg, db, func(string) kafkaclient.Config { return kc }, reg, logger)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, cfg, reg, logger, nil) })
	g.Go(func() error { return runGroups(ctx, groups) })
	return g.Wait()
}
