package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// config is every setting, read once from the environment at start-up.
// README.md lists them with their defaults.
type config struct {
	// DatabaseURL is the Postgres to use. Unset in `dev`: a private cluster
	// is created under DataDir. Required by the other subcommands.
	DatabaseURL string `env:"DATABASE_URL"`
	// DataDir holds what `dev` keeps between runs (the private Postgres).
	DataDir string `env:"DATA_DIR" envDefault:".data"`
	// SeedDemoData makes `dev` fill an empty database with demo users and products.
	SeedDemoData bool `env:"SEED_DEMO_DATA" envDefault:"true"`
	// DBMaxConns bounds the connection pool.
	DBMaxConns int `env:"DB_MAX_CONNS" envDefault:"20"`
	// DBConnectTimeout bounds how long start-up waits for the database.
	DBConnectTimeout time.Duration `env:"DB_CONNECT_TIMEOUT" envDefault:"30s"`
	// DBAPIPassword, DBWorkerPassword, DBCDCPassword and
	// DBOperatorPassword, when set, make `migrate` give the roles
	// outboxpay_api, outboxpay_worker, outboxpay_cdc and outboxpay_operator
	// LOGIN and these passwords. Secrets: never logged.
	DBAPIPassword      string `env:"DB_API_PASSWORD"`
	DBWorkerPassword   string `env:"DB_WORKER_PASSWORD"`
	DBCDCPassword      string `env:"DB_CDC_PASSWORD"`
	DBOperatorPassword string `env:"DB_OPERATOR_PASSWORD"`

	// APIAddr is where the HTTP API listens; loopback by default. An
	// address of every interface (0.0.0.0:8080) opens it to the network.
	APIAddr string `env:"API_ADDR" envDefault:"127.0.0.1:8080"`
	// APIMaxBodyBytes bounds request bodies.
	APIMaxBodyBytes int64 `env:"API_MAX_BODY_BYTES" envDefault:"65536"`
	// APIRequestTimeout bounds the work of one request.
	APIRequestTimeout time.Duration `env:"API_REQUEST_TIMEOUT" envDefault:"10s"`
	// APIRateLimit is the requests per second one client (the user of a
	// valid token, else the IP) may make to the API, with bursts of
	// APIRateBurst; 0 in either disables the limit. /healthz, /readyz and
	// /openapi.yaml are not limited.
	APIRateLimit float64 `env:"API_RATE_LIMIT" envDefault:"50"`
	APIRateBurst int     `env:"API_RATE_BURST" envDefault:"100"`
	// APIMaxInFlight bounds the requests the API has admitted; past it a
	// request gets 503 with Retry-After at once. At most DB_MAX_CONNS of
	// them are worked on at once (a request holds at most one database
	// connection at a time); the others wait for one to finish, at most
	// APIQueueWait, then get the same 503. Unset or 0: 4 * DB_MAX_CONNS.
	APIMaxInFlight int           `env:"API_MAX_IN_FLIGHT"`
	APIQueueWait   time.Duration `env:"API_QUEUE_WAIT" envDefault:"40ms"`
	// APITrustedProxies are the CIDRs whose X-Forwarded-For the API believes
	// when it tells clients apart (for the rate limit); empty: the client is
	// the connection's peer address.
	APITrustedProxies []string `env:"API_TRUSTED_PROXIES"`
	// apiTrustedProxies is APITrustedProxies parsed by loadConfig.
	apiTrustedProxies []*net.IPNet

	// AuthJWKSURL is the JWK Set (an identity provider's jwks_uri) whose
	// keys sign the API's bearer tokens, fetched at start and every
	// AuthJWKSRefresh (and, at most every 30 s, for a token whose kid it
	// lacks); AuthPublicKeyFile is a PEM public key to use instead. `api`
	// needs one of them; `dev`, with neither, runs its own issuer.
	AuthJWKSURL       string        `env:"AUTH_JWKS_URL"`
	AuthJWKSRefresh   time.Duration `env:"AUTH_JWKS_REFRESH" envDefault:"15m"`
	AuthPublicKeyFile string        `env:"AUTH_PUBLIC_KEY_FILE"`
	// AuthIssuer is the "iss" a token must have (required by `api`; `dev`'s
	// own issuer is outboxpay-dev); AuthAudience the "aud" it must hold.
	AuthIssuer   string `env:"AUTH_ISSUER"`
	AuthAudience string `env:"AUTH_AUDIENCE" envDefault:"outboxpay"`
	// AuthAlgorithms are the signature algorithms a token may use: RS*,
	// PS*, ES* or EdDSA (never none or HMAC).
	AuthAlgorithms []string `env:"AUTH_ALGORITHMS" envDefault:"RS256,ES256"`
	// AuthLeeway is the clock skew allowed when checking exp, nbf and iat.
	AuthLeeway time.Duration `env:"AUTH_LEEWAY" envDefault:"30s"`
	// AuthSigningKeyFile is the development issuer's private key (`dev`,
	// `issuer`, `token`), created if missing; empty:
	// $DATA_DIR/auth-signing-key.pem. AuthIssuerAddr is where `dev` and
	// `issuer` serve its JWK Set (/.well-known/jwks.json: public keys only).
	// DevTokenTTL is the lifetime of the demo users' tokens `dev` writes to
	// $DATA_DIR/tokens.
	AuthSigningKeyFile string        `env:"AUTH_SIGNING_KEY_FILE"`
	AuthIssuerAddr     string        `env:"AUTH_ISSUER_ADDR" envDefault:"127.0.0.1:8091"`
	DevTokenTTL        time.Duration `env:"DEV_TOKEN_TTL" envDefault:"24h"`

	// KafkaBootstrap is the Kafka to use. Unset in `dev`: an embedded
	// cluster starts. Required by `connect`.
	KafkaBootstrap string `env:"KAFKA_BOOTSTRAP_SERVERS"`
	// Kafka holds the client security settings (KAFKA_SECURITY_PROTOCOL,
	// KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD;
	// default: no SASL) every Kafka client of this process uses. `dev`
	// with its embedded cluster ignores them: it gives each component its
	// own principal.
	Kafka kafkaclient.Config
	// KafkaUsersFile, for `kafka`, names the users file ("name: password"
	// lines, kafkaclient.PrincipalAdmin and kafkaclient.Principals()) that
	// turns on SASL/SCRAM and the product's ACLs; empty: no SASL.
	KafkaUsersFile string `env:"KAFKA_USERS_FILE"`
	// KafkaPorts are the embedded cluster's broker ports in `dev`, one per
	// broker; 0s pick free ports.
	KafkaPorts []int `env:"KAFKA_PORTS" envDefault:"9092,9093,9094"`
	// KafkaTopicPartitions is the partition count of the event topics the
	// embedded cluster creates (and of docker-compose.yml's topic job): a
	// group handles at most one partition per worker goroutine at once, so
	// it is the ceiling of a group's parallelism. A topic keeps the count
	// it was created with.
	KafkaTopicPartitions int `env:"KAFKA_TOPIC_PARTITIONS" envDefault:"6"`
	// ConnectAddr is where the Kafka Connect REST API of the embedded engine listens.
	// A non-loopback address needs ConnectRESTCredentialsFile.
	ConnectAddr string `env:"CONNECT_ADDR" envDefault:"127.0.0.1:8083"`
	// ConnectRESTCredentialsFile holds the users of the embedded engine's
	// Kafka Connect REST API (PropertyFileLoginModule format: `user:
	// password` lines); when set, every request needs HTTP Basic
	// credentials of one of them, /metrics included. Unset: the API is open,
	// which `connect` allows on a loopback address only. `dev` generates
	// $DATA_DIR/connect-credentials.properties when it is unset.
	ConnectRESTCredentialsFile string `env:"CONNECT_REST_CREDENTIALS_FILE"`
	// ConnectMetricsCredentialsFile (same format) holds users who may GET
	// the embedded engine's /metrics and nothing else, such as Prometheus;
	// the REST API's users may too. Unset: /metrics takes the REST API's
	// users only.
	ConnectMetricsCredentialsFile string `env:"CONNECT_METRICS_CREDENTIALS_FILE"`
	// ConnectRESTUsername and ConnectRESTPassword are the credentials the
	// clients of a Kafka Connect REST API (the reconciler,
	// register-connector) send; an empty username sends none.
	ConnectRESTUsername string `env:"CONNECT_REST_USERNAME"`
	ConnectRESTPassword string `env:"CONNECT_REST_PASSWORD"`
	// ConnectEnvAllowlistPattern is what names ${env:NAME} in a connector
	// config may reference (the whole name must match), as Kafka's
	// config.providers.env.param.allowlist.pattern.
	ConnectEnvAllowlistPattern string `env:"CONNECT_ENV_ALLOWLIST_PATTERN" envDefault:"OUTBOX_DB_[A-Z0-9_]*"`
	// envAllowlist is ConnectEnvAllowlistPattern compiled by loadConfig.
	envAllowlist *regexp.Regexp
	// ConnectorConfig is the connector `dev` and `register-connector`
	// register; empty: the shipped connect/outbox-connector.json.
	ConnectorConfig string `env:"CONNECTOR_CONFIG"`
	// ConnectorWait bounds how long `register-connector` and `dev` wait for
	// Kafka Connect to answer and the connector to run (`dev`: and its slot
	// to stream).
	ConnectorWait time.Duration `env:"CONNECTOR_WAIT" envDefault:"5m"`

	// PlatformURL is the external data platform the data-platform group POSTs to.
	PlatformURL string `env:"PLATFORM_URL" envDefault:"http://127.0.0.1:8090"`
	// PlatformTimeout bounds one POST; PlatformMaxTries bounds the POSTs of
	// one event before it goes to the DLQ.
	PlatformTimeout  time.Duration `env:"PLATFORM_TIMEOUT" envDefault:"5s"`
	PlatformMaxTries uint          `env:"PLATFORM_MAX_TRIES" envDefault:"8"`
	// PlatformInFlight bounds the POSTs one partition of the data-platform
	// group has in flight at once (one aggregate's events stay in order).
	PlatformInFlight int `env:"PLATFORM_IN_FLIGHT" envDefault:"16"`
	// ConsumerGroups are the groups `consumers` runs.
	ConsumerGroups []string `env:"CONSUMER_GROUPS" envDefault:"stock,data-platform,outbox-tracker"`
	// ConsumerVisibilityWindow is how long, from when a group first sees a
	// record, it retries a record whose outbox row it cannot see before
	// sending it to the DLQ.
	ConsumerVisibilityWindow time.Duration `env:"CONSUMER_VISIBILITY_WINDOW" envDefault:"1m"`

	// PlatformMock* configure `platform-mock` (and the mock `dev` runs).
	// PlatformMockCredentialsFile (PropertyFileLoginModule format) guards
	// the mock's operator endpoints (PUT /faults, GET /events, ...); unset,
	// the mock only starts on a loopback address. `dev` uses its Connect
	// credentials file when it is unset.
	PlatformMockAddr            string        `env:"PLATFORM_MOCK_ADDR" envDefault:"127.0.0.1:8090"`
	PlatformMockCredentialsFile string        `env:"PLATFORM_MOCK_CREDENTIALS_FILE"`
	PlatformMockFailureRate     float64       `env:"PLATFORM_MOCK_FAILURE_RATE" envDefault:"0"`
	PlatformMockLatency         time.Duration `env:"PLATFORM_MOCK_LATENCY" envDefault:"0s"`
	PlatformMockTimeoutRate     float64       `env:"PLATFORM_MOCK_TIMEOUT_RATE" envDefault:"0"`

	// ConnectURL is the Kafka Connect REST API the reconciler asks about the
	// connector (the embedded engine's, or Debezium's).
	ConnectURL    string `env:"CONNECT_URL" envDefault:"http://127.0.0.1:8083"`
	ConnectorName string `env:"CONNECTOR_NAME" envDefault:"outbox"`
	// Reconcile* configure the reconciler.
	ReconcileInterval            time.Duration `env:"RECONCILE_INTERVAL" envDefault:"30s"`
	ReconcileStuckAfter          time.Duration `env:"RECONCILE_STUCK_AFTER" envDefault:"5m"`
	ReconcileRepublishAfter      time.Duration `env:"RECONCILE_REPUBLISH_AFTER" envDefault:"10m"`
	ReconcilePublishedStuckAfter time.Duration `env:"RECONCILE_PUBLISHED_STUCK_AFTER" envDefault:"5m"`
	ReconcileMaxAttempts         int           `env:"RECONCILE_MAX_ATTEMPTS" envDefault:"5"`
	ReconcileRetention           time.Duration `env:"RECONCILE_RETENTION" envDefault:"168h"`
	// IdempotencyKeyRetention is how long a payment's Idempotency-Key is
	// kept; the reconciler deletes older keys, and a request reusing one is
	// a new request.
	IdempotencyKeyRetention time.Duration `env:"IDEMPOTENCY_KEY_RETENTION" envDefault:"24h"`
	// OrderExpiry is how long an order may stay unpaid (ORDERED) before the
	// reconciler marks it EXPIRED; an expired order cannot be paid.
	OrderExpiry time.Duration `env:"ORDER_EXPIRY" envDefault:"30m"`

	// ConsoleAddr is where `console` and `dev` serve the operator API
	// (/ops/...) and the console page (/console); loopback by default: its
	// HTTP Basic credentials cross the network in the clear, so any other
	// address belongs behind a TLS proxy.
	ConsoleAddr string `env:"CONSOLE_ADDR" envDefault:"127.0.0.1:8088"`
	// ConsoleCredentialsFile holds the operators (PropertyFileLoginModule
	// format: `user: password` lines); every request of the operator API
	// and the page needs HTTP Basic credentials of one of them, and the
	// audit log names the user. Required by `console`; `dev` uses its Kafka
	// Connect credentials file when it is unset.
	ConsoleCredentialsFile string `env:"CONSOLE_CREDENTIALS_FILE"`
	// ConsoleRequestTimeout bounds the work of one operator API request
	// (a re-drive of a whole DLQ topic included).
	ConsoleRequestTimeout time.Duration `env:"CONSOLE_REQUEST_TIMEOUT" envDefault:"30s"`
	// ConsoleURL, ConsoleUsername and ConsolePassword are what `outboxpay
	// ops` calls and signs in as (environment only: flags would show in ps).
	ConsoleURL      string `env:"CONSOLE_URL" envDefault:"http://127.0.0.1:8088"`
	ConsoleUsername string `env:"CONSOLE_USERNAME"`
	ConsolePassword string `env:"CONSOLE_PASSWORD"`

	// ReplayTopics are the dead-letter topics `replay` re-drives; default:
	// the dead-letter topic of every event topic (event.DLQTopics:
	// outbox.event.payment.dlq,outbox.event.order.dlq).
	ReplayTopics []string `env:"REPLAY_TOPICS"`
	// MetricsAddr is where `api`, `dev`, `consumers`, `reconcile` and
	// `platform-mock` serve /metrics and /healthz, apart from the API
	// (connect serves its /metrics on CONNECT_ADDR, behind its credentials).
	MetricsAddr string `env:"METRICS_ADDR" envDefault:"127.0.0.1:9100"`

	// HTTPReadTimeout bounds reading one request (line, headers and body)
	// on every HTTP server of this process; HTTPIdleTimeout bounds a
	// keep-alive connection waiting for its next request; HTTPMaxHeaderBytes
	// bounds a request's line and headers.
	HTTPReadTimeout    time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"30s"`
	HTTPIdleTimeout    time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"120s"`
	HTTPMaxHeaderBytes int           `env:"HTTP_MAX_HEADER_BYTES" envDefault:"65536"`
	// HTTPWriteTimeout bounds writing one response (from the end of the
	// request headers) of the API and the metrics listeners (the platform
	// mock adds its maximum injected latency); it must exceed
	// API_REQUEST_TIMEOUT. ConnectHTTPWriteTimeout is
	// the same for the Kafka Connect REST API (and its /metrics), whose
	// requests may take Kafka Connect's 90 s REST request timeout.
	HTTPWriteTimeout        time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"60s"`
	ConnectHTTPWriteTimeout time.Duration `env:"CONNECT_HTTP_WRITE_TIMEOUT" envDefault:"120s"`

	// ShutdownTimeout bounds the drain of in-flight work on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  slog.Level `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat string     `env:"LOG_FORMAT" envDefault:"text"`
}

func loadConfig() (config, error) {
	cfg, err := env.ParseAs[config]()
	if err != nil {
		return config{}, fmt.Errorf("read configuration: %w", err)
	}
	if len(cfg.ReplayTopics) == 0 {
		cfg.ReplayTopics = event.DLQTopics()
	}
	switch {
	case cfg.LogFormat != "text" && cfg.LogFormat != "json":
		return config{}, fmt.Errorf("read configuration: LOG_FORMAT must be text or json, not %q", cfg.LogFormat)
	case cfg.DBMaxConns < 1:
		return config{}, fmt.Errorf("read configuration: DB_MAX_CONNS must be at least 1")
	case cfg.ConsumerVisibilityWindow <= 0:
		return config{}, fmt.Errorf("read configuration: CONSUMER_VISIBILITY_WINDOW must be positive")
	case cfg.PlatformInFlight < 1:
		return config{}, fmt.Errorf("read configuration: PLATFORM_IN_FLIGHT must be at least 1")
	case cfg.KafkaTopicPartitions < 1:
		return config{}, fmt.Errorf("read configuration: KAFKA_TOPIC_PARTITIONS must be at least 1")
	case len(cfg.ConsumerGroups) == 0:
		return config{}, fmt.Errorf("read configuration: CONSUMER_GROUPS must name at least one group")
	case len(cfg.KafkaPorts) == 0:
		return config{}, fmt.Errorf("read configuration: KAFKA_PORTS must list at least one port")
	case cfg.APIMaxBodyBytes < 1:
		return config{}, fmt.Errorf("read configuration: API_MAX_BODY_BYTES must be at least 1")
	case cfg.HTTPReadTimeout <= 0 || cfg.HTTPIdleTimeout <= 0:
		return config{}, fmt.Errorf("read configuration: HTTP_READ_TIMEOUT and HTTP_IDLE_TIMEOUT must be positive")
	case cfg.HTTPMaxHeaderBytes < 1:
		return config{}, fmt.Errorf("read configuration: HTTP_MAX_HEADER_BYTES must be at least 1")
	case cfg.HTTPWriteTimeout <= cfg.APIRequestTimeout:
		return config{}, fmt.Errorf("read configuration: HTTP_WRITE_TIMEOUT (%v) must exceed API_REQUEST_TIMEOUT (%v)",
			cfg.HTTPWriteTimeout, cfg.APIRequestTimeout)
	case cfg.ConsoleRequestTimeout <= 0 || cfg.HTTPWriteTimeout <= cfg.ConsoleRequestTimeout:
		return config{}, fmt.Errorf("read configuration: CONSOLE_REQUEST_TIMEOUT (%v) must be positive and below HTTP_WRITE_TIMEOUT (%v)",
			cfg.ConsoleRequestTimeout, cfg.HTTPWriteTimeout)
	case cfg.ConnectHTTPWriteTimeout <= 0:
		return config{}, fmt.Errorf("read configuration: CONNECT_HTTP_WRITE_TIMEOUT must be positive")
	case cfg.OrderExpiry <= 0:
		return config{}, fmt.Errorf("read configuration: ORDER_EXPIRY must be positive")
	case cfg.AuthJWKSURL != "" && cfg.AuthPublicKeyFile != "":
		return config{}, fmt.Errorf("read configuration: set AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE, not both")
	case cfg.AuthJWKSRefresh < time.Minute:
		return config{}, fmt.Errorf("read configuration: AUTH_JWKS_REFRESH must be at least 1m")
	case cfg.DevTokenTTL <= 0:
		return config{}, fmt.Errorf("read configuration: DEV_TOKEN_TTL must be positive")
	case cfg.APIRateLimit < 0 || cfg.APIRateBurst < 0:
		return config{}, fmt.Errorf("read configuration: API_RATE_LIMIT and API_RATE_BURST must not be negative")
	case cfg.APIMaxInFlight < 0:
		return config{}, fmt.Errorf("read configuration: API_MAX_IN_FLIGHT must not be negative")
	case cfg.APIQueueWait < 0 || cfg.APIQueueWait >= cfg.APIRequestTimeout:
		return config{}, fmt.Errorf("read configuration: API_QUEUE_WAIT (%v) must be at least 0 and below API_REQUEST_TIMEOUT (%v)",
			cfg.APIQueueWait, cfg.APIRequestTimeout)
	}
	if cfg.APIMaxInFlight == 0 {
		cfg.APIMaxInFlight = 4 * cfg.DBMaxConns
	}
	for _, p := range cfg.APITrustedProxies {
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return config{}, fmt.Errorf("read configuration: API_TRUSTED_PROXIES: %w", err)
		}
		cfg.apiTrustedProxies = append(cfg.apiTrustedProxies, n)
	}
	if cfg.envAllowlist, err = connect.CompileEnvAllowlist(cfg.ConnectEnvAllowlistPattern); err != nil {
		return config{}, fmt.Errorf("read configuration: CONNECT_ENV_ALLOWLIST_PATTERN: %w", err)
	}
	if err := cfg.Kafka.Validate(); err != nil {
		return config{}, fmt.Errorf("read configuration: %w", err)
	}
	return cfg, nil
}

// kafka returns the settings of this process's Kafka clients for the
// cluster at bootstrap.
func (c config) kafka(bootstrap string) kafkaclient.Config {
	k := c.Kafka
	k.Bootstrap = bootstrap
	return k
}

func (c config) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
