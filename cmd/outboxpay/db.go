package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// openDB opens a connection pool on url and waits, with backoff, until the
// database answers or DB_CONNECT_TIMEOUT passes.
func openDB(ctx context.Context, d deps, url string) (*sql.DB, error) {
	if url == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(d.cfg.DBMaxConns)
	db.SetMaxIdleConns(d.cfg.DBMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := db.PingContext(pingCtx)
		if err != nil {
			d.logger.Warn("database not reachable yet", "err", err)
		}
		return struct{}{}, err
	}, backoff.WithMaxElapsedTime(d.cfg.DBConnectTimeout))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return db, nil
}

// withDB opens DATABASE_URL (see openDB) and returns d with it as every
// component's database, and the func that closes it.
func (d deps) withDB(ctx context.Context) (deps, func() error, error) {
	db, err := openDB(ctx, d, d.cfg.DatabaseURL)
	if err != nil {
		return d, nil, err
	}
	d.dbs = oneDB(db)
	return d, db.Close, nil
}

// needKafka is an error unless KAFKA_BOOTSTRAP_SERVERS is set.
func needKafka(cfg config) error {
	if cfg.KafkaBootstrap == "" {
		return errors.New("KAFKA_BOOTSTRAP_SERVERS is not set")
	}
	return nil
}
