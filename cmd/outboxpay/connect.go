package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

func runConnect(ctx context.Context, cfg config, logger *slog.Logger) error {
	if cfg.KafkaBootstrap == "" {
		return errors.New("KAFKA_BOOTSTRAP_SERVERS is not set")
	}
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	return serveConnect(ctx, cfg, db, cfg.kafka(cfg.KafkaBootstrap), newRegistry(), os.LookupEnv, logger, nil)
}

// serveConnect runs the embedded CDC engine's Kafka Connect worker and its
// REST API (with /metrics) until ctx is done. Connector configs are kept in
// db; lookup resolves their ${env:...} references, for the names that
// CONNECT_ENV_ALLOWLIST_PATTERN allows; the engine produces to Kafka as kc's
// principal. listening, if not nil, is called once the REST API accepts
// connections. With CONNECT_REST_CREDENTIALS_FILE every path, /metrics
// included, requires HTTP Basic credentials; without it the API serves a
// loopback address only. With CONNECT_METRICS_CREDENTIALS_FILE, GET
// /metrics takes the credentials of its users (who may do nothing else) or
// of the REST API's.
func serveConnect(ctx context.Context, cfg config, db *sql.DB, kc kafkaclient.Config, reg *prometheus.Registry,
	lookup func(string) (string, bool), logger *slog.Logger, listening func(net.Addr)) error {
	creds, metricsCreds, err := connectCredentials(cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ConnectAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ConnectAddr, err)
	}
	return serveConnectOn(ctx, cfg, ln, creds, metricsCreds, db, kc, reg, lookup, logger, listening)
}

// connectCredentials are the users of the embedded engine's REST API
// (CONNECT_REST_CREDENTIALS_FILE) and of its GET /metrics: those of
// CONNECT_METRICS_CREDENTIALS_FILE plus the REST API's. nil: open.
func connectCredentials(cfg config, logger *slog.Logger) (api, metrics *basicauth.Credentials, err error) {
	api, err = operatorCredentials("kafka connect REST API", "CONNECT_REST_CREDENTIALS_FILE",
		cfg.ConnectRESTCredentialsFile, cfg.ConnectAddr, logger)
	if err != nil {
		return nil, nil, err
	}
	if cfg.ConnectMetricsCredentialsFile == "" {
		return api, api, nil
	}
	users, err := basicauth.ParseFile(cfg.ConnectMetricsCredentialsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka connect metrics: CONNECT_METRICS_CREDENTIALS_FILE: %w", err)
	}
	if cfg.ConnectRESTCredentialsFile != "" {
		apiUsers, err := basicauth.ParseFile(cfg.ConnectRESTCredentialsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka connect REST API: CONNECT_REST_CREDENTIALS_FILE: %w", err)
		}
		users = append(users, apiUsers...)
	}
	return api, basicauth.New(users...), nil
}

// serveConnectOn is serveConnect on the listener ln, with the REST API's
// credentials creds and /metrics' metricsCreds (nil: open).
func serveConnectOn(ctx context.Context, cfg config, ln net.Listener, creds, metricsCreds *basicauth.Credentials,
	db *sql.DB, kc kafkaclient.Config, reg *prometheus.Registry,
	lookup func(string) (string, bool), logger *slog.Logger, listening func(net.Addr)) error {
	metrics := engine.NewMetrics(reg)
	engineLogger := logger.With("component", "cdc")
	w := worker.New(db, func(name string, c connect.Config) (worker.Task, error) {
		return engine.New(name, c, engine.Options{Kafka: kc, Metrics: metrics, Logger: engineLogger}), nil
	}, worker.Options{WorkerID: localAddr(ln.Addr()), Lookup: lookup, EnvAllowlist: cfg.envAllowlist,
		Logger: logger.With("component", "connect")})

	mux := http.NewServeMux()
	mux.Handle("/", rest.NewServer(w, rest.ServerOptions{Logger: logger, Credentials: creds}))
	var metricsHandler http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if metricsCreds != nil {
		metricsHandler = metricsCreds.Handler(rest.Realm, connectUnauthorized, metricsHandler)
	}
	mux.Handle("GET /metrics", metricsHandler)
	srv := newHTTPServer(cfg, mux, cfg.ConnectHTTPWriteTimeout)

	// The worker stops with ctx, or when the REST API fails.
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(workerCtx) }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("kafka connect REST API listening", "addr", ln.Addr().String(), "kafka", kc)
	if listening != nil {
		listening(ln.Addr())
	}

	var runErr error
	select {
	case err := <-served:
		runErr = fmt.Errorf("serve connect REST API: %w", err)
	case err := <-workerDone:
		runErr = fmt.Errorf("connect worker stopped: %w", err)
		workerDone <- nil
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("shut down connect REST API: %w", err))
	}
	stopWorker()
	if err := <-workerDone; err != nil && !errors.Is(err, context.Canceled) {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}
