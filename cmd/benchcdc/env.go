package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pglogrepl"
	_ "github.com/lib/pq"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
	"github.com/outboxpay/outboxpay/migrations"
)

// benchEnv is the private Postgres, with the migrated bench database, and
// the in-memory Kafka the stages run against.
type benchEnv struct {
	pg      *pgcluster.Cluster
	pgDir   string
	url     string // the bench database, as the postgres superuser
	db      *sql.DB
	kafka   *kafkacluster.Cluster
	sampler *cpuSampler
}

// startEnv starts Postgres and Kafka and migrates the bench database. On
// error it stops what it started.
func startEnv(ctx context.Context, tmp string, log *slog.Logger) (env *benchEnv, err error) {
	env = &benchEnv{pgDir: filepath.Join(tmp, "postgres")}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.close())
		}
	}()

	// Non-durable (fsync and full_page_writes off, synchronous_commit on):
	// commits cost no disk flush, which is not what decoding measures.
	env.pg, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: env.pgDir, Durable: false, Logger: log.With("component", "postgres")})
	if err != nil {
		return env, err
	}
	if err := env.pg.CreateDatabase(ctx, dbName, ""); err != nil {
		return env, err
	}
	env.url = env.pg.URL(dbName)
	if env.db, err = sql.Open("postgres", env.url); err != nil {
		return env, fmt.Errorf("open %s: %w", dbName, err)
	}
	if err := migrations.Up(ctx, env.db); err != nil {
		return env, fmt.Errorf("migrate %s: %w", dbName, err)
	}
	log.Info("postgres ready and migrated", "url", redactedURL(env.url))

	kafkaLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if env.kafka, err = kafkacluster.Start(ctx, kafkacluster.Options{Logger: kafkaLog}); err != nil {
		return env, err
	}
	log.Info("in-memory kafka (kfake) ready", "bootstrap", env.kafka.Bootstrap())

	env.sampler = newCPUSampler(os.Getpid(), postmasterPID(env.pgDir))
	return env, nil
}

// close stops Kafka and Postgres.
func (env *benchEnv) close() error {
	var errs []error
	if env.kafka != nil {
		errs = append(errs, env.kafka.Close())
	}
	if env.db != nil {
		errs = append(errs, env.db.Close())
	}
	if env.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		errs = append(errs, env.pg.Stop(ctx))
	}
	return errors.Join(errs...)
}

// serverVersion is SHOW server_version.
func (env *benchEnv) serverVersion(ctx context.Context) (string, error) {
	var v string
	if err := env.db.QueryRowContext(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "", fmt.Errorf("read server version: %w", err)
	}
	return v, nil
}

// createSlots creates one pgoutput logical slot per name.
func (env *benchEnv) createSlots(ctx context.Context, names ...string) error {
	for _, name := range names {
		if _, err := env.db.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, name); err != nil {
			return fmt.Errorf("create slot %s: %w", name, err)
		}
	}
	return nil
}

// currentLSN is pg_current_wal_lsn().
func (env *benchEnv) currentLSN(ctx context.Context) (pglogrepl.LSN, error) {
	var s string
	if err := env.db.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		return 0, fmt.Errorf("read current WAL position: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("read current WAL position: %w", err)
	}
	return lsn, nil
}

// outboxRows is the number of rows in the outbox.
func (env *benchEnv) outboxRows(ctx context.Context) (int, error) {
	var n int
	if err := env.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count outbox rows: %w", err)
	}
	return n, nil
}

// slotStats is what Postgres says about a slot: its confirmed position and,
// from pg_stat_replication_slots, the transactions it has decoded.
type slotStats struct {
	confirmed   pglogrepl.LSN
	decodedTxns int64
}

func (env *benchEnv) slotStats(ctx context.Context, slot string) (slotStats, error) {
	var (
		confirmed string
		txns      sql.NullInt64
	)
	err := env.db.QueryRowContext(ctx, `
		SELECT s.confirmed_flush_lsn::text, st.total_txns
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication_slots st USING (slot_name)
		WHERE s.slot_name = $1`, slot).Scan(&confirmed, &txns)
	if err != nil {
		return slotStats{}, fmt.Errorf("read slot %s: %w", slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(confirmed)
	if err != nil {
		return slotStats{}, fmt.Errorf("read slot %s: %w", slot, err)
	}
	return slotStats{confirmed: lsn, decodedTxns: txns.Int64}, nil
}

// slotInactive waits until no session holds the slot any more (a
// walsender's statistics are written when it exits).
func (env *benchEnv) slotInactive(ctx context.Context, slot string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errActive := errors.New("slot still active")
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		var active bool
		err := env.db.QueryRowContext(ctx, `SELECT active AND confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		switch {
		case err != nil:
			return struct{}{}, backoff.Permanent(err)
		case active:
			return struct{}{}, errActive
		}
		return struct{}{}, nil
	}, every(20*time.Millisecond)...)
	if err != nil {
		return fmt.Errorf("wait for slot %s to be released: %w", slot, err)
	}
	return nil
}

// connectorConfig is the shipped connector (outbox-connector.json) on slot,
// as submitted (with its ${env:...} references), and resolved and parsed
// for the bench database.
func (env *benchEnv) connectorConfig(slot string) (raw map[string]string, cfg connect.Config, err error) {
	req, err := connect.OutboxConnector()
	if err != nil {
		return nil, connect.Config{}, err
	}
	raw = req.Config
	raw["slot.name"] = slot
	dbEnv, err := connect.DatabaseEnv(env.url)
	if err != nil {
		return nil, connect.Config{}, err
	}
	allow, err := connect.CompileEnvAllowlist(connect.DefaultEnvAllowlistPattern)
	if err != nil {
		return nil, connect.Config{}, err
	}
	lookup := func(name string) (string, bool) {
		v, ok := dbEnv[name]
		return v, ok
	}
	if cfg, err = (connect.Env{Lookup: lookup, Allow: allow}).ParseConfig(raw); err != nil {
		return nil, connect.Config{}, fmt.Errorf("parse connector config: %w", err)
	}
	return raw, cfg, nil
}

// postmasterPID reads the postmaster's pid from postmaster.pid; 0 if it
// cannot (CPU figures then leave Postgres out).
func postmasterPID(dataDir string) int {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// redactedURL is a database URL with its password replaced by xxxxx, for
// logs; "" if it does not parse.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

// every are backoff.Retry's options of a poll: a try every interval, until
// the caller's context ends.
func every(interval time.Duration) []backoff.RetryOption {
	return []backoff.RetryOption{backoff.WithBackOff(backoff.NewConstantBackOff(interval)), backoff.WithMaxElapsedTime(0)}
}
