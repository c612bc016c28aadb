package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/ops"
)

// operations builds what the console acts with from d (its operator
// database pool, Kafka as the operator principal, the Kafka Connect REST
// API at connectURL), and returns the func that releases it.
type operations func(ctx context.Context, d deps, connectURL string) (operator.Operations, func() error, error)

// runConsole is `outboxpay console`: the operator API and the console page
// on CONSOLE_ADDR and /metrics on METRICS_ADDR, until ctx is done. It
// needs CONSOLE_CREDENTIALS_FILE, DATABASE_URL (as outboxpay_operator) and
// KAFKA_BOOTSTRAP_SERVERS, and acts on the connector of CONNECT_URL.
func runConsole(ctx context.Context, d deps, newOps operations) error {
	if err := needKafka(d.cfg); err != nil {
		return err
	}
	if _, err := consoleCredentials(d.cfg); err != nil { // before opening anything
		return err
	}
	d, closeDB, err := d.withDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	o, closeOps, err := newOps(ctx, d, d.cfg.ConnectURL)
	if err != nil {
		return err
	}
	defer closeOps()
	ln, err := listen(d.logger, "console", d.cfg.ConsoleAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, d) })
	g.Go(func() error { return serveConsole(ctx, d, ln, o) })
	return g.Wait()
}

// consoleCredentials are the operators of CONSOLE_CREDENTIALS_FILE.
func consoleCredentials(cfg config) (*basicauth.Credentials, error) {
	path := cfg.ConsoleCredentialsFile
	if path == "" {
		return nil, errors.New("console: CONSOLE_CREDENTIALS_FILE is not set: the operator API and the console need the operators' credentials file (`user: password` lines; see README.md, Console)")
	}
	creds, err := basicauth.Load(path)
	if err != nil {
		return nil, fmt.Errorf("console: CONSOLE_CREDENTIALS_FILE: %w", err)
	}
	return creds, nil
}

// consoleHandler is the operator API and the console page on o, for the
// operators of CONSOLE_CREDENTIALS_FILE (required: the console acts on the
// pipeline, so it is never open, not even on loopback).
func consoleHandler(d deps, o operator.Operations) (http.Handler, error) {
	creds, err := consoleCredentials(d.cfg)
	if err != nil {
		return nil, err
	}
	return operator.New(o, operator.Config{
		Credentials:    creds,
		Logger:         d.logger.With("component", "console"),
		RequestTimeout: d.cfg.ConsoleRequestTimeout,
		MaxBodyBytes:   d.cfg.APIMaxBodyBytes,
	})
}

// serveConsole serves consoleHandler on ln until ctx is done (see serve).
func serveConsole(ctx context.Context, d deps, ln net.Listener, o operator.Operations) error {
	h, err := consoleHandler(d, o)
	if err != nil {
		return err
	}
	return serveAs(ctx, "console", ln, h, d.cfg.timeouts(d.cfg.HTTPWriteTimeout))
}

// opsService is the console's operations: internal/ops on the operator's
// database pool, Kafka as the operator principal and the Kafka Connect REST
// API at connectURL.
func opsService(_ context.Context, d deps, connectURL string) (operator.Operations, func() error, error) {
	s, err := ops.New(ops.Config{
		DB:            d.dbs.operator,
		Kafka:         d.kafkaAs(kafkaclient.PrincipalOperator),
		Connect:       d.cfg.connectClient(connectURL, 10*time.Second),
		ConnectorName: d.cfg.ConnectorName,
		Router:        connect.DefaultRouter,
		Logger:        d.logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return s, func() error { s.Close(); return nil }, nil
}
