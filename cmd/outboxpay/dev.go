package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
		if usersFile, err = filepath.Abs(filepath.Join(cfg.DataDir, "kafka-users")); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
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

// registerConnector puts the connector config through the Kafka Connect REST
// API (idempotent), then waits until its task runs and holds its slot.
func registerConnector(ctx context.Context, cfg config, connectURL string, lookup func(string) (string, bool),
	db *sql.DB, logger *slog.Logger) error {
	req, err := loadConnector(cfg.ConnectorConfig)
	if err != nil {
		return err
	}
	parsed, err := (connect.Env{Lookup: lookup, Allow: cfg.envAllowlist}).ParseConfig(req.Config)
	if err != nil {
		return fmt.Errorf("connector %s: %w", req.Name, err)
	}
	client := cfg.connectClient(connectURL, 30*time.Second)
	if _, _, err := client.PutConnectorConfig(ctx, req.Name, req.Config); err != nil {
		return fmt.Errorf("register connector %s: %w", req.Name, err)
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := client.ConnectorStatus(ctx, req.Name)
		if err == nil && len(st.Tasks) > 0 && st.Tasks[0].State == connect.StateFailed {
			return fmt.Errorf("connector %s failed: %s", req.Name, st.Tasks[0].Trace)
		}
		var active bool
		if err == nil {
			err = db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL)`,
				parsed.SlotName).Scan(&active)
		}
		if active {
			logger.Info("connector running", "connector", req.Name, "slot", parsed.SlotName)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connector %s did not start streaming within a minute (last error: %v)", req.Name, err)
		case <-tick.C:
		}
	}
}

// loadConnector reads a connector (name and config, as POST /connectors
// takes it) from path, or the shipped outbox-connector.json when path is "".
func loadConnector(path string) (connect.CreateRequest, error) {
	if path == "" {
		return connect.OutboxConnector()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return connect.CreateRequest{}, fmt.Errorf("read connector config: %w", err)
	}
	var req connect.CreateRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Name == "" || req.Config == nil {
		return connect.CreateRequest{}, fmt.Errorf("%s: want {\"name\": ..., \"config\": {...}} (%v)", path, err)
	}
	return req, nil
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

// localAddr turns a listener's address into one a client on this machine can dial.
func localAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return tcp.String()
}

// embeddedSASL returns the SASL settings of the embedded cluster: the
// product's principals and ACLs, their passwords from usersFile (random
// ones added for the principals it lacks, kept across restarts).
func embeddedSASL(usersFile string) (*kafkacluster.SASL, error) {
	users, err := kafkaclient.EnsureUsers(usersFile, append([]string{kafkaclient.PrincipalAdmin}, kafkaclient.Principals()...)...)
	if err != nil {
		return nil, err
	}
	return kafkaSASL(users)
}

// kafkaSASL returns the embedded cluster's SASL settings for users (name ->
// password), which must hold the superuser and every principal.
func kafkaSASL(users map[string]string) (*kafkacluster.SASL, error) {
	s := &kafkacluster.SASL{
		Mechanism:         kafkaclient.EmbeddedMechanism,
		Superuser:         kafkaclient.PrincipalAdmin,
		SuperuserPassword: users[kafkaclient.PrincipalAdmin],
		Users:             map[string]string{},
		ACLs:              kafkaclient.ACLs(),
	}
	if s.SuperuserPassword == "" {
		return nil, fmt.Errorf("kafka users: no password for %s", kafkaclient.PrincipalAdmin)
	}
	for _, p := range kafkaclient.Principals() {
		if users[p] == "" {
			return nil, fmt.Errorf("kafka users: no password for %s", p)
		}
		s.Users[p] = users[p]
	}
	return s, nil
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

// curlCredentials is what the banner's curl commands pass to -u: a command
// substitution that reads dev's generated password from its file (so the
// password itself is never printed), or the CONNECT_REST_* variables.
func curlCredentials(cfg config) string {
	if cfg.ConnectRESTUsername == devUser && strings.HasSuffix(cfg.ConnectRESTCredentialsFile, string(filepath.Separator)+devCredentialsFile) {
		return fmt.Sprintf(`"%s:$(sed -n 's/^%s: *//p' '%s')"`, devUser, devUser, cfg.ConnectRESTCredentialsFile)
	}
	return `"$CONNECT_REST_USERNAME:$CONNECT_REST_PASSWORD"`
}

// devEndpoints are what `dev` runs, for its banner.
type devEndpoints struct {
	api, metrics            net.Addr
	connectURL, platformURL string
	database, kafka         string
	kafkaUsersFile          string           // the embedded Kafka's users; "" for another Kafka
	tokens                  map[int64]string // demo user -> token file; empty with an external identity provider
}

func banner(ep devEndpoints, cfg config) string {
	base := "http://" + localAddr(ep.api)
	creds := curlCredentials(cfg)
	// The curls read the token from its file, as they do the password.
	bearer := `"Authorization: Bearer $TOKEN"`
	if path, ok := ep.tokens[1]; ok {
		bearer = fmt.Sprintf(`"Authorization: Bearer $(cat '%s')"`, path)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\noutboxpay is running. Ctrl-C stops everything.\n\n")
	fmt.Fprintf(&b, "  API            %s   (OpenAPI: %s/openapi.yaml)\n", base, base)
	fmt.Fprintf(&b, "  Metrics        http://%s/metrics   (the API's, the consumers' and the reconciler's)\n", localAddr(ep.metrics))
	fmt.Fprintf(&b, "  Kafka Connect  %s   (connector: %s/connectors/outbox/status, metrics: %s/metrics)\n", ep.connectURL, ep.connectURL, ep.connectURL)
	fmt.Fprintf(&b, "  Platform       %s/events   (what the data-platform consumer delivered)\n", ep.platformURL)
	fmt.Fprintf(&b, "  Kafka          %s\n", ep.kafka)
	fmt.Fprintf(&b, "  Postgres       %s\n", redactDatabaseURL(ep.database))
	fmt.Fprintf(&b, "  Credentials    Kafka Connect and the platform mock's /events and /faults need HTTP Basic:\n")
	fmt.Fprintf(&b, "                 user %s, password in %s\n", cfg.ConnectRESTUsername, cfg.ConnectRESTCredentialsFile)
	if len(ep.tokens) > 0 {
		users := slices.Sorted(maps.Keys(ep.tokens))
		fmt.Fprintf(&b, "                 the API needs a bearer token: demo users %v have one (every scope, valid %v) in %s\n",
			users, cfg.DevTokenTTL, filepath.Dir(ep.tokens[users[0]]))
		fmt.Fprintf(&b, "                 more: outboxpay token --user N --scope 'orders payments'\n\n")
	} else {
		fmt.Fprintf(&b, "                 the API needs a bearer token of %s for %s: put it in $TOKEN\n\n", cfg.AuthIssuer, cfg.AuthAudience)
	}
	fmt.Fprintf(&b, "Try:\n")
	fmt.Fprintf(&b, "  curl -s -u %s %s/connectors/outbox/status\n", creds, ep.connectURL)
	fmt.Fprintf(&b, "  curl -s -u %s %s/events\n", creds, ep.platformURL)
	fmt.Fprintf(&b, "  curl -s -X POST %s/users/1/balance/charge -H %s -H 'Content-Type: application/json' -d '{\"amount\": 50000}'\n", base, bearer)
	fmt.Fprintf(&b, "  curl -s -X POST %s/orders -H %s -H 'Content-Type: application/json' -d '{\"items\": [{\"productDetailId\": 1, \"quantity\": 2}]}'\n", base, bearer)
	fmt.Fprintf(&b, "  curl -s -X POST %s/orders/1/payment -H %s -H 'Content-Type: application/json' -H 'Idempotency-Key: first-try' -d '{}'\n", base, bearer)
	fmt.Fprintf(&b, "  curl -s %s/orders/1 -H %s\n", base, bearer)
	if ep.kafkaUsersFile == "" {
		fmt.Fprintf(&b, "  kcat -b %s -C -t outbox.event.payment -f '%%k %%h %%s\\n' -e\n\n", strings.Split(ep.kafka, ",")[0])
	} else {
		fmt.Fprintf(&b, "  kcat -b %s -X security.protocol=SASL_PLAINTEXT -X sasl.mechanism=%s -X sasl.username=%s \\\n"+
			"    -X sasl.password=\"$(sed -n 's/^%s: //p' %s)\" -C -t outbox.event.payment -f '%%k %%h %%s\\n' -e\n\n",
			strings.Split(ep.kafka, ",")[0], kafkaclient.EmbeddedMechanism, kafkaclient.PrincipalAdmin, kafkaclient.PrincipalAdmin, ep.kafkaUsersFile)
	}
	return b.String()
}
