package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
	"golang.org/x/sync/errgroup"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// devDatabase is the database `dev` creates in its private cluster.
const devDatabase = "outboxpay"

// runDev runs the whole system on this machine, in this process: a private
// Postgres (unless DATABASE_URL is set), an embedded Kafka (unless
// KAFKA_BOOTSTRAP_SERVERS is set), the migrations, demo data, the CDC engine
// with its Kafka Connect REST API and the connector registered, the platform
// mock, the consumer groups, the reconciler with the lag exporter, and the
// API. It stops everything it started when ctx is done.
func runDev(ctx context.Context, cfg config, logger *slog.Logger) (err error) {
	cfg, err = devCredentials(cfg, logger)
	if err != nil {
		return err
	}
	url := cfg.DatabaseURL
	if url == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "postgres"))
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Durable: true, Logger: logger})
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if stopErr := cluster.Stop(stopCtx); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}()
		if err := createDatabase(ctx, cluster, devDatabase); err != nil {
			return err
		}
		url = cluster.URL(devDatabase)
		logger.Info("private postgres running", "data_dir", dir, "url", redactDatabaseURL(url))
	}

	bootstrap := cfg.KafkaBootstrap
	// kafkaAs returns the Kafka settings of a component, by its principal.
	kafkaAs := func(string) kafkaclient.Config { return cfg.kafka(bootstrap) }
	usersFile := ""
	if bootstrap == "" {
		ports := cfg.KafkaPorts
		if slices.Contains(ports, 0) { // 0: free ports
			ports = nil
		}
		usersFile = filepath.Join(cfg.DataDir, "kafka-users")
		sasl, err := embeddedSASL(usersFile)
		if err != nil {
			return err
		}
		kc, err := kafkacluster.Start(ctx, kafkacluster.Options{
			Brokers: len(cfg.KafkaPorts),
			Ports:   ports,
			DataDir: filepath.Join(cfg.DataDir, "kafka"),
			Logger:  logger,
			SASL:    sasl,
		})
		if err != nil {
			return err
		}
		defer func() {
			if closeErr := kc.Close(); closeErr != nil {
				err = errors.Join(err, closeErr)
			}
		}()
		bootstrap = kc.Bootstrap()
		kafkaAs = func(principal string) kafkaclient.Config {
			pw := sasl.Users[principal]
			if principal == sasl.Superuser {
				pw = sasl.SuperuserPassword
			}
			return kafkaclient.Config{Bootstrap: bootstrap}.WithUser(sasl.Mechanism, principal, pw)
		}
		logger.Info("embedded kafka running", "bootstrap", bootstrap, "sasl", sasl.Mechanism, "users_file", usersFile)
	}

	dbs, cdcURL, err := openDevDatabases(ctx, cfg, url, logger)
	if err != nil {
		return err
	}
	defer dbs.close()

	dbEnv, err := connect.DatabaseEnv(cdcURL)
	if err != nil {
		return err
	}
	// What ${env:...} resolves to: the environment, else the private
	// database's OUTBOX_DB_*; the worker and registerConnector resolve only
	// the names CONNECT_ENV_ALLOWLIST_PATTERN allows.
	lookup := func(name string) (string, bool) {
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		v, ok := dbEnv[name]
		return v, ok
	}

	// Without an identity provider configured, dev is its own: a signing
	// key under DATA_DIR, its JWK Set served on AUTH_ISSUER_ADDR, and a
	// token for each demo user under DATA_DIR/tokens.
	var issuer *devtoken.Issuer
	tokens := map[int64]string{}
	if cfg.AuthJWKSURL == "" && cfg.AuthPublicKeyFile == "" {
		if issuer, _, err = devIssuer(cfg, true); err != nil {
			return err
		}
		cfg.AuthIssuer = issuer.Name
		if tokens, err = writeDemoTokens(issuer, filepath.Join(cfg.DataDir, "tokens"), shop.DemoUsers(), cfg.DevTokenTTL); err != nil {
			return err
		}
	}

	reg := newRegistry()
	g, gctx := errgroup.WithContext(ctx)
	connectAddr, mockAddr, issuerAddr, metricsAddr := make(chan net.Addr, 1), make(chan net.Addr, 1), make(chan net.Addr, 1), make(chan net.Addr, 1)
	g.Go(func() error {
		return serveConnect(gctx, cfg, dbs.cdc, kafkaAs(kafkaclient.PrincipalConnector), reg, lookup, logger, func(a net.Addr) { connectAddr <- a })
	})
	g.Go(func() error {
		return servePlatformMock(gctx, cfg, logger, func(a net.Addr) { mockAddr <- a })
	})
	if issuer != nil {
		g.Go(func() error { return serveIssuer(gctx, cfg, issuer, logger, func(a net.Addr) { issuerAddr <- a }) })
	}
	g.Go(func() error { return serveMetrics(gctx, cfg, reg, logger, func(a net.Addr) { metricsAddr <- a }) })
	g.Go(func() error {
		waitFor := []chan net.Addr{connectAddr, mockAddr, metricsAddr}
		if issuer != nil {
			waitFor = append(waitFor, issuerAddr)
		}
		addrs := map[chan net.Addr]net.Addr{}
		for _, ch := range waitFor {
			select {
			case addrs[ch] = <-ch:
			case <-gctx.Done():
				return nil
			}
		}
		connectURL := "http://" + localAddr(addrs[connectAddr])
		mockURL := "http://" + localAddr(addrs[mockAddr])
		if _, set := os.LookupEnv("PLATFORM_URL"); !set {
			cfg.PlatformURL = mockURL
		}
		if issuer != nil {
			cfg.AuthJWKSURL = "http://" + localAddr(addrs[issuerAddr]) + devtoken.JWKSPath
		}
		// The connector holds its slot before the API takes a payment, so no
		// outbox row is written before change data capture can see it.
		if err := registerConnector(gctx, cfg, connectURL, lookup, dbs.worker, logger); err != nil {
			return err
		}
		groups, err := consumerGroups(cfg, dbs.worker, kafkaAs, reg, logger)
		if err != nil {
			return err
		}
		g.Go(func() error { return runGroups(gctx, groups) })
		g.Go(func() error {
			return reconcileAndExport(gctx, cfg, dbs.worker, kafkaAs(kafkaclient.PrincipalReconciler), connectURL, reg, logger)
		})
		return serveAPI(gctx, cfg, dbs.api, reg, logger, func(apiAddr net.Addr) {
			fmt.Print(banner(devEndpoints{
				api: apiAddr, metrics: addrs[metricsAddr], connectURL: connectURL, platformURL: cfg.PlatformURL,
				database: url, kafka: bootstrap, kafkaUsersFile: usersFile, tokens: tokens,
			}, cfg))
		})
	})
	return g.Wait()
}

// devDatabases are `dev`'s connection pools, one per component's role.
type devDatabases struct {
	api, worker, cdc *sql.DB
}

func (d devDatabases) close() {
	for _, db := range []*sql.DB{d.api, d.worker, d.cdc} {
		if db != nil {
			db.Close()
		}
	}
}

// openDevDatabases migrates the database of adminURL (a superuser's), seeds
// it when cfg says so, gives the roles their passwords (see devRoles), and
// opens a pool as each role. It returns the pools and the URL as the
// connector's role.
func openDevDatabases(ctx context.Context, cfg config, adminURL string, logger *slog.Logger) (devDatabases, string, error) {
	admin, err := openDB(ctx, cfg, adminURL, logger)
	if err != nil {
		return devDatabases{}, "", err
	}
	defer admin.Close()
	if err := migrate(ctx, admin, logger); err != nil {
		return devDatabases{}, "", err
	}
	if cfg.SeedDemoData {
		seeded, err := shop.New(admin).SeedDemo(ctx)
		if err != nil {
			return devDatabases{}, "", fmt.Errorf("seed demo data: %w", err)
		}
		if seeded {
			logger.Info("demo data seeded: users 1-3, products 1-3")
		}
	}
	urls, err := devRoles(ctx, admin, adminURL, cfg.DataDir, logger)
	if err != nil {
		return devDatabases{}, "", err
	}
	var dbs devDatabases
	for dst, u := range map[**sql.DB]string{&dbs.api: urls.API, &dbs.worker: urls.Worker, &dbs.cdc: urls.CDC} {
		if *dst, err = openDB(ctx, cfg, u, logger); err != nil {
			dbs.close()
			return devDatabases{}, "", err
		}
	}
	return dbs, urls.CDC, nil
}

// createDatabase creates the named database unless it exists.
func createDatabase(ctx context.Context, c *pgcluster.Cluster, name string) error {
	err := c.CreateDatabase(ctx, name, "")
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

// devCredentialsFile is the credentials file `dev` creates under DATA_DIR,
// and devUser its user.
const (
	devCredentialsFile = "connect-credentials.properties"
	devUser            = "admin"
)

// devCredentials returns cfg with the credentials of the Kafka Connect REST
// API and of the platform mock's operator endpoints set. Without
// CONNECT_REST_CREDENTIALS_FILE it uses $DATA_DIR/connect-credentials.properties,
// created (0600) with the user admin and a random password unless it exists,
// and dev's own client signs in as admin; with it, dev's client uses
// CONNECT_REST_USERNAME and CONNECT_REST_PASSWORD. The platform mock uses
// the same file unless PLATFORM_MOCK_CREDENTIALS_FILE is set.
func devCredentials(cfg config, logger *slog.Logger) (config, error) {
	if cfg.ConnectRESTCredentialsFile != "" {
		if cfg.ConnectRESTUsername == "" || cfg.ConnectRESTPassword == "" {
			return cfg, errors.New("CONNECT_REST_CREDENTIALS_FILE is set: set CONNECT_REST_USERNAME and CONNECT_REST_PASSWORD to one of its users too")
		}
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return cfg, fmt.Errorf("data dir: %w", err)
		}
		path, err := filepath.Abs(filepath.Join(cfg.DataDir, devCredentialsFile))
		if err != nil {
			return cfg, fmt.Errorf("data dir: %w", err)
		}
		users, err := basicauth.ParseFile(path)
		if errors.Is(err, os.ErrNotExist) {
			password, err := basicauth.RandomPassword()
			if err != nil {
				return cfg, err
			}
			users = []basicauth.User{{Name: devUser, Password: password}}
			if err := basicauth.WriteFile(path, users...); err != nil {
				return cfg, err
			}
			logger.Info("kafka connect REST credentials created", "file", path, "user", devUser)
		} else if err != nil {
			return cfg, err
		}
		i := slices.IndexFunc(users, func(u basicauth.User) bool { return u.Name == devUser })
		if i < 0 {
			return cfg, fmt.Errorf("credentials file %s has no user %s (delete it to have a new one made)", path, devUser)
		}
		cfg.ConnectRESTCredentialsFile = path
		cfg.ConnectRESTUsername, cfg.ConnectRESTPassword = devUser, users[i].Password
	}
	if cfg.PlatformMockCredentialsFile == "" {
		cfg.PlatformMockCredentialsFile = cfg.ConnectRESTCredentialsFile
	}
	return cfg, nil
}

// redactDatabaseURL is a Postgres URL or key=value connection string with
// its password replaced by xxxxx.
func redactDatabaseURL(s string) string {
	if u, err := neturl.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(s, "://") {
		return "(a database URL that does not parse)"
	}
	return regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`).ReplaceAllString(s, "${1}xxxxx")
}
