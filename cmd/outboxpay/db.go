package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// openDB opens a connection pool on dsn whose sessions carry app as their
// application_name (unless dsn sets one; see withApplicationName), and waits,
// with backoff, until the database answers or DB_CONNECT_TIMEOUT passes.
func openDB(ctx context.Context, d deps, dsn, app string) (*sql.DB, error) {
	if dsn == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	dsn, err := withApplicationName(dsn, app)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("postgres", dsn)
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
// component's database, and the func that closes it. Its sessions are named
// after the subcommand: "outboxpay-" + d.command.
func (d deps) withDB(ctx context.Context) (deps, func() error, error) {
	db, err := openDB(ctx, d, d.cfg.DatabaseURL, appName(d.command))
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

// appName is the application_name of a component's sessions:
// "outboxpay-" + component, or "outboxpay" for none.
func appName(component string) string {
	if component == "" {
		return "outboxpay"
	}
	return "outboxpay-" + component
}

// withApplicationName returns dsn (a postgres:// URL or lib/pq's key=value
// form) with application_name set to name, so that pg_stat_activity and the
// server's log tell the components' sessions apart; an application_name the
// DSN sets already is kept. name must be a bare word (letters, digits, '-').
func withApplicationName(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// The error would quote the URL, password included.
			return "", errors.New("DATABASE_URL is not a valid URL")
		}
		q := u.Query()
		if q.Get("application_name") != "" {
			return dsn, nil
		}
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, _ := strings.Cut(f, "="); strings.TrimSpace(k) == "application_name" {
			return dsn, nil
		}
	}
	return strings.TrimSpace(dsn + " application_name=" + name), nil
}
