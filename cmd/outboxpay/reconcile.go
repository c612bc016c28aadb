package main

import (
	"context"
	"fmt"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/consumers/lag"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// runReconcile runs the reconciler and the lag exporter, with /metrics on
// METRICS_ADDR.
func runReconcile(ctx context.Context, d deps) error {
	return runWorker(ctx, d, func(ctx context.Context, d deps) error {
		return reconcileAndExport(ctx, d, d.cfg.ConnectURL)
	})
}

// reconcileAndExport runs the reconciler, asking the Kafka Connect REST API
// at connectURL about the connector, and registers the lag exporter on
// d.reg, until ctx is done; both use the workers' database and Kafka as the
// reconciler's principal.
func reconcileAndExport(ctx context.Context, d deps, connectURL string) error {
	cfg, db, kc, reg, logger := d.cfg, d.dbs.worker, d.kafkaAs(kafkaclient.PrincipalReconciler), d.reg, d.logger
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
