package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	_ "github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
)

const (
	dbName = "outboxpay"
	// stopGrace is how long dev gets to exit after SIGTERM.
	stopGrace = 30 * time.Second
	// bannerWait bounds dev's start-up.
	bannerWait = 3 * time.Minute
	// Every seeded order costs price, of one item of one of details
	// product details (order i holds detail i mod details, so the stock
	// group's updates spread over rows as a shop's would); every user can
	// pay one.
	price   = 100
	balance = 1_000_000
	details = 64
)

// system is the private Postgres and `outboxpay dev` running on it.
type system struct {
	pg    *pgcluster.Cluster
	pgDir string
	url   string // the database, as the postgres superuser
	db    *sql.DB
	// stats is the postgres database, as the superuser: pg_stat_activity,
	// pg_stat_statements (whose extension lives there, out of the
	// product's database).
	stats  *sql.DB
	dev    *pgcluster.Process
	devOut *os.File
	apiURL string
	// consoleURL, consoleUser and consolePassword are dev's console and
	// its login, from the banner.
	consoleURL, consoleUser, consolePassword string
	issuer                                   *devtoken.Issuer
	tools                                    string // the directory of the Postgres programs
	detail0                                  int64  // the first of the product details, consecutive ids
}

// buildOutboxpay builds ./cmd/outboxpay into tmp.
func buildOutboxpay(ctx context.Context, goTool, tmp string, log *slog.Logger) (string, error) {
	bin := filepath.Join(tmp, "outboxpay")
	log.Info("building outboxpay")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/outboxpay")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build outboxpay: %w", err)
	}
	return bin, nil
}

// startSystem starts Postgres and dev. On error it stops what it started.
func startSystem(ctx context.Context, bin, tmp string, log *slog.Logger) (s *system, err error) {
	s = &system{pgDir: filepath.Join(tmp, "postgres")}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	if s.tools, err = pgcluster.BinDir(); err != nil {
		return s, err
	}
	s.pg, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: s.pgDir, Logger: log.With("component", "postgres"),
		Settings: map[string]string{"shared_preload_libraries": "pg_stat_statements"}})
	if err != nil {
		return s, err
	}
	if err := s.pg.CreateDatabase(ctx, dbName, ""); err != nil {
		return s, err
	}
	s.url = s.pg.URL(dbName)
	// The bench's own sessions are named, to tell them from dev's.
	if s.db, err = sql.Open("postgres", s.url+"&application_name="+benchAppName); err != nil {
		return s, fmt.Errorf("open database: %w", err)
	}
	if s.stats, err = sql.Open("postgres", s.pg.URL("postgres")+"&application_name="+benchAppName); err != nil {
		return s, fmt.Errorf("open database postgres: %w", err)
	}
	if _, err := s.stats.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return s, fmt.Errorf("create extension pg_stat_statements: %w", err)
	}
	if err := s.startDev(ctx, bin, filepath.Join(tmp, "dev"), log); err != nil {
		return s, err
	}
	return s, nil
}

// apiLine and consoleLine are the banner's API and console lines.
var (
	apiLine     = regexp.MustCompile(`^\s+API\s+(http://\S+)`)
	consoleLine = regexp.MustCompile(`^\s+Console\s+(http://\S+)/console\s+\(log in as (\S+), password (\S+)\)`)
)

// startDev starts `outboxpay dev` on the database with every listener on a
// free loopback port, and waits for its banner.
func (s *system) startDev(ctx context.Context, bin, dataDir string, log *slog.Logger) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create dev data dir: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	if s.devOut, err = os.Create(filepath.Join(dataDir, "..", "dev.log")); err != nil {
		return fmt.Errorf("create dev log: %w", err)
	}
	cmd := exec.Command(bin, "dev")
	cmd.Env = append(os.Environ(),
		"DATA_DIR="+dataDir,
		"DATABASE_URL="+s.url,
		"SEED_DEMO_DATA=false",
		"API_RATE_LIMIT=0",
		"API_ADDR=127.0.0.1:0",
		"METRICS_ADDR=127.0.0.1:0",
		"CONNECT_ADDR=127.0.0.1:0",
		"PLATFORM_MOCK_ADDR=127.0.0.1:0",
		"AUTH_ISSUER_ADDR=127.0.0.1:0",
		"CONSOLE_ADDR=127.0.0.1:0",
		fmt.Sprintf("KAFKA_PORTS=%d,%d,%d", ports[0], ports[1], ports[2]),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = s.devOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start dev: %w", err)
	}
	if s.dev, err = pgcluster.StartProcess(cmd, nil); err != nil {
		return fmt.Errorf("start dev: %w", err)
	}
	// The banner, printed at once, names the API, then the console.
	type endpoints struct{ api, console, user, password string }
	found := make(chan endpoints, 1)
	go func() {
		var ep endpoints
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(s.devOut, sc.Text())
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				ep.api = m[1]
			}
			if m := consoleLine.FindStringSubmatch(sc.Text()); m != nil && ep.api != "" {
				ep.console, ep.user, ep.password = m[1], m[2], m[3]
				found <- ep
			}
		}
		_, _ = io.Copy(s.devOut, stdout)
	}()
	select {
	case ep := <-found:
		s.apiURL, s.consoleURL, s.consoleUser, s.consolePassword = ep.api, ep.console, ep.user, ep.password
	case <-s.dev.Done():
		return fmt.Errorf("dev exited before its banner (%v): see its log above", s.dev.Err())
	case <-time.After(bannerWait):
		return fmt.Errorf("dev printed no banner with its API and Console lines in %v", bannerWait)
	case <-ctx.Done():
		return ctx.Err()
	}
	log.Info("dev running", "api", s.apiURL, "log", s.devOut.Name())
	s.issuer, err = devtoken.Load(filepath.Join(dataDir, "auth-signing-key.pem"), "outboxpay-dev", "outboxpay")
	if err != nil {
		return fmt.Errorf("load dev's signing key: %w", err)
	}
	return nil
}

// freePorts returns n distinct loopback ports free at the time of asking.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// close stops dev, then Postgres.
func (s *system) close() error {
	var errs []error
	if s.dev != nil {
		_ = s.dev.Signal(syscall.SIGTERM)
		select {
		case <-s.dev.Done():
		case <-time.After(stopGrace):
			_ = s.dev.Kill()
			<-s.dev.Done()
			errs = append(errs, fmt.Errorf("dev ignored SIGTERM for %v: killed", stopGrace))
		}
	}
	if s.devOut != nil {
		errs = append(errs, s.devOut.Close())
	}
	for _, db := range []*sql.DB{s.db, s.stats} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if s.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		errs = append(errs, s.pg.Stop(ctx))
	}
	return errors.Join(errs...)
}

// serverVersion is SHOW server_version.
func (s *system) serverVersion(ctx context.Context) (string, error) {
	var v string
	if err := s.db.QueryRowContext(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "", fmt.Errorf("read server version: %w", err)
	}
	return v, nil
}

// seed creates users 1..n, each with balance, and orders 1..n, order i of
// user i, ORDERED, one item of the bench product at price.
func (s *system) seed(ctx context.Context, n int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var product int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO products (name) VALUES ('bench-e2e') RETURNING id`).Scan(&product); err != nil {
		return fmt.Errorf("seed product: %w", err)
	}
	// One statement in one session: the ids are consecutive.
	if err := tx.QueryRowContext(ctx, `
		WITH d AS (
			INSERT INTO product_details (product_id, option, price, stock)
			SELECT $1, 'option-' || g, $2, 2000000000 FROM generate_series(1, $3::int) g RETURNING id)
		SELECT min(id) FROM d`, product, price, details).Scan(&s.detail0); err != nil {
		return fmt.Errorf("seed product details: %w", err)
	}
	for _, step := range []struct {
		what, stmt string
		args       []any
	}{
		{"users", `INSERT INTO users (id, name, balance) SELECT g, 'bench-' || g, $2 FROM generate_series(1, $1::bigint) g`, []any{n, balance}},
		{"orders", `INSERT INTO orders (id, user_id, status, total_price) SELECT g, g, 'ORDERED', $2 FROM generate_series(1, $1::bigint) g`, []any{n, price}},
		{"order items", `INSERT INTO order_items (order_id, product_detail_id, quantity, unit_price) SELECT g, $2 + g % $4, 1, $3 FROM generate_series(1, $1::bigint) g`, []any{n, s.detail0, price, details}},
	} {
		if _, err := tx.ExecContext(ctx, step.stmt, step.args...); err != nil {
			return fmt.Errorf("seed %s: %w", step.what, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT setval('users_id_seq', $1), setval('orders_id_seq', $1)`, n); err != nil {
		return fmt.Errorf("seed: advance sequences: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed: commit: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM ANALYZE users, orders, order_items`); err != nil {
		return fmt.Errorf("seed: vacuum: %w", err)
	}
	return nil
}

// pgbenchPath is the pgbench next to the server's programs.
func (s *system) pgbenchPath() string { return filepath.Join(s.tools, "pgbench") }
