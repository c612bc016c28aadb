package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// devDatabase is the database `dev` creates in its private cluster.
const devDatabase = "outboxpay"

// runDev runs the whole system on this machine, in this process, and stops
// it in the reverse order when ctx is done: a private Postgres (unless
// DATABASE_URL is set), an embedded Kafka (unless KAFKA_BOOTSTRAP_SERVERS is
// set), the migrations and demo data, the development token issuer (unless
// an identity provider is configured), the CDC engine with its Kafka Connect
// REST API, the platform mock, /metrics, then the connector registered, the
// consumer groups, the reconciler with the lag exporter, the operator
// console (CONSOLE_ADDR), and the API. It
// returns the first failure, joined with those of stopping what it started.
func runDev(ctx context.Context, d deps) (err error) {
	if d.cfg, err = devCredentials(d.cfg, d.logger); err != nil {
		return err
	}

	databaseURL, stopPostgres, err := startDevPostgres(ctx, d)
	if err != nil {
		return err
	}
	defer closing(&err, stopPostgres)

	kafka, stopKafka, err := startDevKafka(ctx, d)
	if err != nil {
		return err
	}
	defer closing(&err, stopKafka)
	d.kafkaAs = kafka.as

	var cdcURL string
	if d.dbs, cdcURL, err = openDevDatabases(ctx, d, databaseURL); err != nil {
		return err
	}
	defer closing(&err, d.dbs.close)
	if d.lookup, err = devLookup(cdcURL); err != nil {
		return err
	}

	// Without an identity provider configured, dev is its own: a signing
	// key under DATA_DIR, its JWK Set served on AUTH_ISSUER_ADDR, and a
	// token for each demo user under DATA_DIR/tokens.
	var (
		issuer *devtoken.Issuer
		tokens = map[int64]string{}
	)
	if d.cfg.AuthJWKSURL == "" && d.cfg.AuthPublicKeyFile == "" {
		if issuer, _, err = devIssuer(d.cfg, true); err != nil {
			return err
		}
		d.cfg.AuthIssuer = issuer.Name
		if tokens, err = writeDemoTokens(issuer, filepath.Join(d.cfg.DataDir, "tokens"), shop.DemoUsers(), d.cfg.DevTokenTTL); err != nil {
			return err
		}
	}

	// The operator planes and /metrics listen first: the API and the
	// workers need their addresses.
	servers, err := devServers(d, issuer)
	if err != nil {
		return err
	}
	defer closing(&err, servers.close)
	connectURL := "http://" + localAddr(servers.connect.Addr())
	if _, set := os.LookupEnv("PLATFORM_URL"); !set {
		d.cfg.PlatformURL = "http://" + localAddr(servers.mock.Addr())
	}
	if issuer != nil {
		d.cfg.AuthJWKSURL = "http://" + localAddr(servers.issuer.Addr()) + devtoken.JWKSPath
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveConnect(ctx, d, servers.connect, servers.connectAuth) })
	g.Go(func() error {
		return serveAs(ctx, "platform mock", servers.mock, servers.mockHandler, d.cfg.timeouts(platformMockWriteTimeout(d.cfg)))
	})
	if issuer != nil {
		g.Go(func() error {
			return serveAs(ctx, "token issuer", servers.issuer, servers.issuerHandler, d.cfg.timeouts(d.cfg.HTTPWriteTimeout))
		})
	}
	g.Go(func() error {
		return serveAs(ctx, "metrics", servers.metrics, metricsHandler(d.reg), d.cfg.timeouts(d.cfg.HTTPWriteTimeout))
	})
	g.Go(func() error {
		// The connector holds its slot before the API takes a payment, so no
		// outbox row is written before change data capture can see it.
		if _, err := registerConnector(ctx, d, connectURL, d.dbs.worker); err != nil {
			return err
		}
		groups, err := consumerGroups(d)
		if err != nil {
			return err
		}
		g.Go(func() error { return runGroups(ctx, groups) })
		g.Go(func() error { return reconcileAndExport(ctx, d, connectURL) })
		o, closeOps, err := opsService(ctx, d, connectURL)
		if err != nil {
			return err
		}
		g.Go(func() error {
			defer closeOps()
			return serveConsole(ctx, d, servers.console, o)
		})
		ln, err := listen(d.logger, "api", d.cfg.APIAddr)
		if err != nil {
			return err
		}
		fmt.Print(banner(devEndpoints{
			api: ln.Addr(), metrics: servers.metrics.Addr(), connectURL: connectURL, platformURL: d.cfg.PlatformURL,
			database: databaseURL, kafka: kafka.bootstrap, kafkaUsersFile: kafka.usersFile, tokens: tokens,
			consoleURL: "http://" + localAddr(servers.console.Addr()),
		}, d.cfg))
		return serveAPI(ctx, d, ln)
	})
	return g.Wait()
}

// startDevPostgres starts the private cluster under DATA_DIR/postgres with
// the database outboxpay, unless DATABASE_URL is set. It returns the URL of
// the database (a superuser's) and the func that stops the cluster.
func startDevPostgres(ctx context.Context, d deps) (string, func() error, error) {
	if d.cfg.DatabaseURL != "" {
		return d.cfg.DatabaseURL, func() error { return nil }, nil
	}
	dir, err := filepath.Abs(filepath.Join(d.cfg.DataDir, "postgres"))
	if err != nil {
		return "", nil, fmt.Errorf("data dir: %w", err)
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Durable: true, Logger: d.logger})
	if err != nil {
		return "", nil, err
	}
	stop := func() error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := cluster.Stop(stopCtx); err != nil {
			return fmt.Errorf("stop private postgres: %w", err)
		}
		return nil
	}
	if err := createDatabase(ctx, cluster, devDatabase); err != nil {
		return "", nil, errors.Join(err, stop())
	}
	url := cluster.URL(devDatabase)
	d.logger.Info("private postgres running", "data_dir", dir, "url", redactDatabaseURL(url))
	return url, stop, nil
}

// devKafka is the Kafka `dev` uses.
type devKafka struct {
	bootstrap string
	// usersFile holds the embedded cluster's users; "" for another Kafka.
	usersFile string
	// as returns the Kafka settings of a component by its principal.
	as func(principal string) kafkaclient.Config
}

// startDevKafka starts the embedded cluster, each component a principal
// of its own (passwords in DATA_DIR/kafka-users), unless
// KAFKA_BOOTSTRAP_SERVERS is set; it returns the cluster and the func that
// stops it.
func startDevKafka(ctx context.Context, d deps) (devKafka, func() error, error) {
	if d.cfg.KafkaBootstrap != "" {
		return devKafka{bootstrap: d.cfg.KafkaBootstrap, as: d.kafkaAs}, func() error { return nil }, nil
	}
	ports := d.cfg.KafkaPorts
	if slices.Contains(ports, 0) { // 0: free ports
		ports = nil
	}
	usersFile, err := filepath.Abs(filepath.Join(d.cfg.DataDir, "kafka-users"))
	if err != nil {
		return devKafka{}, nil, fmt.Errorf("data dir: %w", err)
	}
	sasl, err := embeddedSASL(usersFile)
	if err != nil {
		return devKafka{}, nil, err
	}
	kc, err := startKafka(ctx, d, ports, sasl)
	if err != nil {
		return devKafka{}, nil, err
	}
	d.logger.Info("kafka users", "users_file", usersFile)
	bootstrap := kc.Bootstrap()
	return devKafka{bootstrap: bootstrap, usersFile: usersFile, as: func(principal string) kafkaclient.Config {
		pw := sasl.Users[principal]
		if principal == sasl.Superuser {
			pw = sasl.SuperuserPassword
		}
		return kafkaclient.Config{Bootstrap: bootstrap}.WithUser(sasl.Mechanism, principal, pw)
	}}, kc.Close, nil
}

// devLookup is what ${env:...} in `dev`'s connector configs resolves to:
// the environment, else OUTBOX_DB_* of the connector's database at cdcURL;
// the worker and registerConnector resolve only the names
// CONNECT_ENV_ALLOWLIST_PATTERN allows.
func devLookup(cdcURL string) (func(string) (string, bool), error) {
	dbEnv, err := connect.DatabaseEnv(cdcURL)
	if err != nil {
		return nil, err
	}
	return func(name string) (string, bool) {
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		v, ok := dbEnv[name]
		return v, ok
	}, nil
}

// devListeners are the bound listeners of `dev`'s operator planes and
// /metrics, with what they serve.
type devListeners struct {
	connect, mock, issuer, metrics net.Listener // issuer: nil without dev's issuer
	console                        net.Listener
	connectAuth                    connectAuth
	mockHandler, issuerHandler     http.Handler
}

// devServers checks the operator planes' credentials and binds their
// listeners and /metrics' (the issuer's with issuer, unless nil).
func devServers(d deps, issuer *devtoken.Issuer) (_ devListeners, err error) {
	var s devListeners
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	if s.connectAuth, err = connectCredentials(d.cfg, d.logger); err != nil {
		return s, err
	}
	if s.mockHandler, err = platformMock(d); err != nil {
		return s, err
	}
	if s.connect, err = listen(d.logger, "kafka connect REST API", d.cfg.ConnectAddr); err != nil {
		return s, err
	}
	if s.mock, err = listen(d.logger, "platform mock", d.cfg.PlatformMockAddr); err != nil {
		return s, err
	}
	if s.metrics, err = listen(d.logger, "metrics", d.cfg.MetricsAddr); err != nil {
		return s, err
	}
	if _, err = consoleCredentials(d.cfg); err != nil {
		return s, err
	}
	if s.console, err = listen(d.logger, "console", d.cfg.ConsoleAddr); err != nil {
		return s, err
	}
	if issuer != nil {
		if s.issuerHandler, err = issuer.Handler(); err != nil {
			return s, err
		}
		if s.issuer, err = listen(d.logger, "token issuer", d.cfg.AuthIssuerAddr); err != nil {
			return s, err
		}
	}
	return s, nil
}

// close closes the listeners that serve has not closed already.
func (s devListeners) close() error {
	for _, ln := range []net.Listener{s.connect, s.mock, s.issuer, s.metrics, s.console} {
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("close listener: %w", err)
			}
		}
	}
	return nil
}

// openDevDatabases migrates the database of adminURL (a superuser's), seeds
// it when SEED_DEMO_DATA says so, gives the roles their passwords (see
// devRoles), and opens a pool as each role. It returns the pools and the
// URL as the connector's role.
func openDevDatabases(ctx context.Context, d deps, adminURL string) (databases, string, error) {
	admin, err := openDB(ctx, d, adminURL, appName("dev-setup"))
	if err != nil {
		return databases{}, "", err
	}
	defer admin.Close()
	if err := migrate(ctx, admin, d.logger); err != nil {
		return databases{}, "", err
	}
	if d.cfg.SeedDemoData {
		if err := seedDemo(ctx, admin, d.logger); err != nil {
			return databases{}, "", err
		}
	}
	urls, err := devRoles(ctx, admin, adminURL, d.cfg.DataDir, d.logger)
	if err != nil {
		return databases{}, "", err
	}
	// The workers (consumer groups, reconciler, lag exporter) share a pool.
	var dbs databases
	for _, p := range []struct {
		dst       **sql.DB
		url, name string
	}{{&dbs.api, urls.API, "api"}, {&dbs.worker, urls.Worker, "worker"}, {&dbs.cdc, urls.CDC, "cdc"},
		{&dbs.operator, urls.Operator, "operator"}} {
		if *p.dst, err = openDB(ctx, d, p.url, appName(p.name)); err != nil {
			return databases{}, "", errors.Join(err, dbs.close())
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
// the same file unless PLATFORM_MOCK_CREDENTIALS_FILE is set, and so does the
// console unless CONSOLE_CREDENTIALS_FILE is set.
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
	if cfg.ConsoleCredentialsFile == "" {
		cfg.ConsoleCredentialsFile = cfg.ConnectRESTCredentialsFile
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
