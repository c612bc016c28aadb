package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/pgcluster"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// devDatabase is the database `dev` creates in its private cluster.
const devDatabase = "outboxpay"

// runDev runs the whole system on this machine: a private Postgres (unless
// DATABASE_URL is set), the migrations, demo data, and the API. It stops
// everything it started when ctx is done.
func runDev(ctx context.Context, cfg config, logger *slog.Logger) (err error) {
	url := cfg.DatabaseURL
	if url == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "postgres"))
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Durable: true, Logger: logger})
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if stopErr := cluster.Stop(stopCtx); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}()
		if err := createDatabase(ctx, cluster, devDatabase); err != nil {
			return err
		}
		url = cluster.URL(devDatabase)
		logger.Info("private postgres running", "data_dir", dir, "url", url)
	}

	db, err := openDB(ctx, cfg, url, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate(ctx, db, logger); err != nil {
		return err
	}
	if cfg.SeedDemoData {
		seeded, err := shop.New(db).SeedDemo(ctx)
		if err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
		if seeded {
			logger.Info("demo data seeded: users 1-3, products 1-3")
		}
	}
	return serveAPI(ctx, cfg, db, newRegistry(), logger, func(addr net.Addr) {
		fmt.Print(banner(addr, url))
	})
}

// createDatabase creates the named database unless it exists.
func createDatabase(ctx context.Context, c *pgcluster.Cluster, name string) error {
	err := c.CreateDatabase(ctx, name, "")
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

func banner(addr net.Addr, dbURL string) string {
	port := addr.(*net.TCPAddr).Port
	base := fmt.Sprintf("http://localhost:%d", port)
	var b strings.Builder
	fmt.Fprintf(&b, "\noutboxpay is running. Ctrl-C stops everything.\n\n")
	fmt.Fprintf(&b, "  API       %s   (OpenAPI: %s/openapi.yaml, metrics: %s/metrics)\n", base, base, base)
	fmt.Fprintf(&b, "  Postgres  %s\n\n", dbURL)
	fmt.Fprintf(&b, "Try:\n")
	fmt.Fprintf(&b, "  curl -s -X POST %s/users/1/balance/charge -H 'Content-Type: application/json' -d '{\"amount\": 50000}'\n", base)
	fmt.Fprintf(&b, "  curl -s -X POST %s/orders -H 'Content-Type: application/json' -d '{\"userId\": 1, \"items\": [{\"productDetailId\": 1, \"quantity\": 2}]}'\n", base)
	fmt.Fprintf(&b, "  curl -s -X POST %s/orders/1/payment -H 'Content-Type: application/json' -H 'Idempotency-Key: first-try' -d '{\"userId\": 1}'\n", base)
	fmt.Fprintf(&b, "  curl -s %s/orders/1\n\n", base)
	return b.String()
}
