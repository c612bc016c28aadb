package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
	"github.com/outboxpay/outboxpay/migrations"
)

// Names of the system's processes.
const (
	procKafka      = "kafka"
	procConnect    = "connect"
	procAPI        = "api"
	procReconciler = "reconciler"
	procPlatform   = "platform-mock"
	procStock      = "consumer-stock"
	procDataPlat   = "consumer-data-platform"
	procTracker    = "consumer-outbox-tracker"
)

// consumerProcs are the consumer groups, each with the name of its process
// (of its replicas: name-1, name-2, ...).
var consumerProcs = []struct{ group, proc string }{
	{event.GroupStock, procStock}, {event.GroupDataPlatform, procDataPlat}, {event.GroupOutboxTracker, procTracker},
}

// replica is one process of a consumer group, and where it serves /metrics.
type replica struct {
	name, metrics string
}

// replicaName is the name of replica i (from 1) of n of a process: the
// process's name alone when it runs once.
func replicaName(proc string, i, n int) string {
	if n <= 1 {
		return proc
	}
	return fmt.Sprintf("%s-%d", proc, i)
}

// replicasOf returns the names of the replicas of a process, in order: the
// process alone when it is not replicated (Kafka, the engine, the
// reconciler, the platform mock).
func (s *system) replicasOf(proc string) []string {
	if _, ok := s.procs[proc]; ok {
		return []string{proc}
	}
	n := s.cfg.replicas()
	names := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		names = append(names, replicaName(proc, i, n))
	}
	return names
}

// system is the whole product as separate OS processes of one binary, plus
// a private Postgres: what the run drives and breaks.
type system struct {
	cfg       Config
	logger    *slog.Logger
	pg        *pgcluster.Cluster
	dbURL     string
	db        *sql.DB
	bootstrap string
	// kafkaUsers are the passwords of the Kafka principals (the kafka
	// process reads them from kafkaUsersFile).
	kafkaUsers map[string]string
	// apiURLs are the API replicas' base URLs; apiMetrics, in the same
	// order, where each serves /metrics (METRICS_ADDR).
	apiURLs, apiMetrics []string
	// consumers are each consumer group's replicas (processes).
	consumers map[string][]replica
	// issuer signs the load's bearer tokens; the API verifies them with its
	// public key (AUTH_PUBLIC_KEY_FILE).
	issuer   *devtoken.Issuer
	connect  string
	platform string
	// operator is the user of the Kafka Connect REST API and the platform
	// mock's operator endpoints, with password; credentials is their file.
	operator, password, credentials string
	procs                           map[string]*proc
	order                           []string      // start order
	stopping                        chan struct{} // closed by close: the supervisors stop
	wg                              sync.WaitGroup
}

const database = "outboxpay"

// startSystem starts Postgres, migrates it, then every process, registers
// the connector and waits until it streams. On an error it stops what it
// started.
func startSystem(ctx context.Context, cfg Config, logger *slog.Logger) (_ *system, err error) {
	// Not the named result: a failed start returns nil, and the deferred
	// close must still see what was started.
	s := &system{cfg: cfg, logger: logger, procs: map[string]*proc{}, stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	// The postgres user runs the server when the run is root: it must be
	// able to enter the folder.
	for d := cfg.Dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil && !errors.Is(err, os.ErrPermission) {
			return nil, err
		}
		if d == os.TempDir() {
			break
		}
	}
	s.pg, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(cfg.Dir, "postgres"), Durable: true, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := s.pg.CreateDatabase(ctx, database, ""); err != nil {
		return nil, err
	}
	s.dbURL = s.pg.URL(database)
	s.db, err = sql.Open("postgres", s.dbURL)
	if err != nil {
		return nil, err
	}

	// The operator planes require credentials, as in `make run`.
	s.operator, s.credentials = "chaos", filepath.Join(cfg.Dir, "operator-credentials.properties")
	if s.password, err = basicauth.RandomPassword(); err != nil {
		return nil, err
	}
	if err := os.Remove(s.credentials); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := basicauth.WriteFile(s.credentials, basicauth.User{Name: s.operator, Password: s.password}); err != nil {
		return nil, err
	}

	replicas := cfg.replicas()
	ports, err := freePorts(5 + replicas)
	if err != nil {
		return nil, err
	}
	kafkaPorts := ports[:3]
	connectPort, platform, apiPorts := ports[3], ports[4], ports[5:]
	s.bootstrap = fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", kafkaPorts[0], kafkaPorts[1], kafkaPorts[2])
	for _, p := range apiPorts {
		s.apiURLs = append(s.apiURLs, fmt.Sprintf("http://127.0.0.1:%d", p))
	}
	s.connect = fmt.Sprintf("http://127.0.0.1:%d", connectPort)
	s.platform = fmt.Sprintf("http://127.0.0.1:%d", platform)

	// Each process connects as its component's role; migrate, as the
	// superuser, creates the roles and gives them these passwords. The
	// checker (s.db) reads as the superuser.
	roles, err := roleURLs(s.dbURL)
	if err != nil {
		return nil, err
	}
	base := []string{
		"PATH=" + os.Getenv("PATH"),
		"KAFKA_BOOTSTRAP_SERVERS=" + s.bootstrap,
		"CONNECT_URL=" + s.connect,
		"CONNECT_REST_USERNAME=" + s.operator,
		"CONNECT_REST_PASSWORD=" + s.password,
		"PLATFORM_URL=" + s.platform,
		"PLATFORM_TIMEOUT=2s",
		"PLATFORM_MAX_TRIES=30",
		"SHUTDOWN_TIMEOUT=5s",
		"DB_CONNECT_TIMEOUT=10m",
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
		"DATA_DIR=" + cfg.Dir,
		// What ${env:...} in the connector config resolves to.
		"OUTBOX_DB_HOST=127.0.0.1",
		"OUTBOX_DB_PORT=" + strconv.Itoa(s.pg.Port()),
		"OUTBOX_DB_USER=" + migrations.RoleCDC,
		"OUTBOX_DB_PASSWORD=" + roles.passwords[migrations.RoleCDC],
		"OUTBOX_DB_NAME=" + database,
	}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	// The Kafka process requires SASL/SCRAM and enforces the product's ACLs;
	// each process authenticates as its own principal.
	usersFile := filepath.Join(cfg.Dir, "kafka-users")
	s.kafkaUsers, err = kafkaclient.EnsureUsers(usersFile, append([]string{kafkaclient.PrincipalAdmin}, kafkaclient.Principals()...)...)
	if err != nil {
		return nil, err
	}
	as := func(principal string) []string {
		return []string{"KAFKA_SASL_MECHANISM=" + kafkaclient.EmbeddedMechanism, "KAFKA_SASL_USERNAME=" + principal,
			"KAFKA_SASL_PASSWORD=" + s.kafkaUsers[principal]}
	}
	// The API verifies the tokens of the run's own issuer, with its public
	// key; the signing key stays with the harness.
	publicKey, err := s.startIssuer()
	if err != nil {
		return nil, err
	}
	// Metrics ports: the reconciler's, then each replica's consumer
	// processes' and API's.
	metrics, err := freePorts(1 + 4*replicas)
	if err != nil {
		return nil, err
	}
	add := func(name string, env []string, args ...string) {
		s.procs[name] = newProc(name, cfg.Binary, args, env, filepath.Join(cfg.Dir, "logs", name+".log"), logger)
		s.order = append(s.order, name)
	}
	add(procKafka, with("KAFKA_PORTS="+joinInts(kafkaPorts), "KAFKA_USERS_FILE="+usersFile), "kafka")
	add(procPlatform, with(fmt.Sprintf("PLATFORM_MOCK_ADDR=127.0.0.1:%d", platform),
		"PLATFORM_MOCK_CREDENTIALS_FILE="+s.credentials), "platform-mock")
	add(procConnect, with(append(as(kafkaclient.PrincipalConnector), roles.env(migrations.RoleCDC),
		fmt.Sprintf("CONNECT_ADDR=127.0.0.1:%d", connectPort), "CONNECT_REST_CREDENTIALS_FILE="+s.credentials)...), "connect")
	// Each replica of a group is its own process, in the same group (its
	// group id is the group's name): Kafka's group protocol shares the
	// partitions among them.
	s.consumers = map[string][]replica{}
	next := 1
	for i := 1; i <= replicas; i++ {
		for _, g := range consumerProcs {
			name := replicaName(g.proc, i, replicas)
			s.consumers[g.group] = append(s.consumers[g.group], replica{name: name,
				metrics: fmt.Sprintf("http://127.0.0.1:%d", metrics[next])})
			add(name, with(append(as(g.group), roles.env(migrations.RoleWorker), "CONSUMER_GROUPS="+g.group,
				fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", metrics[next]))...), "consumers")
			next++
		}
	}
	add(procReconciler, with(append(as(kafkaclient.PrincipalReconciler), roles.env(migrations.RoleWorker),
		fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", metrics[0]),
		"RECONCILE_INTERVAL=2s",
		"RECONCILE_STUCK_AFTER="+cfg.StuckAfter.String(),
		"RECONCILE_REPUBLISH_AFTER="+(2*cfg.StuckAfter).String(),
		"RECONCILE_PUBLISHED_STUCK_AFTER="+(3*cfg.StuckAfter).String(),
		"RECONCILE_MAX_ATTEMPTS=1000")...), "reconcile")
	// The API keeps its default rate limit (per token user): the load stays
	// far below it per user (see load.retry). Its replicas share the
	// database.
	for i := 1; i <= replicas; i++ {
		m := fmt.Sprintf("http://127.0.0.1:%d", metrics[next])
		next++
		s.apiMetrics = append(s.apiMetrics, m)
		add(replicaName(procAPI, i, replicas), with(roles.env(migrations.RoleAPI), "API_ADDR="+strings.TrimPrefix(s.apiURLs[i-1], "http://"),
			"METRICS_ADDR="+strings.TrimPrefix(m, "http://"),
			"AUTH_PUBLIC_KEY_FILE="+publicKey, "AUTH_ISSUER="+s.issuer.Name, "AUTH_AUDIENCE="+s.issuer.Audience), "api")
	}

	migrateEnv := with("DATABASE_URL="+s.dbURL,
		"DB_API_PASSWORD="+roles.passwords[migrations.RoleAPI],
		"DB_WORKER_PASSWORD="+roles.passwords[migrations.RoleWorker],
		"DB_CDC_PASSWORD="+roles.passwords[migrations.RoleCDC],
		"DB_OPERATOR_PASSWORD="+roles.passwords[migrations.RoleOperator])
	if err := s.runOnce(ctx, "migrate", migrateEnv, "migrate"); err != nil {
		return nil, err
	}
	for _, name := range s.order {
		if err := s.procs[name].start(); err != nil {
			return nil, err
		}
		if name == procConnect {
			// The connector holds its slot before anything writes to the outbox.
			if err := s.runOnce(ctx, "register-connector", with("CONNECTOR_WAIT=2m"), "register-connector"); err != nil {
				return nil, err
			}
			if err := s.waitSlot(ctx); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range s.procs {
		s.wg.Add(1)
		go s.superviseRestarts(p)
	}
	for i := range s.apiURLs {
		if err := s.waitHTTP(ctx, s.apiURLs[i]+"/readyz"); err != nil {
			return nil, err
		}
		if err := s.waitHTTP(ctx, s.apiMetrics[i]+"/healthz"); err != nil {
			return nil, err
		}
	}
	if err := s.waitHTTP(ctx, s.platform+"/healthz"); err != nil {
		return nil, err
	}
	return s, nil
}

// Who the run's tokens come from and are for.
const (
	issuerName = "outboxpay-chaos"
	audience   = "outboxpay"
)

// startIssuer loads or creates the run's signing key in its folder and
// writes the public half for the API; it returns that file's path.
func (s *system) startIssuer() (string, error) {
	var err error
	s.issuer, err = devtoken.LoadOrCreate(filepath.Join(s.cfg.Dir, "auth-signing-key.pem"), issuerName, audience)
	if err != nil {
		return "", fmt.Errorf("token issuer: %w", err)
	}
	pub, err := s.issuer.PublicKeyPEM()
	if err != nil {
		return "", fmt.Errorf("token issuer: %w", err)
	}
	path := filepath.Join(s.cfg.Dir, "auth-public-key.pem")
	if err := os.WriteFile(path, pub, 0o644); err != nil {
		return "", fmt.Errorf("token issuer: write the public key: %w", err)
	}
	return path, nil
}

// rolePasswords are random passwords for the migrations' roles, and the
// database's URL as each.
type rolePasswords struct {
	passwords map[string]string
	urls      map[string]string
}

func roleURLs(adminURL string) (rolePasswords, error) {
	r := rolePasswords{passwords: map[string]string{}, urls: map[string]string{}}
	for _, role := range migrations.Roles() {
		pw, err := migrations.NewPassword()
		if err != nil {
			return rolePasswords{}, err
		}
		u, err := url.Parse(adminURL)
		if err != nil {
			return rolePasswords{}, errors.New("database URL does not parse")
		}
		u.User = url.UserPassword(role, pw)
		r.passwords[role], r.urls[role] = pw, u.String()
	}
	return r, nil
}

// env returns the DATABASE_URL setting of a process that runs as role.
func (r rolePasswords) env(role string) string { return "DATABASE_URL=" + r.urls[role] }

// kafkaAdmin returns the settings of a Kafka client as the superuser, for
// reading back what the run wrote.
func (s *system) kafkaAdmin() kafkaclient.Config {
	return kafkaclient.Config{Bootstrap: s.bootstrap}.WithUser(kafkaclient.EmbeddedMechanism, kafkaclient.PrincipalAdmin,
		s.kafkaUsers[kafkaclient.PrincipalAdmin])
}

// superviseRestarts starts p again a second after it exited by itself,
// until the system closes.
func (s *system) superviseRestarts(p *proc) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stopping:
			return
		case <-p.restarts:
		}
		select {
		case <-s.stopping:
			return
		case <-time.After(time.Second):
		}
		if err := p.start(); err != nil {
			s.logger.Warn("restart", "proc", p.name, "err", err)
		}
	}
}

// runOnce runs a one-shot subcommand to its end.
func (s *system) runOnce(ctx context.Context, name string, env []string, args ...string) error {
	logPath := filepath.Join(s.cfg.Dir, "logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, s.cfg.Binary, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("outboxpay %s: %w (log: %s)", strings.Join(args, " "), err, logPath)
	}
	return nil
}

// waitSlot waits until the connector streams from its slot.
func (s *system) waitSlot(ctx context.Context) error {
	return poll(ctx, 2*time.Minute, "connector streaming from outbox_slot", func() (bool, error) {
		var ok bool
		err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots
			WHERE slot_name = 'outbox_slot' AND active AND confirmed_flush_lsn IS NOT NULL)`).Scan(&ok)
		return ok, err
	})
}

func (s *system) waitHTTP(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, 2*time.Minute, url, func() (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("%s", resp.Status)
	})
}

// connectClient is a Kafka Connect REST client for the engine.
func (s *system) connectClient() *rest.Client {
	return rest.NewClient(s.connect, &http.Client{Timeout: 10 * time.Second}, rest.BasicAuth(s.operator, s.password))
}

// operatorHeaders are the headers of a call to the platform mock's
// operator endpoints: the operator's Basic credentials.
func (s *system) operatorHeaders() map[string]string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(s.operator, s.password)
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}

// ensureRunning starts every process that is not running.
func (s *system) ensureRunning() error {
	var errs []error
	for _, name := range s.order {
		errs = append(errs, s.procs[name].start())
	}
	return errors.Join(errs...)
}

// crashes are the exits of each process that the run did not cause.
func (s *system) crashes() map[string]int {
	out := map[string]int{}
	for name, p := range s.procs {
		if n := p.crashCount(); n > 0 {
			out[name] = n
		}
	}
	return out
}

// close stops every process (API first, Kafka last), then Postgres.
func (s *system) close() {
	close(s.stopping)
	for i := len(s.order) - 1; i >= 0; i-- {
		if err := s.procs[s.order[i]].close(15 * time.Second); err != nil {
			s.logger.Warn("stop", "proc", s.order[i], "err", err)
		}
	}
	s.wg.Wait()
	if s.db != nil {
		s.db.Close()
	}
	if s.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.pg.Stop(ctx); err != nil {
			s.logger.Warn("stop postgres", "err", err)
		}
	}
}

// freePorts returns n loopback ports nothing listens on now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// poll calls f every 250 ms until it reports true, ctx ends or timeout
// passes; the error then names what was awaited and f's last error.
func poll(ctx context.Context, timeout time.Duration, what string, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	notYet := errors.New("not yet")
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		ok, err := f()
		if err != nil {
			last = err
		}
		if !ok {
			return struct{}{}, notYet
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(250*time.Millisecond)), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return fmt.Errorf("%s: not within %v (last error: %v)", what, timeout, last)
	}
	return nil
}
