package main

import (
	"context"
	"database/sql"
	"log/slog"
	"maps"
	"slices"

	"github.com/outboxpay/outboxpay/migrations"
)

func runMigrate(ctx context.Context, cfg config, logger *slog.Logger) error {
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate(ctx, db, logger); err != nil {
		return err
	}
	if pw := cfg.rolePasswords(); len(pw) > 0 {
		if err := migrations.SetRolePasswords(ctx, db, pw); err != nil {
			return err
		}
		roles := slices.Sorted(maps.Keys(pw))
		logger.Info("database roles can log in", "roles", roles)
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	if err := migrations.Up(ctx, db); err != nil {
		return err
	}
	v, err := migrations.Version(ctx, db)
	if err != nil {
		return err
	}
	logger.Info("database schema up to date", "version", v)
	return nil
}
