package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/consumers/lag"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// runReconcile runs the reconciler and the lag exporter, with /metrics on
// METRICS_ADDR.
func runReconcile(ctx context.Context, cfg config, logger *slog.Logger) error {
	if cfg.KafkaBootstrap == "" {
		return errors.New("KAFKA_BOOTSTRAP_SERVERS is not set")
	}
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := newRegistry()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, cfg, reg, logger, nil) })
	g.Go(func() error {
		return reconcileAndExport(ctx, cfg, db, cfg.kafka(cfg.KafkaBootstrap), cfg.ConnectURL, reg, logger)
	})
	return g.Wait()
}

// reconcileAndExport runs the reconciler and registers the lag exporter on
// reg until ctx is done; both use Kafka as kc's principal.
func reconcileAndExport(ctx context.Context, cfg config, db *sql.DB, kc kafkaclient.Config, connectURL string,
	reg prometheus.Registerer, logger *slog.Logger) error {
	exporter, err := lag.New(lag.Options{DB: db, Kafka: kc, Logger: logger.With("component", "lag")})
	if err != nil {
		return err
	}
	defer exporter.Close()
	if err := reg.Register(exporter); err != nil {
		return fmt.Errorf("register lag exporter: %w", err)
	}
	pub, err := reconcile.NewKafkaPublisher(kc, nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	r := reconcile.New(db, cfg.connectClient(connectURL, 10*time.Second), pub, connect.DefaultRouter,
		reconcile.Config{
			Interval:                cfg.ReconcileInterval,
			StuckAfter:              cfg.ReconcileStuckAfter,
			RepublishAfter:          cfg.ReconcileRepublishAfter,
			PublishedStuckAfter:     cfg.ReconcilePublishedStuckAfter,
			MaxAttempts:             cfg.ReconcileMaxAttempts,
			Retention:               cfg.ReconcileRetention,
			IdempotencyKeyRetention: cfg.IdempotencyKeyRetention,
			OrderExpiry:             cfg.OrderExpiry,
			Connector:               cfg.ConnectorName,
		}, reg, logger.With("component", "reconcile"))
	return r.Run(ctx)
}
