package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// testConfig is the default configuration with the API on a free loopback
// port and no identity provider: each test sets its own.
func testConfig(t *testing.T) config {
	t.Helper()
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIAddr, cfg.MetricsAddr, cfg.AuthIssuerAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthJWKSURL, cfg.AuthPublicKeyFile, cfg.AuthIssuer, cfg.AuthSigningKeyFile = "", "", "", ""
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// startAPI runs serveAPI with cfg on a fresh database holding the demo
// users, and returns its base URL; it stops when the test ends.
func startAPI(t *testing.T, cfg config) string {
	t.Helper()
	db, _ := pgtest.NewDB(t)
	if _, err := shop.New(db).SeedDemo(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveAPI(ctx, testDeps(cfg, db), ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveAPI: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	// The listener accepts at once; the API answers once it has its keys.
	eventually.True(t, time.Minute, "the API answers", func() (bool, error) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serveAPI: %v", err)
		default:
		}
		status, _, body := get(t, base, "/healthz", "")
		return status == http.StatusOK, fmt.Errorf("GET /healthz: %d %s", status, body)
	})
	return base
}

// get sends GET base+path with the bearer token (none if "") and returns
// the status, the WWW-Authenticate header and the body.
func get(t *testing.T, base, path, token string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// mustToken is a token of iss for user with scopes, valid for an hour.
func mustToken(t *testing.T, iss *devtoken.Issuer, user int64, scopes ...string) string {
	t.Helper()
	tok, err := iss.Token(user, scopes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwksServer serves an issuer's JWK Set at devtoken.JWKSPath, or 503
// while down; set changes which issuer's.
type jwksServer struct {
	url      string
	jwks     atomic.Pointer[[]byte]
	up       atomic.Bool
	requests atomic.Int64
}

func newJWKSServer(t *testing.T, iss *devtoken.Issuer, up bool) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, iss)
	s.up.Store(up)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.URL.Path != devtoken.JWKSPath || !s.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.jwks.Load())
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + devtoken.JWKSPath
	return s
}

func (s *jwksServer) set(t *testing.T, iss *devtoken.Issuer) {
	t.Helper()
	b, err := iss.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.jwks.Store(&b)
}

// The API takes its keys from AUTH_JWKS_URL: a token of a served key
// verifies; when the issuer rotates to a new key, a token with the new kid
// verifies once the set is fetched again (the unknown kid fetches it), and
// one of the retired key no longer does.
func TestAPIAuthJWKSRotation(t *testing.T) {
	const name = "https://idp.example/realms/shop"
	first, err := devtoken.New(name, "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	second, err := devtoken.New(name, "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	if first.KeyID() == second.KeyID() {
		t.Fatal("two keys with one kid")
	}
	jwks := newJWKSServer(t, first, true)
	cfg := testConfig(t)
	cfg.AuthJWKSURL, cfg.AuthIssuer = jwks.url, name
	base := startAPI(t, cfg)

	if status, _, body := get(t, base, "/users/1/balance", mustToken(t, first, 1, api.ScopeBalanceRead)); status != http.StatusOK {
		t.Fatalf("a token of the served key: %d %s", status, body)
	}
	if status, challenge, _ := get(t, base, "/users/1/balance", ""); status != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") {
		t.Errorf("no token: %d %q, want 401 with a Bearer challenge", status, challenge)
	}

	jwks.set(t, second)
	rotated := mustToken(t, second, 1, api.ScopeBalanceRead)
	eventually.TrueEvery(t, time.Minute, 500*time.Millisecond, "a token of the new key verifies", func() (bool, error) {
		status, _, body := get(t, base, "/users/1/balance", rotated)
		return status == http.StatusOK, fmt.Errorf("%d %s", status, body)
	})
	// The set was replaced: the retired key's tokens are refused.
	if status, challenge, _ := get(t, base, "/users/1/balance", mustToken(t, first, 1, api.ScopeBalanceRead)); status != http.StatusUnauthorized ||
		!strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("a token of the retired key: %d %q, want 401 invalid_token", status, challenge)
	}
}

// A JWKS endpoint that is down when the API starts does not stop it: it
// serves, and tokens verify once the issuer is up.
func TestAPIAuthJWKSDownAtStart(t *testing.T) {
	const name = "outboxpay-test"
	iss, err := devtoken.New(name, "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	jwks := newJWKSServer(t, iss, false)
	cfg := testConfig(t)
	cfg.AuthJWKSURL, cfg.AuthIssuer = jwks.url, name
	base := startAPI(t, cfg)
	if jwks.requests.Load() == 0 {
		t.Error("the API did not try to fetch the JWK Set at start")
	}
	if status, _, body := get(t, base, "/readyz", ""); status != http.StatusOK {
		t.Fatalf("/readyz with the issuer down: %d %s", status, body)
	}

	jwks.up.Store(true)
	token := mustToken(t, iss, 2, api.ScopeBalanceRead)
	eventually.TrueEvery(t, time.Minute, 500*time.Millisecond, "a token verifies once the issuer is up", func() (bool, error) {
		status, _, body := get(t, base, "/users/2/balance", token)
		return status == http.StatusOK, fmt.Errorf("%d %s", status, body)
	})
}

// AUTH_PUBLIC_KEY_FILE: tokens of that key, with the configured issuer and
// audience, verify; others are 401, and a missing scope is 403.
func TestAPIAuthPublicKeyFile(t *testing.T) {
	iss, err := devtoken.New("outboxpay-dev", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	other, err := devtoken.New("outboxpay-dev", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.AuthPublicKeyFile, cfg.AuthIssuer = filepath.Join(t.TempDir(), "issuer.pub"), iss.Name
	if err := os.WriteFile(cfg.AuthPublicKeyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	base := startAPI(t, cfg)

	wrongIssuer := iss.Claims(1, []string{api.ScopeBalanceRead}, time.Hour)
	wrongIssuer.Issuer = "someone-else"
	wrongAudience := iss.Claims(1, []string{api.ScopeBalanceRead}, time.Hour)
	wrongAudience.Audience = jwt.ClaimStrings{"another-api"}
	expired := iss.Claims(1, []string{api.ScopeBalanceRead}, time.Hour)
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	sign := func(c devtoken.Claims) string {
		t.Helper()
		tok, err := iss.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct {
		name, token string
		want        int
		challenge   string
	}{
		{"the key's token", mustToken(t, iss, 1, api.ScopeBalanceRead), http.StatusOK, ""},
		{"another key's token", mustToken(t, other, 1, api.ScopeBalanceRead), http.StatusUnauthorized, `error="invalid_token"`},
		{"another issuer", sign(wrongIssuer), http.StatusUnauthorized, `error="invalid_token"`},
		{"another audience", sign(wrongAudience), http.StatusUnauthorized, `error="invalid_token"`},
		{"expired", sign(expired), http.StatusUnauthorized, "expired"},
		{"without the scope", mustToken(t, iss, 1, api.ScopeOrders), http.StatusForbidden, `error="insufficient_scope"`},
	} {
		status, challenge, body := get(t, base, "/users/1/balance", c.token)
		if status != c.want || !strings.Contains(challenge, c.challenge) {
			t.Errorf("%s: %d %q %s, want %d with %s", c.name, status, challenge, body, c.want, c.challenge)
		}
	}
}

// The API's authentication settings: what loadConfig or serveAPI refuse,
// each with an error naming what to fix.
func TestAPIAuthConfigErrors(t *testing.T) {
	iss, err := devtoken.New("outboxpay-dev", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "issuer.pub")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	notAKey := filepath.Join(dir, "not-a-key.pem")
	if err := os.WriteFile(notAKey, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{"AUTH_PUBLIC_KEY_FILE": keyFile, "AUTH_ISSUER": "outboxpay-dev"}
	with := func(change map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range valid {
			env[k] = v
		}
		for k, v := range change {
			env[k] = v
		}
		return env
	}
	cases := []struct {
		name  string
		env   map[string]string
		wrong string // what the error names
	}{
		{"both key sources", with(map[string]string{"AUTH_JWKS_URL": "http://127.0.0.1:1/jwks.json"}), "not both"},
		{"no key source", with(map[string]string{"AUTH_PUBLIC_KEY_FILE": ""}), "set AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE"},
		{"no issuer", with(map[string]string{"AUTH_ISSUER": ""}), "AUTH_ISSUER"},
		{"HMAC", with(map[string]string{"AUTH_ALGORITHMS": "HS256"}), `"HS256"`},
		{"none", with(map[string]string{"AUTH_ALGORITHMS": "ES256,none"}), `"none"`},
		{"a missing key file", with(map[string]string{"AUTH_PUBLIC_KEY_FILE": filepath.Join(dir, "missing.pem")}), "AUTH_PUBLIC_KEY_FILE"},
		{"a file that is no public key", with(map[string]string{"AUTH_PUBLIC_KEY_FILE": notAKey}), "AUTH_PUBLIC_KEY_FILE"},
		{"a leeway beyond 5m", with(map[string]string{"AUTH_LEEWAY": "10m"}), "leeway"},
		{"a JWKS refresh under a minute", with(map[string]string{"AUTH_JWKS_REFRESH": "10s"}), "AUTH_JWKS_REFRESH"},
		{"no dev token lifetime", with(map[string]string{"DEV_TOKEN_TTL": "0s"}), "DEV_TOKEN_TTL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfigWith(t, c.env)
			if err == nil {
				cfg.APIAddr = "127.0.0.1:0"
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				ln, lerr := net.Listen("tcp", cfg.APIAddr)
				if lerr != nil {
					t.Fatal(lerr)
				}
				defer ln.Close()
				err = serveAPI(ctx, testDeps(cfg, openEmptyDB(t)), ln)
			}
			if err == nil || !strings.Contains(err.Error(), c.wrong) {
				t.Fatalf("got %v, want an error naming %s", err, c.wrong)
			}
		})
	}
	// The valid settings serve.
	cfg, err := loadConfigWith(t, valid)
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIAddr = "127.0.0.1:0"
	if base := startAPI(t, cfg); base == "" {
		t.Fatal("no API")
	}
}

// startProcess runs the outboxpay binary with args and env added to a clean
// environment until the test ends (SIGTERM, then it must exit cleanly).
func startProcess(t *testing.T, env []string, args ...string) *logtest.Buffer {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	logs, _ := startUntilCleanup(t, cmd, true)
	return logs
}
