package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/outboxpay/outboxpay/internal/shop"
)

// runSeed fills an empty database with the demo users and products, as
// `dev` does; it leaves a database with any user or product alone.
func runSeed(ctx context.Context, d deps) error {
	d, closeDB, err := d.withDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	return seedDemo(ctx, d.dbs.api, d.logger)
}

// seedDemo fills db with the demo users and products unless it holds any
// user or product.
func seedDemo(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	seeded, err := shop.New(db).SeedDemo(ctx)
	if err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	if seeded {
		logger.Info("demo data seeded: users 1-3, products 1-3")
	} else {
		logger.Info("database has users or products already: nothing seeded")
	}
	return nil
}
