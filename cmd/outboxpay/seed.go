package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/outboxpay/outboxpay/internal/shop"
)

// runSeed fills an empty database with the demo users and products, as
// `dev` does; it leaves a database with any user or product alone.
func runSeed(ctx context.Context, cfg config, logger *slog.Logger) error {
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
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
