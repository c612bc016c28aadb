package main

import (
	"context"
	"database/sql"
	"log/slog"
	"maps"
	"slices"

	"github.com/outboxpay/outboxpay/migrations"
)

// runMigrate is `outboxpay migrate`: it applies the migrations to
// DATABASE_URL and gives the roles of DB_*_PASSWORD LOGIN and those
// passwords.
func runMigrate(ctx context.Context, d deps) error {
	d, closeDB, err := d.withDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	db := d.dbs.api
	if err := migrate(ctx, db, d.logger); err != nil {
		return err
	}
	if pw := d.cfg.rolePasswords(); len(pw) > 0 {
		if err := migrations.SetRolePasswords(ctx, db, pw); err != nil {
			return err
		}
		roles := slices.Sorted(maps.Keys(pw))
		d.logger.Info("database roles can log in", "roles", roles)
	}
	return nil
}

// migrate applies the migrations to db.
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
