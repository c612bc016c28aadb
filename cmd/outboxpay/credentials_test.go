package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8083": true, "127.0.0.2:0": true, "[::1]:8083": true, "localhost:8083": true,
		":8083": false, "0.0.0.0:8083": false, "[::]:8083": false, "10.0.0.5:8083": false,
		"connect:8083": false, "example.com:80": false, "8083": false, "": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Without a credentials file the operator planes refuse a non-loopback
// address, and serve a loopback one open (with a warning).
func TestOperatorPlanesRefuseTheNetworkWithoutCredentials(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectRESTCredentialsFile, cfg.PlatformMockCredentialsFile = "", ""
	discard := slog.New(slog.DiscardHandler)
	for _, addr := range []string{":0", "0.0.0.0:0"} {
		cfg.ConnectAddr, cfg.PlatformMockAddr = addr, addr
		_, err := connectCredentials(cfg, discard)
		if err == nil || !strings.Contains(err.Error(), "CONNECT_REST_CREDENTIALS_FILE is not set") {
			t.Errorf("serveConnect on %q without credentials: %v", addr, err)
		}
		_, err = platformMock(deps{cfg: cfg, logger: discard})
		if err == nil || !strings.Contains(err.Error(), "PLATFORM_MOCK_CREDENTIALS_FILE is not set") {
			t.Errorf("servePlatformMock on %q without credentials: %v", addr, err)
		}
	}
	// The subcommand fails at once with the reason.
	code, _, stderr := run(t, []string{"PLATFORM_MOCK_ADDR=0.0.0.0:0"}, "platform-mock")
	if code != 1 || !strings.Contains(stderr, "PLATFORM_MOCK_CREDENTIALS_FILE is not set") {
		t.Errorf("platform-mock on 0.0.0.0: exit %d\n%s", code, stderr)
	}
	// A credentials file that cannot be read is an error, not an open API.
	cfg.ConnectAddr, cfg.ConnectRESTCredentialsFile = "127.0.0.1:0", filepath.Join(t.TempDir(), "missing")
	if _, err := connectCredentials(cfg, discard); err == nil {
		t.Error("serveConnect with a missing credentials file started")
	}
}

func TestRedactDatabaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://api:s3cret@127.0.0.1:5432/outboxpay?sslmode=disable": "postgres://api:xxxxx@127.0.0.1:5432/outboxpay?sslmode=disable",
		"postgresql://api@db/outboxpay?password=s3cret&sslmode=require":  "postgresql://api@db/outboxpay?password=xxxxx&sslmode=require",
		"postgres://postgres@127.0.0.1:5432/outboxpay?sslmode=disable":   "postgres://postgres@127.0.0.1:5432/outboxpay?sslmode=disable",
		"host=db user=api password=s3cret dbname=outboxpay":              "host=db user=api password=xxxxx dbname=outboxpay",
		"host=db user=api password = 'se cr\\'et' dbname=outboxpay":      "host=db user=api password = xxxxx dbname=outboxpay",
	} {
		if got := redactDatabaseURL(in); got != want {
			t.Errorf("redactDatabaseURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// dev's operator planes: its Kafka Connect REST API (every path, /metrics
// included) and the platform mock's operator endpoints answer 401 without
// the generated credentials and change nothing; the banner's curl command
// reads the right password; the API and the platform's POST stay open.
func TestDevOperatorPlanesNeedCredentials(t *testing.T) {
	sys := sharedDev(t)
	path := filepath.Join(sys.dir, "data", devCredentialsFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if sys.User != devUser || len(sys.Password) < 32 {
		t.Errorf("generated credentials: user %q, password of %d characters", sys.User, len(sys.Password))
	}
	// The console's login line is the one place the banner shows it (a
	// browser's login asks for it); no log line does.
	for _, line := range strings.Split(sys.Banner, "\n") {
		if strings.Contains(line, sys.Password) && !strings.HasPrefix(strings.TrimSpace(line), "Console ") {
			t.Errorf("dev printed the password outside the console's login: %s", line)
		}
	}
	if strings.Contains(sys.stderr.String(), sys.Password) {
		t.Error("dev logged the password")
	}
	// The banner's curl command, as pasted into a shell, signs in.
	m := regexp.MustCompile(`curl -s -u ("[^"]+") (\S+/connectors/outbox/status)`).FindStringSubmatch(sys.Banner)
	if m == nil {
		t.Fatalf("no curl command for Connect in the banner:\n%s", sys.Banner)
	}
	out, err := exec.Command("sh", "-c", "printf %s "+m[1]).Output()
	if err != nil || string(out) != sys.User+":"+sys.Password {
		t.Errorf("the banner's -u argument expands to something else (%v)", err)
	}

	ctx := context.Background()
	client := rest.NewClient(sys.Connect, &http.Client{Timeout: 10 * time.Second}, rest.BasicAuth(sys.User, sys.Password))
	before, err := client.ConnectorConfig(ctx, "outbox")
	if err != nil {
		t.Fatal(err)
	}
	evil := maps.Clone(before)
	evil["heartbeat.interval.ms"] = "1"
	evilJSON, _ := json.Marshal(evil)

	call := func(method, url, body, user, password string) (int, http.Header, string) {
		t.Helper()
		return basicRequest(t, ctx, method, url, body, user, password)
	}
	refused := []struct{ method, url, body string }{
		{"GET", sys.Connect + "/", ""},
		{"GET", sys.Connect + "/connectors", ""},
		{"PUT", sys.Connect + "/connectors/outbox/config", string(evilJSON)},
		{"PUT", sys.Connect + "/connectors/outbox/pause", ""},
		{"DELETE", sys.Connect + "/connectors/outbox", ""},
		{"GET", sys.Connect + "/metrics", ""},
		{"GET", sys.Platform + "/events", ""},
		{"PUT", sys.Platform + "/faults", `{"failureRate":1}`},
	}
	for _, r := range refused {
		for _, cred := range [][2]string{{"", ""}, {sys.User, "wrong"}, {"root", sys.Password}} {
			status, h, body := call(r.method, r.url, r.body, cred[0], cred[1])
			if status != http.StatusUnauthorized || !strings.HasPrefix(strings.ToLower(h.Get("WWW-Authenticate")), "basic realm=") {
				t.Errorf("%s %s as %q: %d %s, want 401 with a challenge", r.method, r.url, cred[0], status, body)
			}
			if strings.HasPrefix(r.url, sys.Connect) {
				var eb connect.ErrorBody
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.ErrorCode != http.StatusUnauthorized {
					t.Errorf("%s %s: body %s, want Kafka Connect's error shape", r.method, r.url, body)
				}
			}
		}
	}
	after, err := client.ConnectorConfig(ctx, "outbox")
	if err != nil || !maps.Equal(after, before) {
		t.Errorf("config after refused calls: %v, %v", after, err)
	}
	if st, err := client.ConnectorStatus(ctx, "outbox"); err != nil || !running(st) {
		t.Errorf("connector after refused calls: %s, %v", describeStatus(st), err)
	}
	// With the credentials: metrics, the mock's events and faults.
	for _, r := range []struct{ method, url, body string }{
		{"GET", sys.Connect + "/metrics", ""},
		{"GET", sys.Platform + "/events", ""},
		{"GET", sys.Platform + "/faults", ""},
	} {
		if status, _, body := call(r.method, r.url, r.body, sys.User, sys.Password); status != http.StatusOK {
			t.Errorf("%s %s with credentials: %d %s", r.method, r.url, status, body)
		}
	}
	// Open: the API's probes and the platform's health check. The API's
	// routes take a bearer token, not these credentials.
	for _, url := range []string{sys.API + "/healthz", sys.API + "/readyz", sys.Platform + "/healthz"} {
		if status, _, body := call("GET", url, "", "", ""); status != http.StatusOK {
			t.Errorf("GET %s: %d %s", url, status, body)
		}
	}
	if status, h, body := call("GET", sys.API+"/products", "", sys.User, sys.Password); status != http.StatusUnauthorized ||
		!strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("GET /products with the operator's Basic credentials: %d %s, want 401 with a Bearer challenge", status, body)
	}
}

// A user of CONNECT_METRICS_CREDENTIALS_FILE reads the embedded engine's
// /metrics and nothing else; the REST API's users read both.
func TestConnectMetricsOnlyCredentials(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.ConnectAddr = "127.0.0.1:0"
	cfg.ConnectRESTCredentialsFile = filepath.Join(dir, "operators.properties")
	cfg.ConnectMetricsCredentialsFile = filepath.Join(dir, "metrics.properties")
	if err := os.WriteFile(cfg.ConnectRESTCredentialsFile, []byte("operator: op-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.ConnectMetricsCredentialsFile, []byte("prometheus: scrape-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	d := testDeps(cfg, openEmptyDB(t))
	d.kafkaAs, d.lookup = plainKafka("127.0.0.1:1"), func(string) (string, bool) { return "", false }
	base := goServeConnect(t, ctx, d, done)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveConnect: %v", err)
		}
	}()
	call := func(method, path, user, password string) int {
		t.Helper()
		status, _, _ := basicRequest(t, ctx, method, base+path, "{}", user, password)
		return status
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/connectors"}, {"PUT", "/connectors/outbox/config"},
		{"PUT", "/connectors/outbox/pause"}, {"DELETE", "/connectors/outbox"}, {"POST", "/metrics"},
	} {
		if status := call(r.method, r.path, "prometheus", "scrape-secret"); status != http.StatusUnauthorized {
			t.Errorf("%s %s as the metrics user: %d, want 401", r.method, r.path, status)
		}
	}
	if status := call("GET", "/connectors", "operator", "op-secret"); status != http.StatusOK {
		t.Errorf("GET /connectors as the operator: %d, want 200", status)
	}
	for _, c := range []struct {
		user, password string
		want           int
	}{
		{"prometheus", "scrape-secret", http.StatusOK},
		{"operator", "op-secret", http.StatusOK},
		{"", "", http.StatusUnauthorized},
		{"prometheus", "op-secret", http.StatusUnauthorized},
		{"operator", "scrape-secret", http.StatusUnauthorized},
	} {
		if status := call("GET", "/metrics", c.user, c.password); status != c.want {
			t.Errorf("GET /metrics as %q: %d, want %d", c.user, status, c.want)
		}
	}
	// A metrics credentials file that cannot be read is an error, not an open /metrics.
	bad := cfg
	bad.ConnectMetricsCredentialsFile = filepath.Join(dir, "missing")
	if _, err := connectCredentials(bad, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "CONNECT_METRICS_CREDENTIALS_FILE") {
		t.Errorf("connectCredentials with a missing metrics file: %v", err)
	}
}

// basicRequest sends method url with body (JSON; none if "") and, unless
// user is "", HTTP Basic credentials, and returns the answer's status,
// headers and body.
func basicRequest(t *testing.T, ctx context.Context, method, url, body, user, password string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
