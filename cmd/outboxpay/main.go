// Command outboxpay runs the payments backend: its HTTP API, the embedded CDC
// engine, its migrations, and `dev`, the whole system on one machine.
//
// Usage:
//
//	outboxpay dev       # private Postgres (unless DATABASE_URL), migrate, seed, serve the API
//	outboxpay api       # serve the HTTP API (DATABASE_URL required)
//	outboxpay connect   # the CDC engine's Kafka Connect worker (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS required)
//	outboxpay consumers # the consumer groups; reconcile: the reconciler; platform-mock; replay
//	outboxpay console   # the operator API and the console page; ops: its actions for scripts
//	outboxpay migrate   # apply the database migrations (DATABASE_URL required); seed: demo data
//	outboxpay register-connector  # put the connector config to Kafka Connect, wait until RUNNING
//	outboxpay healthcheck URL     # exit 0 when URL answers 2xx (container health checks)
//	outboxpay issuer    # the development token issuer's JWK Set; token --user N: one of its tokens
//	outboxpay ops retry ID --reason R   # the operator API's reads and actions, for scripts
//
// Configuration comes from environment variables; see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: outboxpay <command>

commands:
  dev            run the whole system on this machine (make run)
  api            serve the HTTP API
  connect        run the embedded CDC engine and its Kafka Connect REST API
  consumers      run the consumer groups (stock, data-platform, outbox-tracker)
  reconcile      run the reconciler and the lag exporter
  console        serve the operator API and the console page (CONSOLE_ADDR)
  platform-mock  serve the mock external data platform
  kafka          run the embedded Kafka (KAFKA_PORTS, state in DATA_DIR/kafka) as its own process
  replay         re-drive dead-lettered records to their topics, once
  migrate        apply the database migrations
  seed           fill an empty database with demo users and products
  register-connector
                 put the connector config to Kafka Connect (CONNECT_URL) unless it
                 holds it already, and wait until the connector is RUNNING
  issuer         serve the development token issuer's JWK Set (AUTH_ISSUER_ADDR)
  token --user N [--scope 'orders payments'] [--ttl 1h]
                 print an access token of the development issuer
  ops <subcommand> [arguments]
                 the operator API's reads and actions for scripts (summary, events,
                 event, retry, park, discard, dlq, redrive, connector, audit):
                 outboxpay ops help
  healthcheck URL
                 exit 0 when URL answers 2xx within 3 s, else 1; sends
                 CONNECT_REST_USERNAME/CONNECT_REST_PASSWORD as HTTP Basic if set

Configuration is read from environment variables; see README.md.
`

func main() {
	if len(os.Args) == 3 && os.Args[1] == "healthcheck" {
		// The Connect REST API's health check signs in like its clients.
		err := runHealthcheck(context.Background(), os.Args[2], os.Getenv("CONNECT_REST_USERNAME"), os.Getenv("CONNECT_REST_PASSWORD"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "token" {
		cfg, err := loadConfig()
		if err == nil {
			err = runToken(cfg, os.Args[2:], os.Stdout, os.Stderr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "ops" {
		cfg, err := loadConfig()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runOps(ctx, cfg, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) != 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	d := newDeps(cfg)
	d.command = os.Args[1]

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	run, ok := map[string]func(context.Context, deps) error{
		"dev":                runDev,
		"api":                runAPI,
		"connect":            runConnect,
		"consumers":          runConsumers,
		"reconcile":          runReconcile,
		"platform-mock":      runPlatformMock,
		"replay":             runReplay,
		"migrate":            runMigrate,
		"kafka":              runKafka,
		"issuer":             runIssuer,
		"seed":               runSeed,
		"register-connector": runRegisterConnector,
		"console":            func(ctx context.Context, d deps) error { return runConsole(ctx, d, opsService) },
	}[os.Args[1]]
	switch {
	case ok:
	case os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(ctx, d); err != nil && !errors.Is(err, context.Canceled) {
		d.logger.Error("outboxpay "+os.Args[1]+" failed", "err", err)
		os.Exit(1)
	}
}
