package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// runConnect is `outboxpay connect`: the embedded CDC engine's Kafka
// Connect worker and its REST API on CONNECT_ADDR, until ctx is done.
func runConnect(ctx context.Context, d deps) error {
	if err := needKafka(d.cfg); err != nil {
		return err
	}
	auth, err := connectCredentials(d.cfg, d.logger)
	if err != nil {
		return err
	}
	d, closeDB, err := d.withDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	ln, err := listen(d.logger, "kafka connect REST API", d.cfg.ConnectAddr)
	if err != nil {
		return err
	}
	return serveConnect(ctx, d, ln, auth)
}

// connectAuth are the users of the embedded engine's REST API and of its
// GET /metrics; nil: open.
type connectAuth struct {
	api, metrics *basicauth.Credentials
}

// connectCredentials are the users of the embedded engine's REST API
// (CONNECT_REST_CREDENTIALS_FILE) and of its GET /metrics: those of
// CONNECT_METRICS_CREDENTIALS_FILE plus the REST API's. Without
// CONNECT_REST_CREDENTIALS_FILE the API may serve a loopback CONNECT_ADDR
// only.
func connectCredentials(cfg config, logger *slog.Logger) (connectAuth, error) {
	api, err := operatorCredentials("kafka connect REST API", "CONNECT_REST_CREDENTIALS_FILE",
		cfg.ConnectRESTCredentialsFile, cfg.ConnectAddr, logger)
	if err != nil {
		return connectAuth{}, err
	}
	if cfg.ConnectMetricsCredentialsFile == "" {
		return connectAuth{api, api}, nil
	}
	users, err := basicauth.ParseFile(cfg.ConnectMetricsCredentialsFile)
	if err != nil {
		return connectAuth{}, fmt.Errorf("kafka connect metrics: CONNECT_METRICS_CREDENTIALS_FILE: %w", err)
	}
	if cfg.ConnectRESTCredentialsFile != "" {
		apiUsers, err := basicauth.ParseFile(cfg.ConnectRESTCredentialsFile)
		if err != nil {
			return connectAuth{}, fmt.Errorf("kafka connect REST API: CONNECT_REST_CREDENTIALS_FILE: %w", err)
		}
		users = append(users, apiUsers...)
	}
	return connectAuth{api, basicauth.New(users...)}, nil
}

// serveConnect runs the embedded CDC engine's Kafka Connect worker and
// serves its REST API (with /metrics) on ln, with auth, until ctx is done.
// Connector configs are kept in the CDC database of d; d.lookup resolves
// their ${env:...} references, for the names CONNECT_ENV_ALLOWLIST_PATTERN
// allows; the engine produces to Kafka as the connector's principal. The
// REST API is shut down first, then the worker; if either stops on its
// own, serveConnect stops the other and returns why.
func serveConnect(ctx context.Context, d deps, ln net.Listener, auth connectAuth) error {
	cfg, kc, logger := d.cfg, d.kafkaAs(kafkaclient.PrincipalConnector), d.logger
	metrics := engine.NewMetrics(d.reg)
	engineLogger := logger.With("component", "cdc")
	w := worker.New(d.dbs.cdc, func(name string, c connect.Config) (worker.Task, error) {
		return engine.New(name, c, engine.Options{Kafka: kc, Metrics: metrics, Logger: engineLogger}), nil
	}, worker.Options{WorkerID: localAddr(ln.Addr()), Lookup: d.lookup, EnvAllowlist: cfg.envAllowlist,
		Logger: logger.With("component", "connect")})

	mux := http.NewServeMux()
	mux.Handle("/", rest.NewServer(w, rest.ServerOptions{Logger: logger, Credentials: auth.api}))
	var metricsHandler http.Handler = promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{})
	if auth.metrics != nil {
		metricsHandler = auth.metrics.Handler(rest.Realm, connectUnauthorized, metricsHandler)
	}
	mux.Handle("GET /metrics", metricsHandler)
	logger.Info("kafka connect worker starting", "kafka", kc)

	// The REST API serves until ctx is done or the worker stops; the
	// worker runs until the REST API has shut down.
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() {
		workerDone <- w.Run(workerCtx)
		stopServing()
	}()
	var errs []error
	if err := serveAs(serveCtx, "serve connect REST API", ln, mux, cfg.timeouts(cfg.ConnectHTTPWriteTimeout)); err != nil {
		errs = append(errs, err)
	}
	workerStopped := workerCtx.Err() == nil && ctx.Err() == nil && len(errs) == 0
	stopWorker()
	err := <-workerDone
	switch {
	case workerStopped:
		errs = append(errs, fmt.Errorf("connect worker stopped: %v", err))
	case err != nil && !errors.Is(err, context.Canceled):
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
