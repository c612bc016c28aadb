package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// openDB opens a connection pool on url and waits, with backoff, until the
// database answers or cfg.DBConnectTimeout passes.
func openDB(ctx context.Context, cfg config, url string, logger *slog.Logger) (*sql.DB, error) {
	if url == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(cfg.DBMaxConns)
	db.SetMaxIdleConns(cfg.DBMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := db.PingContext(pingCtx)
		if err != nil {
			logger.Warn("database not reachable yet", "err", err)
		}
		return struct{}{}, err
	}, backoff.WithMaxElapsedTime(cfg.DBConnectTimeout))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return db, nil
}
