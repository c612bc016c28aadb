package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	_ "github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
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

func runAPI(ctx context.Context, cfg config, logger *slog.Logger) error {
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := newRegistry()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, cfg, reg, logger, nil) })
	g.Go(func() error { return serveAPI(ctx, cfg, db, reg, logger, nil) })
	return g.Wait()
}

// newRegistry returns the process's metrics registry, with Go runtime and
// process metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveAPI serves the HTTP API until ctx is done, then drains in-flight
// requests for up to cfg.ShutdownTimeout. listening, if not nil, is called
// with the bound address once the API accepts connections.
func serveAPI(ctx context.Context, cfg config, db *sql.DB, reg prometheus.Registerer, logger *slog.Logger, listening func(net.Addr)) error {
	auth, err := apiAuth(ctx, cfg, logger)
	if err != nil {
		return err
	}
	e, err := api.New(shop.New(db), api.Config{
		MaxBodyBytes:   cfg.APIMaxBodyBytes,
		RequestTimeout: cfg.APIRequestTimeout,
		Ready:          db.PingContext,
		Registerer:     reg,
		Logger:         logger,
		Auth:           auth,
		RateLimit:      api.RateLimit{Rate: cfg.APIRateLimit, Burst: cfg.APIRateBurst},
		TrustedProxies: cfg.apiTrustedProxies,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.APIAddr, err)
	}
	srv := newHTTPServer(cfg, e, cfg.HTTPWriteTimeout)
	logger.Info("api listening", "addr", ln.Addr().String())
	if listening != nil {
		listening(ln.Addr())
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve api: %w", err)
	case <-ctx.Done():
	}
	logger.Info("api shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down api: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve api: %w", err)
	}
	return nil
}
