package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/lag"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
)

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

// runPlatformMock serves the mock external data platform on PLATFORM_MOCK_ADDR.
func runPlatformMock(ctx context.Context, cfg config, logger *slog.Logger) error {
	return servePlatformMock(ctx, cfg, logger, nil)
}

// servePlatformMock serves the mock on PLATFORM_MOCK_ADDR; its operator
// endpoints need the credentials of PLATFORM_MOCK_CREDENTIALS_FILE, and
// without that file it serves a loopback address only.
func servePlatformMock(ctx context.Context, cfg config, logger *slog.Logger, listening func(net.Addr)) error {
	creds, err := operatorCredentials("platform mock", "PLATFORM_MOCK_CREDENTIALS_FILE",
		cfg.PlatformMockCredentialsFile, cfg.PlatformMockAddr, logger)
	if err != nil {
		return err
	}
	mock := platformmock.New(platformmock.Config{
		Operators:   creds,
		FailureRate: cfg.PlatformMockFailureRate,
		Latency:     cfg.PlatformMockLatency,
		TimeoutRate: cfg.PlatformMockTimeoutRate,
		Logger:      logger.With("component", "platform-mock"),
	})
	// The mock may hold a response for up to platformmock.MaxLatency
	// (PUT /faults), on purpose: its write timeout leaves room for that.
	return serveHTTP(ctx, cfg, "platform mock", cfg.PlatformMockAddr, mock, cfg.HTTPWriteTimeout+platformmock.MaxLatency, logger, listening)
}

// runReplay re-drives the dead-lettered records of REPLAY_TOPICS once.
func runReplay(ctx context.Context, cfg config, logger *slog.Logger) error {
	if cfg.KafkaBootstrap == "" {
		return errors.New("KAFKA_BOOTSTRAP_SERVERS is not set")
	}
	n, err := consume.Replay(ctx, cfg.kafka(cfg.KafkaBootstrap), cfg.ReplayTopics, logger)
	if err != nil {
		return err
	}
	fmt.Printf("replayed %d dead-lettered records from %v\n", n, cfg.ReplayTopics)
	return nil
}

// serveMetrics serves reg at /metrics on METRICS_ADDR, and /healthz (the
// process is up) for container health checks.
func serveMetrics(ctx context.Context, cfg config, reg *prometheus.Registry, logger *slog.Logger, listening func(net.Addr)) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return serveHTTP(ctx, cfg, "metrics", cfg.MetricsAddr, mux, cfg.HTTPWriteTimeout, logger, listening)
}

// serveHTTP serves h on addr, with newHTTPServer's limits and writeTimeout,
// until ctx is done, then shuts down within cfg.ShutdownTimeout (in-flight
// requests' contexts are canceled then).
func serveHTTP(ctx context.Context, cfg config, what, addr string, h http.Handler, writeTimeout time.Duration,
	logger *slog.Logger, listening func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	baseCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := newHTTPServer(cfg, h, writeTimeout)
	srv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info(what+" listening", "addr", ln.Addr().String())
	if listening != nil {
		listening(ln.Addr())
	}
	select {
	case err := <-served:
		return fmt.Errorf("%s: %w", what, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	go func() { <-shutdownCtx.Done(); cancelRequests() }()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: shut down: %w", what, err)
	}
	return nil
}
