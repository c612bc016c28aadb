package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// repoRoot is the repository's top folder; tests run in cmd/outboxpay.
const repoRoot = "../.."

// composeFile is what `docker-compose config` prints, as far as the checks read it.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	PullPolicy  string            `yaml:"pull_policy"`
	Command     any               `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []any             `yaml:"ports"`
	Expose      []any             `yaml:"expose"`
	Restart     string            `yaml:"restart"`
	Volumes     []any             `yaml:"volumes"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// command is the service's command as one string.
func (s composeService) command() string {
	switch c := s.Command.(type) {
	case string:
		return c
	case []any:
		parts := make([]string, len(c))
		for i, p := range c {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// containerPorts are the container-side ports the service publishes or
// exposes to the other services.
func (s composeService) containerPorts() []int {
	var ports []int
	for _, p := range s.Expose {
		if n, err := strconv.Atoi(strings.Split(fmt.Sprint(p), "/")[0]); err == nil {
			ports = append(ports, n)
		}
	}
	for _, p := range s.Ports {
		switch p := p.(type) {
		case map[string]any: // long syntax
			if n, ok := p["target"].(int); ok {
				ports = append(ports, n)
			}
		case string: // "host:container[/proto]"
			parts := strings.Split(strings.Split(p, "/")[0], ":")
			if n, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
				ports = append(ports, n)
			}
		}
	}
	return ports
}

// hostIPs are the host addresses of the ports the service publishes: "" for
// a port published on every interface.
func (s composeService) hostIPs() map[string]string {
	out := map[string]string{}
	for _, p := range s.Ports {
		switch p := p.(type) {
		case map[string]any: // long syntax
			ip, _ := p["host_ip"].(string)
			out[fmt.Sprint(p["published"], ":", p["target"])] = ip
		case string: // "[ip:]host:container[/proto]"
			parts := strings.Split(strings.Split(p, "/")[0], ":")
			ip := ""
			if len(parts) == 3 {
				ip = parts[0]
			}
			out[p] = ip
		}
	}
	return out
}

// composeConfig runs `docker-compose config` (Debian's docker-compose
// package: it needs no Docker engine) on the files, with .env.example's
// settings, and parses what it prints.
func composeConfig(t *testing.T, files ...string) composeFile {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is needed to validate docker-compose.yml (apt-get install docker-compose; .ci/run does): %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--env-file", filepath.Join(root, ".env.example")}
	for _, f := range files {
		args = append(args, "-f", filepath.Join(root, f))
	}
	cmd := exec.Command(bin, append(args, "config")...)
	cmd.Dir = root
	// Only .env.example's settings: the test's environment must not fill
	// in what the stack would miss.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose %v config: %v\n%s", files, err, stderr.String())
	}
	var cf composeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatalf("parse docker-compose config output: %v\n%s", err, out)
	}
	return cf
}

// The compose file validates, alone and with the embedded-engine override,
// and has what the production stack promises.
func TestComposeFile(t *testing.T) {
	cf := composeConfig(t, "docker-compose.yml")
	svc := func(name string) composeService {
		t.Helper()
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
		return s
	}

	t.Run("every service the README names exists, and the README names every service", func(t *testing.T) {
		named := readmeServices(t)
		for _, name := range named {
			if _, ok := cf.Services[name]; !ok {
				t.Errorf("README names service %q; docker-compose.yml does not have it", name)
			}
		}
		for name := range cf.Services {
			if !slices.Contains(named, name) {
				t.Errorf("service %q is not in README's Production stack table", name)
			}
		}
	})

	t.Run("postgres", func(t *testing.T) {
		pg := svc("postgres")
		m := regexp.MustCompile(`^postgres:(\d+)`).FindStringSubmatch(pg.Image)
		if m == nil {
			t.Fatalf("postgres image %q", pg.Image)
		}
		if v, _ := strconv.Atoi(m[1]); v < 16 {
			t.Errorf("postgres image %q, want 16 or newer", pg.Image)
		}
		for _, want := range []string{"wal_level=logical", "max_slot_wal_keep_size="} {
			if !strings.Contains(pg.command(), want) {
				t.Errorf("postgres command %q lacks %s", pg.command(), want)
			}
		}
		if pg.Healthcheck == nil {
			t.Error("postgres has no health check")
		}
		migrate := svc("migrate")
		if migrate.command() != "migrate" || migrate.DependsOn["postgres"].Condition != "service_healthy" {
			t.Errorf("migrate: command %q, depends on %+v", migrate.command(), migrate.DependsOn)
		}
	})

	t.Run("kafka: 3 KRaft brokers, topics with KAFKA_TOPIC_PARTITIONS partitions, RF 3, min.insync.replicas 2", func(t *testing.T) {
		var brokers []composeService
		for name, s := range cf.Services {
			if strings.HasPrefix(name, "kafka-") && s.Environment["KAFKA_NODE_ID"] != "" {
				brokers = append(brokers, s)
			}
		}
		if len(brokers) != 3 {
			t.Fatalf("%d brokers, want 3", len(brokers))
		}
		ids := map[string]bool{}
		for _, b := range brokers {
			env := b.Environment
			ids[env["KAFKA_NODE_ID"]] = true
			if env["KAFKA_PROCESS_ROLES"] != "broker,controller" || strings.Count(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], "@") != 3 ||
				env["CLUSTER_ID"] != brokers[0].Environment["CLUSTER_ID"] || env["CLUSTER_ID"] == "" {
				t.Errorf("broker %s is not a KRaft member of one 3-voter cluster: %v", env["KAFKA_NODE_ID"], env)
			}
			if env["KAFKA_DEFAULT_REPLICATION_FACTOR"] != "3" || env["KAFKA_MIN_INSYNC_REPLICAS"] != "2" {
				t.Errorf("broker %s defaults: RF %q, min ISR %q", env["KAFKA_NODE_ID"], env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"])
			}
			if b.Healthcheck == nil || b.Restart == "" {
				t.Errorf("broker %s: no health check or restart policy", env["KAFKA_NODE_ID"])
			}
		}
		if len(ids) != 3 {
			t.Errorf("broker node ids %v are not distinct", ids)
		}
		initCmd := svc("kafka-init").command()
		// .env.example leaves KAFKA_TOPIC_PARTITIONS unset: the compose
		// default, which must be the embedded cluster's (one fact).
		f, _ := reflect.TypeOf(config{}).FieldByName("KafkaTopicPartitions")
		partitions := fmt.Sprintf(`--partitions "%s"`, f.Tag.Get("envDefault"))
		for _, want := range []string{partitions, "--replication-factor 3", "--config min.insync.replicas=2", "--if-not-exists"} {
			if !strings.Contains(initCmd, want) {
				t.Errorf("kafka-init lacks %q", want)
			}
		}
		for _, topic := range []string{event.Topic(event.AggregatePayment), event.Topic(event.AggregateOrder)} {
			if !strings.Contains(initCmd, topic) || !strings.Contains(initCmd, topic+".dlq") {
				t.Errorf("kafka-init does not create %s and %s.dlq", topic, topic)
			}
		}
	})

	t.Run("debezium connect runs the shipped connector", func(t *testing.T) {
		c := svc("connect")
		env := c.Environment
		for _, k := range []string{"CONNECT_CONFIG_STORAGE_REPLICATION_FACTOR", "CONNECT_OFFSET_STORAGE_REPLICATION_FACTOR", "CONNECT_STATUS_STORAGE_REPLICATION_FACTOR"} {
			if env[k] != "3" {
				t.Errorf("connect %s = %q, want 3", k, env[k])
			}
		}
		if env["CONNECT_CONFIG_PROVIDERS"] != "env" || !strings.HasSuffix(env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"], "EnvVarConfigProvider") {
			t.Errorf("connect does not resolve ${env:...} placeholders: %v", env)
		}
		if !slices.Contains(c.containerPorts(), 9404) {
			t.Errorf("connect does not export its JMX metrics on :9404")
		}
		// Every ${env:NAME} of the connector config is set in the worker's environment.
		req, err := connect.OutboxConnector()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range req.Config {
			for _, m := range regexp.MustCompile(`\$\{env:([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(v, -1) {
				if env[m[1]] == "" {
					t.Errorf("connector config uses ${env:%s}; connect does not set it", m[1])
				}
			}
		}
		reg := svc("connector-register")
		if reg.command() != "register-connector" || reg.Environment["CONNECT_URL"] != "http://connect:8083" ||
			reg.Environment["CONNECTOR_CONFIG"] != "/etc/outboxpay/outbox-connector.json" {
			t.Errorf("connector-register: command %q, env %v", reg.command(), reg.Environment)
		}
	})

	t.Run("the project's services", func(t *testing.T) {
		for name, cmd := range map[string]string{"api": "api", "consumers": "consumers", "consumers-data-platform": "consumers",
			"consumers-outbox-tracker": "consumers", "reconciler": "reconcile", "platform-mock": "platform-mock", "auth-issuer": "issuer",
			"console": "console"} {
			s := svc(name)
			if s.command() != cmd || s.Image != svc("migrate").Image || svc("migrate").Build == nil {
				t.Errorf("%s: command %q, image %q; want %q of migrate's image, built from the Dockerfile", name, s.command(), s.Image, cmd)
			}
			if s.Healthcheck == nil || !slices.Contains(s.Healthcheck.Test, "healthcheck") {
				t.Errorf("%s: no `outboxpay healthcheck` health check", name)
			}
			if s.Restart != "unless-stopped" && s.Restart != "always" {
				t.Errorf("%s: restart %q", name, s.Restart)
			}
		}
		// Each service connects as its own role, or not at all; only the
		// one-shot migrate and seed use the superuser.
		for name, role := range map[string]string{
			"api": "outboxpay_api", "consumers": "outboxpay_worker", "reconciler": "outboxpay_worker", "console": "outboxpay_operator",
			"platform-mock": "", "connector-register": "", "auth-issuer": "", "migrate": "outboxpay", "seed": "outboxpay",
		} {
			dbURL := svc(name).Environment["DATABASE_URL"]
			if role == "" {
				if dbURL != "" {
					t.Errorf("%s needs no database, but has DATABASE_URL", name)
				}
				continue
			}
			if !strings.HasPrefix(dbURL, "postgres://"+role+":") || !strings.Contains(dbURL, "@postgres:5432/") {
				t.Errorf("%s: DATABASE_URL %q, want %s's", name, dbURL, role)
			}
		}
		mig := svc("migrate").Environment
		for _, v := range []string{"DB_API_PASSWORD", "DB_WORKER_PASSWORD", "DB_CDC_PASSWORD", "DB_OPERATOR_PASSWORD"} {
			if mig[v] != "change-me" {
				t.Errorf("migrate: %s = %q, want .env.example's", v, mig[v])
			}
		}
		if c := svc("connect").Environment; c["OUTBOX_DB_USER"] != "outboxpay_cdc" || c["OUTBOX_DB_PASSWORD"] != "change-me" {
			t.Errorf("connect: OUTBOX_DB_USER %q, want outboxpay_cdc with DB_CDC_PASSWORD", c["OUTBOX_DB_USER"])
		}
		for _, name := range []string{"kafka-ui", "prometheus", "grafana"} {
			svc(name)
		}
	})

	t.Run("secrets come from the environment, not the files", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
		if err != nil {
			t.Fatal(err)
		}
		// The password the test passed in .env.example reaches the services...
		if !strings.Contains(svc("api").Environment["DATABASE_URL"], ":change-me@") || svc("postgres").Environment["POSTGRES_PASSWORD"] != "change-me" {
			t.Error("POSTGRES_PASSWORD does not come from the environment")
		}
		// ...and no file of the stack holds one.
		if strings.Contains(string(raw), "change-me") {
			t.Error("docker-compose.yml holds a password")
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if m := regexp.MustCompile(`(?i)^\s*\w*PASSWORD\w*:\s*(.+)$`).FindStringSubmatch(line); m != nil && !strings.HasPrefix(m[1], "${") {
				t.Errorf("a literal password in docker-compose.yml: %s", strings.TrimSpace(line))
			}
		}
	})

	t.Run("kafka: SASL on every listener, ACLs as in Go, a password per principal", func(t *testing.T) {
		checkComposeKafkaSecurity(t, cf)
	})

	t.Run("prometheus scrapes services that serve metrics there", func(t *testing.T) {
		for _, target := range scrapeTargets(t) {
			host, port, err := net.SplitHostPort(target)
			if err != nil {
				t.Fatal(err)
			}
			if host == "localhost" {
				continue
			}
			s, ok := cf.Services[host]
			n, _ := strconv.Atoi(port)
			if !ok || !slices.Contains(s.containerPorts(), n) {
				t.Errorf("prometheus scrapes %s: no service %q publishing port %s", target, host, port)
			}
		}
	})

	t.Run("the embedded-engine override replaces Debezium", func(t *testing.T) {
		embedded := composeConfig(t, "docker-compose.yml", "docker-compose.embedded.yml")
		c := embedded.Services["connect"]
		if c.command() != "connect" || c.Build == nil || !strings.Contains(c.Environment["KAFKA_BOOTSTRAP_SERVERS"], "kafka-1") {
			t.Errorf("embedded connect: command %q, build %v, env %v", c.command(), c.Build, c.Environment)
		}
		if !strings.HasPrefix(c.Environment["DATABASE_URL"], "postgres://outboxpay_cdc:") || c.Environment["OUTBOX_DB_USER"] != "outboxpay_cdc" {
			t.Errorf("embedded connect: DATABASE_URL %q, OUTBOX_DB_USER %q; want outboxpay_cdc's",
				c.Environment["DATABASE_URL"], c.Environment["OUTBOX_DB_USER"])
		}
		if c.DependsOn["kafka-init"].Condition != "service_completed_successfully" {
			t.Errorf("embedded connect does not wait for kafka-init (its Kafka user): depends on %v", c.DependsOn)
		}
	})

	t.Run("every published port but the API's is bound to 127.0.0.1", func(t *testing.T) {
		for _, files := range [][]string{{"docker-compose.yml"}, {"docker-compose.yml", "docker-compose.embedded.yml"}} {
			for name, s := range composeConfig(t, files...).Services {
				for port, ip := range s.hostIPs() {
					if name == "api" {
						continue
					}
					if ip != "127.0.0.1" {
						t.Errorf("%v: %s publishes %s on %q, want 127.0.0.1", files, name, port, ip)
					}
				}
			}
		}
		if len(svc("api").Ports) == 0 {
			t.Error("the API is not published")
		}
	})

	t.Run("the project's services listen on every interface of the Docker network", func(t *testing.T) {
		embedded := composeConfig(t, "docker-compose.yml", "docker-compose.embedded.yml")
		for _, c := range []struct {
			s        composeService
			name, kv string
		}{
			{svc("api"), "api", "API_ADDR"},
			{svc("api"), "api", "METRICS_ADDR"},
			{svc("auth-issuer"), "auth-issuer", "AUTH_ISSUER_ADDR"},
			{svc("consumers"), "consumers", "METRICS_ADDR"},
			{svc("reconciler"), "reconciler", "METRICS_ADDR"},
			{svc("platform-mock"), "platform-mock", "PLATFORM_MOCK_ADDR"},
			{svc("console"), "console", "CONSOLE_ADDR"},
			{svc("console"), "console", "METRICS_ADDR"},
			{embedded.Services["connect"], "embedded connect", "CONNECT_ADDR"},
		} {
			if addr := c.s.Environment[c.kv]; !strings.HasPrefix(addr, ":") && !strings.HasPrefix(addr, "0.0.0.0:") {
				t.Errorf("%s: %s=%q; the default (loopback) is unreachable from the other containers", c.name, c.kv, addr)
			}
		}
	})

	t.Run("the API verifies tokens of the stack's issuer, which only the compose network reaches", func(t *testing.T) {
		iss, a := svc("auth-issuer"), svc("api")
		if len(iss.Ports) != 0 || !slices.Contains(iss.containerPorts(), 8091) || iss.Environment["AUTH_ISSUER_ADDR"] != ":8091" {
			t.Errorf("auth-issuer: ports %v, expose %v, AUTH_ISSUER_ADDR %q; want :8091 on the compose network only",
				iss.Ports, iss.Expose, iss.Environment["AUTH_ISSUER_ADDR"])
		}
		if hc := iss.Healthcheck; hc == nil || !slices.Contains(hc.Test, "http://127.0.0.1:8091"+devtoken.JWKSPath) {
			t.Errorf("auth-issuer's health check does not fetch the JWK Set: %+v", hc)
		}
		// Its signing key is on a named volume, which operator-credentials
		// gives to the image's nonroot user.
		keyDir := filepath.Dir(iss.Environment["AUTH_SIGNING_KEY_FILE"])
		onVolume := func(s composeService, dir string) bool {
			return slices.ContainsFunc(s.Volumes, func(v any) bool {
				return strings.HasPrefix(fmt.Sprint(v), "auth-signing-key:"+dir+":") ||
					strings.Contains(fmt.Sprint(v), "source:auth-signing-key") && strings.Contains(fmt.Sprint(v), "target:"+dir+" ")
			})
		}
		if keyDir == "." || !onVolume(iss, keyDir) {
			t.Errorf("auth-issuer: AUTH_SIGNING_KEY_FILE %q is not on the auth-signing-key volume: %v", iss.Environment["AUTH_SIGNING_KEY_FILE"], iss.Volumes)
		}
		oc := svc("operator-credentials")
		if !onVolume(oc, "/auth-signing-key") || !strings.Contains(oc.command(), "chown 65532:65532 /auth-signing-key") ||
			iss.DependsOn["operator-credentials"].Condition != "service_completed_successfully" {
			t.Errorf("the auth-signing-key volume is not given to nonroot before auth-issuer starts: %v, %q", oc.Volumes, oc.command())
		}
		// `docker compose exec auth-issuer outboxpay token` signs with the
		// key and claims the api verifies.
		env := a.Environment
		if env["AUTH_JWKS_URL"] != "http://auth-issuer:8091"+devtoken.JWKSPath || env["AUTH_PUBLIC_KEY_FILE"] != "" {
			t.Errorf("api: AUTH_JWKS_URL %q, AUTH_PUBLIC_KEY_FILE %q", env["AUTH_JWKS_URL"], env["AUTH_PUBLIC_KEY_FILE"])
		}
		if env["AUTH_ISSUER"] != devIssuerName || env["AUTH_AUDIENCE"] != "outboxpay" ||
			iss.Environment["AUTH_ISSUER"] != env["AUTH_ISSUER"] || iss.Environment["AUTH_AUDIENCE"] != env["AUTH_AUDIENCE"] {
			t.Errorf("api: AUTH_ISSUER %q, AUTH_AUDIENCE %q; auth-issuer: %q, %q", env["AUTH_ISSUER"], env["AUTH_AUDIENCE"],
				iss.Environment["AUTH_ISSUER"], iss.Environment["AUTH_AUDIENCE"])
		}
		if a.DependsOn["auth-issuer"].Condition != "service_healthy" {
			t.Errorf("api does not wait for auth-issuer: depends on %v", a.DependsOn)
		}
		// The api's metrics: on :9100 for Prometheus, not published beyond loopback.
		if env["METRICS_ADDR"] != ":9100" || !slices.Contains(a.containerPorts(), 9100) {
			t.Errorf("api: METRICS_ADDR %q, ports %v", env["METRICS_ADDR"], a.containerPorts())
		}
		for port, ip := range a.hostIPs() {
			if strings.HasSuffix(port, ":9100") && ip != "127.0.0.1" {
				t.Errorf("api publishes its metrics port on %q", ip)
			}
		}
		targets := scrapeTargets(t)
		if !slices.Contains(targets, "api:9100") || slices.Contains(targets, "api:8080") {
			t.Errorf("prometheus scrapes %v; want the api's metrics port api:9100, not the API", targets)
		}
		// Settings the operator can override, without editing the file.
		raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"${AUTH_JWKS_URL:-", "${AUTH_ISSUER:-", "${AUTH_AUDIENCE:-"} {
			if !strings.Contains(string(raw), v) {
				t.Errorf("docker-compose.yml does not take %s from the environment", strings.TrimSuffix(strings.TrimPrefix(v, "${"), ":-"))
			}
		}
	})

	t.Run("grafana has no anonymous access", func(t *testing.T) {
		env := svc("grafana").Environment
		if env["GF_AUTH_ANONYMOUS_ENABLED"] != "false" || env["GF_AUTH_ANONYMOUS_ORG_ROLE"] != "" {
			t.Errorf("grafana: GF_AUTH_ANONYMOUS_ENABLED %q, GF_AUTH_ANONYMOUS_ORG_ROLE %q", env["GF_AUTH_ANONYMOUS_ENABLED"], env["GF_AUTH_ANONYMOUS_ORG_ROLE"])
		}
		if !strings.HasPrefix(env["GF_SECURITY_ADMIN_PASSWORD"], "change-me") {
			t.Errorf("grafana's admin password does not come from the environment")
		}
	})

	t.Run("kafka connect's REST API requires credentials, and its clients send them", func(t *testing.T) {
		env := svc("connect").Environment
		if env["CONNECT_REST_EXTENSION_CLASSES"] != "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension" {
			t.Errorf("connect: CONNECT_REST_EXTENSION_CLASSES %q", env["CONNECT_REST_EXTENSION_CLASSES"])
		}
		jaas := regexp.MustCompile(`-Djava\.security\.auth\.login\.config=(\S+)`).FindStringSubmatch(env["KAFKA_OPTS"])
		if jaas == nil {
			t.Fatalf("connect: KAFKA_OPTS %q names no JAAS file", env["KAFKA_OPTS"])
		}
		if env["CONNECT_REST_USERNAME"] == "" || env["CONNECT_REST_PASSWORD"] != "change-me" {
			t.Error("connect: the REST credentials do not come from the environment")
		}
		// The image's entrypoint writes that JAAS file, with the login module
		// and its credentials file, from the environment.
		entry, err := os.ReadFile(filepath.Join(repoRoot, "connect", "debezium", "rest-auth-entrypoint.sh"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{filepath.Dir(jaas[1]), "PropertyFileLoginModule required", "KafkaConnect {",
			"$CONNECT_REST_USERNAME", "$CONNECT_REST_PASSWORD", "umask 077", "exec /docker-entrypoint.sh"} {
			if !strings.Contains(string(entry), want) {
				t.Errorf("rest-auth-entrypoint.sh lacks %q", want)
			}
		}
		deb := dockerfile(t, filepath.Join(repoRoot, "connect", "debezium", "Dockerfile"))
		if !slices.Contains(deb, `ENTRYPOINT ["/kafka/bin/rest-auth-entrypoint.sh"]`) || !slices.Contains(deb, `CMD ["start"]`) {
			t.Errorf("connect/debezium/Dockerfile does not run rest-auth-entrypoint.sh: %q", deb)
		}
		if hc := strings.Join(svc("connect").Healthcheck.Test, " "); !strings.Contains(hc, "Authorization: Basic") {
			t.Errorf("connect's health check does not sign in: %s", hc)
		}
		for name, s := range map[string]composeService{"connector-register": svc("connector-register"), "reconciler": svc("reconciler")} {
			if s.Environment["CONNECT_REST_USERNAME"] == "" || s.Environment["CONNECT_REST_PASSWORD"] != "change-me" {
				t.Errorf("%s does not get CONNECT_REST_USERNAME/PASSWORD from the environment", name)
			}
		}
		ui := svc("kafka-ui").Environment
		if ui["KAFKA_CLUSTERS_0_KAFKACONNECT_0_USERNAME"] == "" || ui["KAFKA_CLUSTERS_0_KAFKACONNECT_0_PASSWORD"] != "change-me" {
			t.Error("kafka-ui does not get the Connect credentials from the environment")
		}
		// The services without a shell read the credentials file operator-credentials writes.
		embedded := composeConfig(t, "docker-compose.yml", "docker-compose.embedded.yml")
		init := svc("operator-credentials")
		if !strings.Contains(init.command(), "$CONNECT_REST_PASSWORD") || !strings.Contains(init.command(), "umask 077") ||
			init.Environment["CONNECT_REST_PASSWORD"] != "change-me" {
			t.Errorf("operator-credentials: command %q", init.command())
		}
		for _, c := range []struct {
			name, kv string
			s        composeService
		}{
			{"embedded connect", "CONNECT_REST_CREDENTIALS_FILE", embedded.Services["connect"]},
			{"platform-mock", "PLATFORM_MOCK_CREDENTIALS_FILE", svc("platform-mock")},
		} {
			file := c.s.Environment[c.kv]
			mounted := slices.ContainsFunc(c.s.Volumes, func(v any) bool {
				return strings.HasPrefix(fmt.Sprint(v), "operator-credentials:"+filepath.Dir(file)) ||
					strings.Contains(fmt.Sprint(v), "source:operator-credentials") && strings.Contains(fmt.Sprint(v), filepath.Dir(file))
			})
			if file == "" || !strings.Contains(init.command(), filepath.Base(file)) || !mounted ||
				c.s.DependsOn["operator-credentials"].Condition != "service_completed_successfully" {
				t.Errorf("%s: %s=%q, volumes %v, depends on %v", c.name, c.kv, file, c.s.Volumes, c.s.DependsOn)
			}
		}
		if hc := embedded.Services["connect"]; hc.Environment["CONNECT_REST_PASSWORD"] != "change-me" {
			t.Error("the embedded engine's health check has no credentials")
		}
	})

	t.Run("no file of the stack holds a secret", func(t *testing.T) {
		for _, f := range []string{"docker-compose.yml", "docker-compose.embedded.yml", "Makefile",
			"dashboards/prometheus.yml", "connect/debezium/Dockerfile", "connect/debezium/rest-auth-entrypoint.sh"} {
			raw, err := os.ReadFile(filepath.Join(repoRoot, f))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), "change-me") {
				t.Errorf("%s holds .env.example's password", f)
			}
			for _, line := range strings.Split(string(raw), "\n") {
				m := regexp.MustCompile(`(?i)^\s*(\w*PASSWORD\w*)\s*[:=]\s*(\S.*)$`).FindStringSubmatch(line)
				if m != nil && !strings.HasSuffix(strings.ToLower(m[1]), "_file") &&
					!strings.HasPrefix(m[2], "${") && !strings.HasPrefix(m[2], "$$(") {
					t.Errorf("%s: a literal password: %s", f, strings.TrimSpace(line))
				}
			}
		}
		// make's .env rule gives every password of .env.example a fresh
		// random value, in a file only its owner reads.
		example, err := os.ReadFile(filepath.Join(repoRoot, ".env.example"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for _, f := range []string{".env.example", "Makefile"} {
			b, err := os.ReadFile(filepath.Join(repoRoot, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		envs := make([]map[string]string, 2)
		for i := range envs {
			os.Remove(filepath.Join(dir, ".env"))
			if out, err := exec.Command("make", "-s", "-C", dir, ".env").CombinedOutput(); err != nil {
				t.Fatalf("make .env: %v\n%s", err, out)
			}
			fi, err := os.Stat(filepath.Join(dir, ".env"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf(".env: mode %v, want 0600", fi.Mode().Perm())
			}
			b, err := os.ReadFile(filepath.Join(dir, ".env"))
			if err != nil {
				t.Fatal(err)
			}
			envs[i] = map[string]string{}
			for _, m := range regexp.MustCompile(`(?m)^(\w+)=(.*)$`).FindAllStringSubmatch(string(b), -1) {
				envs[i][m[1]] = m[2]
			}
		}
		passwords := regexp.MustCompile(`(?m)^(\w*PASSWORD\w*)=`).FindAllStringSubmatch(string(example), -1)
		if len(passwords) == 0 {
			t.Fatal(".env.example has no passwords")
		}
		for _, m := range passwords {
			first, second := envs[0][m[1]], envs[1][m[1]]
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(first) || first == second {
				t.Errorf("the Makefile's .env rule does not generate a random %s", m[1])
			}
		}
	})
	t.Run("kafka: the wrapper formats with a config made from the KAFKA_ variables, as the image's launch does", func(t *testing.T) {
		b := svc("kafka-1")
		script := strings.ReplaceAll(b.command(), "$$", "$")
		fn := regexp.MustCompile(`(?ms)^props\(\) \{$.*?^\}$`).FindString(script)
		if fn == "" {
			t.Fatalf("kafka-1's command has no props function:\n%s", script)
		}
		// Before launch there is no KRaft server.properties: the format
		// config is props' output, written before the format, which precedes launch.
		iProps, iFormat, iLaunch := strings.Index(script, `props > "$cfg"`), strings.Index(script, "kafka-storage.sh format"),
			strings.Index(script, "exec /etc/kafka/docker/launch")
		if iProps < 0 || iFormat < iProps || iLaunch < iFormat || !strings.Contains(script, `-c "$cfg"`) ||
			strings.Contains(script, "/opt/kafka/config/server.properties") || strings.Contains(script, "/etc/kafka/kafka.properties") {
			t.Errorf("kafka-1: want props > $cfg, then kafka-storage.sh format -c $cfg, then exec launch:\n%s", script)
		}
		props := func(env map[string]string) map[string]string {
			t.Helper()
			cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+fn+"\nprops")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("props: %v", err)
			}
			got := map[string]string{}
			for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					t.Fatalf("props printed %q", l)
				}
				got[k] = v
			}
			return got
		}
		// KafkaDockerWrapper's own test cases, and the variables the image keeps for itself.
		got := props(map[string]string{
			"KAFKA_LISTENER_NAME_INTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG": `org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="p w";`,
			"KAFKA_VALID___PROPERTY__ALL_CASES":                               "All Cases Value", "KAFKA_KAFKA_VALID_PROPERTY": "Value", "KAFKA_NODE_ID": "1",
			"KAFKA_OPTS": "-Dx", "KAFKA_HEAP_OPTS": "-Xmx1G", "KAFKA_JMX_OPTS": "x", "KAFKA_LOG4J_OPTS": "x", "KAFKA_JVM_PERFORMANCE_OPTS": "x",
			"KAFKA_GC_LOG_OPTS": "x", "KAFKA_LOG4J_ROOT_LOGLEVEL": "INFO", "KAFKA_LOG4J_LOGGERS": "a=INFO", "KAFKA_TOOLS_LOG4J_LOGLEVEL": "WARN",
			"KAFKA_JMX_HOSTNAME": "h", "KAFKA_VERSION": "3.9.1", "SCRAM_ADMIN_PASSWORD": "secret", "CLUSTER_ID": "c", "SOME_VARIABLE": "x",
		})
		want := map[string]string{
			"listener.name.internal.scram-sha-512.sasl.jaas.config": `org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="p w";`,
			"valid-property_all.cases":                              "All Cases Value", "kafka.valid.property": "Value", "node.id": "1",
		}
		if !maps.Equal(got, want) {
			t.Errorf("props:\n got %v\nwant %v", got, want)
		}
		// The brokers' own environment gives a KRaft config.
		got = props(b.Environment)
		for k, v := range map[string]string{"node.id": "1", "process.roles": "broker,controller",
			"controller.listener.names": "CONTROLLER", "log.dirs": "/var/lib/kafka/data",
			"controller.quorum.voters":                              b.Environment["KAFKA_CONTROLLER_QUORUM_VOTERS"],
			"listeners":                                             b.Environment["KAFKA_LISTENERS"],
			"sasl.mechanism.controller.protocol":                    "PLAIN",
			"listener.name.controller.plain.sasl.jaas.config":       b.Environment["KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG"],
			"listener.name.internal.scram-sha-512.sasl.jaas.config": b.Environment["KAFKA_LISTENER_NAME_INTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG"],
		} {
			if got[k] != v || v == "" {
				t.Errorf("kafka-1's format config: %s=%q, want %q", k, got[k], v)
			}
		}
		for k := range got {
			if strings.Contains(k, "scram.admin") || strings.Contains(k, "cluster") {
				t.Errorf("kafka-1's format config has %s", k)
			}
		}
	})

	t.Run("debezium's entrypoint keeps the credentials out of its log", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "connect", "debezium", "rest-auth-entrypoint.sh"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		script := strings.ReplaceAll(string(raw), "/kafka/config/rest-auth", dir)
		script = strings.ReplaceAll(script, "exec /docker-entrypoint.sh", "exec env #")
		env := svc("connect").Environment
		cmd := exec.Command("bash", "-c", script, "rest-auth-entrypoint.sh", "start")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("rest-auth-entrypoint.sh: %v", err)
		}
		after := map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				after[k] = v
			}
		}
		creds, err := os.ReadFile(filepath.Join(dir, "credentials.properties"))
		if err != nil || string(creds) != env["CONNECT_REST_USERNAME"]+": "+env["CONNECT_REST_PASSWORD"]+"\n" {
			t.Errorf("credentials file: %q, %v", creds, err)
		}
		// Debezium's entrypoint prints every CONNECT_* variable's value unless
		// SENSITIVE_PROPERTIES contains its name.
		sensitive := after["SENSITIVE_PROPERTIES"]
		for _, name := range []string{"CONNECT_SASL_JAAS_CONFIG", "CONNECT_CONSUMER_SASL_JAAS_CONFIG", "CONNECT_PRODUCER_SASL_JAAS_CONFIG",
			"CONNECT_SSL_KEYSTORE_PASSWORD", "CONNECT_CONSUMER_SSL_KEY_PASSWORD", "CONNECT_ADMIN_SASL_JAAS_CONFIG"} {
			if !slices.Contains(strings.Split(sensitive, ","), name) {
				t.Errorf("SENSITIVE_PROPERTIES lacks %s: %q", name, sensitive)
			}
		}
		for k, v := range after {
			if strings.HasPrefix(k, "CONNECT_") && strings.Contains(v, "change-me") && !strings.Contains(sensitive, k) {
				t.Errorf("Debezium's entrypoint would print %s, which holds a password", k)
			}
		}
		for _, k := range []string{"CONNECT_REST_USERNAME", "CONNECT_REST_PASSWORD"} {
			if _, ok := after[k]; ok {
				t.Errorf("%s reaches Debezium's entrypoint (it would become a property, printed)", k)
			}
		}
		if !strings.Contains(after["KAFKA_OPTS"], "-Djava.security.auth.login.config=") {
			t.Errorf("KAFKA_OPTS %q", after["KAFKA_OPTS"])
		}
	})

	t.Run("the scrape password opens the embedded engine's /metrics only", func(t *testing.T) {
		oc := svc("operator-credentials")
		dir := t.TempDir()
		script := strings.ReplaceAll(oc.command(), "$$", "$")
		script = strings.ReplaceAll(script, "/credentials/", dir+"/")
		script = strings.ReplaceAll(script, "chown ", "true ")
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CONNECT_REST_USERNAME=operator", "CONNECT_REST_PASSWORD=op-secret",
			"CONNECT_METRICS_PASSWORD=scrape-secret", "CONSOLE_USERNAME=alice", "CONSOLE_PASSWORD=console-secret"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("operator-credentials: %v\n%s", err, out)
		}
		embedded := composeConfig(t, "docker-compose.yml", "docker-compose.embedded.yml").Services["connect"].Environment
		users := func(containerPath string) []basicauth.User {
			t.Helper()
			if !strings.HasPrefix(containerPath, "/run/outboxpay/") {
				t.Fatalf("%q is not in the operator-credentials volume", containerPath)
			}
			u, err := basicauth.ParseFile(filepath.Join(dir, strings.TrimPrefix(containerPath, "/run/outboxpay/")))
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		for _, c := range []struct {
			kv   string
			want []basicauth.User
		}{
			{"CONNECT_REST_CREDENTIALS_FILE", []basicauth.User{{Name: "operator", Password: "op-secret"}}},
			{"CONNECT_METRICS_CREDENTIALS_FILE", []basicauth.User{{Name: "prometheus", Password: "scrape-secret"}}},
		} {
			if got := users(embedded[c.kv]); !slices.Equal(got, c.want) {
				t.Errorf("embedded connect's %s: users %v", c.kv, got)
			}
		}
		if got := users(svc("platform-mock").Environment["PLATFORM_MOCK_CREDENTIALS_FILE"]); !slices.Equal(got, []basicauth.User{{Name: "operator", Password: "op-secret"}}) {
			t.Errorf("platform-mock's credentials: users %v", got)
		}
		if got := users(svc("console").Environment["CONSOLE_CREDENTIALS_FILE"]); !slices.Equal(got, []basicauth.User{{Name: "alice", Password: "console-secret"}}) {
			t.Errorf("console's credentials: users %v", got)
		}
		// Prometheus signs in as prometheus with the password file.
		var pcfg struct {
			ScrapeConfigs []struct {
				JobName   string `yaml:"job_name"`
				BasicAuth *struct {
					Username     string `yaml:"username"`
					PasswordFile string `yaml:"password_file"`
				} `yaml:"basic_auth"`
			} `yaml:"scrape_configs"`
		}
		readYAML(t, filepath.Join(repoRoot, "dashboards", "prometheus.yml"), &pcfg)
		for _, sc := range pcfg.ScrapeConfigs {
			if sc.BasicAuth == nil {
				continue
			}
			pw, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(sc.BasicAuth.PasswordFile, "/etc/prometheus/secrets/")))
			if sc.BasicAuth.Username != "prometheus" || err != nil || string(pw) != "scrape-secret" {
				t.Errorf("prometheus job %s: user %q, password file %s: %v", sc.JobName, sc.BasicAuth.Username, sc.BasicAuth.PasswordFile, err)
			}
		}
	})

	t.Run("debezium's env allow-list is the embedded engine's default", func(t *testing.T) {
		f, _ := reflect.TypeOf(config{}).FieldByName("ConnectEnvAllowlistPattern")
		if got, want := svc("connect").Environment["CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN"], f.Tag.Get("envDefault"); got != want || want == "" {
			t.Errorf("connect: CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN %q, the embedded engine's CONNECT_ENV_ALLOWLIST_PATTERN default %q", got, want)
		}
	})
}

// checkComposeKafkaSecurity checks the compose stack's Kafka security: every
// broker listener speaks SASL and is published on loopback only, with
// StandardAuthorizer and admin as the only superuser; every principal has a
// password from the environment, created at format time; the ACLs kafka-init
// creates are exactly kafkaclient.ACLs and kafkaclient.ConnectWorkerACLs;
// every service that uses Kafka authenticates as a known principal.
func checkComposeKafkaSecurity(t *testing.T, cf composeFile) {
	t.Helper()
	principals := append([]string{kafkaclient.PrincipalAdmin}, kafkaclient.Principals()...)
	// passwordVar is the .env variable of a principal's password.
	passwordVar := func(p string) string {
		if p == kafkaclient.PrincipalKafkaUI {
			return "KAFKA_UI_PASSWORD"
		}
		return "KAFKA_" + strings.ToUpper(strings.ReplaceAll(p, "-", "_")) + "_PASSWORD"
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range principals {
		v := passwordVar(p)
		if !regexp.MustCompile(`(?m)^` + v + `=`).Match(example) {
			t.Errorf(".env.example has no %s for principal %s", v, p)
		}
		if !strings.Contains(string(raw), "${"+v+":?") {
			t.Errorf("docker-compose.yml does not take %s from the environment", v)
		}
	}

	brokers := 0
	for name, s := range cf.Services {
		env := s.Environment
		if env["KAFKA_NODE_ID"] == "" {
			continue
		}
		brokers++
		for _, l := range strings.Split(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
			if _, proto, _ := strings.Cut(l, ":"); !strings.HasPrefix(proto, "SASL_") {
				t.Errorf("%s: listener %s does not authenticate", name, l)
			}
		}
		if !strings.HasSuffix(env["KAFKA_AUTHORIZER_CLASS_NAME"], "StandardAuthorizer") || env["KAFKA_SUPER_USERS"] != "User:admin" ||
			env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] != "false" {
			t.Errorf("%s: authorizer %q, super users %q, allow if no ACL %q", name, env["KAFKA_AUTHORIZER_CLASS_NAME"],
				env["KAFKA_SUPER_USERS"], env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"])
		}
		for _, p := range s.Ports {
			if ps, ok := p.(string); !ok || !strings.HasPrefix(ps, "127.0.0.1:") {
				if m, ok := p.(map[string]any); !ok || m["host_ip"] != "127.0.0.1" {
					t.Errorf("%s publishes %v beyond loopback", name, p)
				}
			}
		}
		// The brokers create only the superuser, and hold no other
		// principal's password: kafka-init creates the others.
		cmd := strings.ReplaceAll(s.command(), "$$", "$")
		if env["SCRAM_ADMIN_PASSWORD"] != "change-me" || strings.Count(cmd, "--add-scram") != 1 ||
			!strings.Contains(cmd, `--add-scram "SCRAM-SHA-512=[name=admin,password=$SCRAM_ADMIN_PASSWORD]"`) {
			t.Errorf("%s: does not create the SCRAM user admin (alone) at format time from SCRAM_ADMIN_PASSWORD", name)
		}
		for k, v := range env {
			if strings.HasPrefix(k, "SCRAM_") && k != "SCRAM_ADMIN_PASSWORD" {
				t.Errorf("%s: has %s; the brokers need admin's password only", name, k)
			}
			if strings.Contains(v, "change-me") && k != "SCRAM_ADMIN_PASSWORD" &&
				(!strings.Contains(k, "SASL_JAAS_CONFIG") || strings.Count(v, "change-me") != strings.Count(v, `"admin" password="change-me"`)+strings.Count(v, `user_admin="change-me"`)) {
				t.Errorf("%s: %s holds a password that is not admin's", name, k)
			}
		}
		if !strings.Contains(cmd, "kafka-storage.sh format") || !strings.Contains(cmd, "--ignore-formatted") {
			t.Errorf("%s: does not format its storage with the SCRAM superuser", name)
		}
	}
	if brokers != 3 {
		t.Errorf("%d brokers", brokers)
	}
	for _, p := range kafkaclient.Principals() {
		initCmd := strings.ReplaceAll(cf.Services["kafka-init"].command(), "$$", "$")
		if !regexp.MustCompile(`(?m)^\s*user ` + regexp.QuoteMeta(p) + ` "\$` + passwordVar(p) + `"$`).MatchString(initCmd) {
			t.Errorf("kafka-init does not create the user %s from %s", p, passwordVar(p))
		}
		if cf.Services["kafka-init"].Environment[passwordVar(p)] != "change-me" {
			t.Errorf("kafka-init: %s does not come from the environment", passwordVar(p))
		}
	}
	// Every service that uses Kafka starts after kafka-init, so its user exists.
	for name, s := range cf.Services {
		env := s.Environment
		if env["KAFKA_SASL_USERNAME"] == "" && env["CONNECT_SASL_JAAS_CONFIG"] == "" && env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"] == "" {
			continue
		}
		if s.DependsOn["kafka-init"].Condition != "service_completed_successfully" {
			t.Errorf("%s uses Kafka but does not wait for kafka-init to complete: depends on %v", name, s.DependsOn)
		}
	}

	// The ACLs kafka-init creates, against the Go set.
	type key struct {
		principal, op, resource, name string
		prefixed                      bool
	}
	want := map[key]bool{}
	for _, a := range append(kafkaclient.ACLs(), kafkaclient.ConnectWorkerACLs()...) {
		want[key{a.Principal, a.Operation, a.Resource, a.Name, a.Prefixed}] = true
	}
	got := map[key]bool{}
	line := regexp.MustCompile(`(?m)^acl (\S+) (\S+) --(topic|group|cluster)(?: '?([^' ]+)'?)?( --resource-pattern-type prefixed)?$`)
	for _, m := range line.FindAllStringSubmatch(cf.Services["kafka-init"].command(), -1) {
		got[key{m[1], m[2], m[3], m[4], m[5] != ""}] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("kafka-init does not create the ACL %+v", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("kafka-init creates the ACL %+v, which the Go set lacks", k)
		}
	}

	// Every service that uses Kafka authenticates as a known principal with
	// its password from the environment.
	users := map[string]string{}
	for name, s := range cf.Services {
		env := s.Environment
		user := env["KAFKA_SASL_USERNAME"]
		switch {
		case env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"] != "":
			user = regexp.MustCompile(`username="([^"]+)"`).FindStringSubmatch(env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"])[1]
		case env["CONNECT_SASL_JAAS_CONFIG"] != "":
			user = regexp.MustCompile(`username="([^"]+)"`).FindStringSubmatch(env["CONNECT_SASL_JAAS_CONFIG"])[1]
			for _, k := range []string{"CONNECT_PRODUCER_SASL_JAAS_CONFIG", "CONNECT_CONSUMER_SASL_JAAS_CONFIG", "CONNECT_ADMIN_SASL_JAAS_CONFIG"} {
				if env[k] != env["CONNECT_SASL_JAAS_CONFIG"] {
					t.Errorf("%s: %s differs from CONNECT_SASL_JAAS_CONFIG", name, k)
				}
			}
		case user != "":
			if env["KAFKA_SASL_PASSWORD"] != "change-me" || env["KAFKA_SASL_MECHANISM"] != kafkaclient.ScramSHA512 {
				t.Errorf("%s: KAFKA_SASL_PASSWORD or KAFKA_SASL_MECHANISM not set from the environment", name)
			}
		}
		if user != "" {
			if !slices.Contains(principals, user) {
				t.Errorf("%s: unknown Kafka principal %q", name, user)
			}
			users[name] = user
		}
	}
	for name, want := range map[string]string{"consumers": "stock", "consumers-data-platform": "data-platform",
		"consumers-outbox-tracker": "outbox-tracker", "reconciler": "reconciler", "connect": "connector", "kafka-ui": "kafka-ui"} {
		if users[name] != want {
			t.Errorf("%s: Kafka principal %q, want %q", name, users[name], want)
		}
	}
	if g := cf.Services["consumers"].Environment["CONSUMER_GROUPS"]; g != "stock" {
		t.Errorf("consumers runs groups %q as principal stock", g)
	}
}

// readmeServices are the services README.md's "Production stack" table names.
func readmeServices(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Production stack")
	if !ok {
		t.Fatal("README.md has no \"## Production stack\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var names []string
	name := regexp.MustCompile("`([a-z0-9-]+)`")
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) < 3 || cells[0] != "" { // a table row: "| first cell | ..."
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("README's Production stack section has no service table")
	}
	return names
}

// scrapeTargets are the targets of dashboards/prometheus.yml.
func scrapeTargets(t *testing.T) []string {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(repoRoot, "dashboards", "prometheus.yml"), &cfg)
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	return targets
}

// readYAML decodes the YAML file at path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// promtool's own checks of the Prometheus config and its alert rules.
func TestPrometheusConfig(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed (apt-get install prometheus; .ci/run does): %v", err)
	}
	for _, args := range [][]string{{"check", "config", "prometheus.yml"}, {"check", "rules", "alerts.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Join(repoRoot, "dashboards")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// The Dockerfile is multi-stage, builds with cgo on a Go at least as new as
// go.mod asks, copies only what exists, and runs as a non-root user.
func TestDockerfile(t *testing.T) {
	lines := dockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	var froms []string
	args := map[string]string{}
	var build, user string
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			args[k] = v
		case "FROM":
			froms = append(froms, rest)
		case "RUN":
			if strings.Contains(rest, "go build") {
				build = rest
			}
		case "USER":
			user = rest
		case "COPY":
			if strings.Contains(rest, "--from=") {
				continue
			}
			fields := strings.Fields(rest)
			for _, src := range fields[:len(fields)-1] {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
			}
		}
	}
	isBuild := func(f string) bool {
		return strings.Contains(f, "golang:${GO_VERSION}") && strings.HasSuffix(f, " AS build")
	}
	if len(froms) < 2 || !slices.ContainsFunc(froms, isBuild) || isBuild(froms[len(froms)-1]) {
		t.Errorf("stages %q: want a golang build stage and a runtime stage", froms)
	}
	// The console's front-end files come from npm's lockfile in a node stage
	// (the build context has no node_modules), embedded by the Go build.
	if !slices.ContainsFunc(froms, func(f string) bool { return strings.HasPrefix(f, "node:") && strings.HasSuffix(f, " AS web") }) ||
		!slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "COPY --from=web ") && strings.HasSuffix(l, " api/operator/web/static/vendor/")
		}) {
		t.Errorf("stages %q: want a node stage (AS web) whose vendor files the build stage copies into api/operator/web/static/vendor/", froms)
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if want == nil || !versionAtLeast(args["GO_VERSION"], string(want[1])) {
		t.Errorf("GO_VERSION %q is older than go.mod's go %s", args["GO_VERSION"], want[1])
	}
	if !strings.Contains(build, "CGO_ENABLED=1") || !strings.Contains(build, "./cmd/outboxpay") {
		t.Errorf("build step %q: want CGO_ENABLED=1 go build ./cmd/outboxpay", build)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("runtime user %q: want a non-root user", user)
	}
	for _, l := range lines {
		if regexp.MustCompile(`(?i)^ENV\s+\S*(PASSWORD|SECRET)`).MatchString(l) {
			t.Errorf("the image bakes in a secret: %s", l)
		}
	}

	deb := dockerfile(t, filepath.Join(repoRoot, "connect", "debezium", "Dockerfile"))
	if !slices.ContainsFunc(deb, func(l string) bool { return strings.HasPrefix(l, "FROM quay.io/debezium/connect:") }) ||
		!slices.ContainsFunc(deb, func(l string) bool { return strings.Contains(l, "jmx_prometheus_javaagent") }) {
		t.Errorf("connect/debezium/Dockerfile: want Debezium's image plus the JMX exporter agent")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "connect", "debezium", "metrics.yaml")); err != nil {
		t.Error(err)
	}
}

// dockerfile returns a Dockerfile's instructions, continuation lines joined
// and comments dropped.
func dockerfile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			continue
		}
		cur.WriteString(l)
		lines = append(lines, strings.Join(strings.Fields(cur.String()), " "))
		cur.Reset()
	}
	return lines
}

// versionAtLeast compares dotted numeric versions.
func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range max(len(h), len(w)) {
		var a, b int
		if i < len(h) {
			a, _ = strconv.Atoi(h[i])
		}
		if i < len(w) {
			b, _ = strconv.Atoi(w[i])
		}
		if a != b {
			return a > b
		}
	}
	return true
}

// dashboard is a Grafana dashboard, as far as the checks read it.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// debeziumOnly reports a panel that shows Debezium's own metrics.
func (p panel) debeziumOnly() bool { return strings.Contains(p.Title, "(Debezium only)") }

// embeddedOnly reports a panel that shows the embedded engine's own metrics.
func (p panel) embeddedOnly() bool { return strings.HasPrefix(p.Title, "Embedded engine:") }

// dashboards reads every provisioned dashboard.
func dashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "dashboards", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// Every dashboard is a valid Grafana dashboard of the provisioned Prometheus
// datasource, with stable uids, and the two the stack promises exist.
func TestDashboardsAreValid(t *testing.T) {
	var prov struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "dashboards", "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Datasources) != 1 || prov.Datasources[0].UID == "" {
		t.Fatalf("datasource provisioning: %v %+v", err, prov)
	}
	ds := datasource{Type: prov.Datasources[0].Type, UID: prov.Datasources[0].UID}

	uids, titles := map[string]bool{}, map[string]bool{}
	panelTypes := []string{"row", "timeseries", "stat", "gauge", "bargauge", "table", "text"}
	for file, d := range dashboards(t) {
		if d.UID == "" || len(d.UID) > 40 || uids[d.UID] || d.Title == "" || d.SchemaVersion < 30 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d", file, d.UID, d.Title, d.SchemaVersion)
		}
		uids[d.UID], titles[d.Title] = true, true
		ids := map[int]bool{}
		for _, p := range d.Panels {
			where := fmt.Sprintf("%s panel %d %q", file, p.ID, p.Title)
			if p.ID <= 0 || ids[p.ID] || !slices.Contains(panelTypes, p.Type) || p.Title == "" {
				t.Errorf("%s: bad id, type %q or title", where, p.Type)
			}
			ids[p.ID] = true
			if g := p.GridPos; g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v", where, g)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || *p.Datasource != ds || len(p.Targets) == 0 {
				t.Errorf("%s: datasource %v, %d targets; want %v", where, p.Datasource, len(p.Targets), ds)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] || tg.Datasource == nil || *tg.Datasource != ds {
					t.Errorf("%s: target %+v", where, tg)
				}
				refs[tg.RefID] = true
			}
		}
	}
	for _, want := range []string{"Outbox pipeline", "Consumer lag"} {
		if !titles[want] {
			t.Errorf("no dashboard %q", want)
		}
	}
}

// The Dockerfile copies the whole build context: .env, with every password
// of the stack, must stay out of it (.env.example may go in).
func TestStackDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	// The last matching pattern decides, as in Docker's .dockerignore.
	ignored := func(name string) bool {
		out := false
		for _, l := range lines {
			l = strings.TrimSpace(l)
			neg := strings.HasPrefix(l, "!")
			if ok, _ := filepath.Match(strings.TrimPrefix(l, "!"), name); ok && l != "" && !strings.HasPrefix(l, "#") {
				out = !neg
			}
		}
		return out
	}
	for name, want := range map[string]bool{".env": true, ".env.local": true, ".env.prod": true, ".env.example": false} {
		if ignored(name) != want {
			t.Errorf(".dockerignore: %s ignored = %v, want %v", name, !want, want)
		}
	}
}
