package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// `outboxpay issuer` serves its key's JWK Set (public keys only) and
// nothing else; `outboxpay token` signs with the same key file; and
// `outboxpay api` with AUTH_JWKS_URL on that issuer accepts the token with
// its scopes and user, serving its metrics on METRICS_ADDR, not on the API:
// the compose stack's auth-issuer, token and api.
func TestIssuerTokenAndAPIProcesses(t *testing.T) {
	dataDir := t.TempDir()
	issuerAddr := freeAddr(t)
	issuerLogs := startProcess(t, []string{"DATA_DIR=" + dataDir, "AUTH_ISSUER_ADDR=" + issuerAddr}, "issuer")
	jwksURL := "http://" + issuerAddr + devtoken.JWKSPath
	var jwksBody string
	eventually.True(t, time.Minute, "the issuer serves its JWK Set", func() (bool, error) {
		resp, err := http.Get(jwksURL)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		jwksBody = string(b)
		return resp.StatusCode == http.StatusOK, fmt.Errorf("%d %s\n%s", resp.StatusCode, b, issuerLogs)
	})
	keyFile := filepath.Join(dataDir, "auth-signing-key.pem")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	key, err := devtoken.Load(keyFile, devIssuerName, "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwksBody), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWK Set %s: %v", jwksBody, err)
	}
	if set.Keys[0]["kid"] != key.KeyID() || set.Keys[0]["alg"] != "ES256" {
		t.Errorf("the served key: %v, want kid %s, ES256", set.Keys[0], key.KeyID())
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := set.Keys[0][private]; ok {
			t.Errorf("the JWK Set holds the private parameter %q", private)
		}
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/metrics"}, {"GET", "/healthz"}, {"GET", "/token"}, {"POST", devtoken.JWKSPath},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), r.method, "http://"+issuerAddr+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("issuer %s %s: %d, want 404 or 405", r.method, r.path, resp.StatusCode)
		}
	}

	// The API, as its own process, verifying with the issuer's JWK Set.
	db, dbURL := pgtest.NewDB(t)
	if _, err := shop.New(db).SeedDemo(t.Context()); err != nil {
		t.Fatal(err)
	}
	apiAddr, metricsAddr := freeAddr(t), freeAddr(t)
	apiLogs := startProcess(t, []string{"DATABASE_URL=" + dbURL, "API_ADDR=" + apiAddr, "METRICS_ADDR=" + metricsAddr,
		"AUTH_JWKS_URL=" + jwksURL, "AUTH_ISSUER=" + devIssuerName}, "api")
	base := "http://" + apiAddr
	eventually.True(t, time.Minute, "the API is ready", func() (bool, error) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false, fmt.Errorf("%v\n%s", err, apiLogs)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("%d", resp.StatusCode)
	})

	token := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := run(t, []string{"DATA_DIR=" + dataDir}, append([]string{"token"}, args...)...)
		if code != 0 || strings.Count(stdout, ".") != 2 {
			t.Fatalf("token %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	readOnly := token("--user", "2", "--scope", "balance:read", "--ttl", "10m")
	pubPEM, err := key.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwt.ParseECPublicKeyFromPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"})).ParseWithClaims(readOnly, claims, func(*jwt.Token) (any, error) {
		return pub, nil
	}); err != nil {
		t.Fatalf("the printed token does not verify with the key file's key: %v", err)
	}
	if claims["sub"] != "2" || claims["scope"] != "balance:read" || claims["iss"] != devIssuerName {
		t.Errorf("claims %v, want sub 2, scope balance:read, iss %s", claims, devIssuerName)
	}
	exp, _ := claims.GetExpirationTime()
	if exp == nil || time.Until(exp.Time) > 10*time.Minute || time.Until(exp.Time) < 9*time.Minute {
		t.Errorf("exp %v, want in 10 minutes", exp)
	}
	for _, c := range []struct {
		token, path string
		want        int
	}{
		{readOnly, "/users/2/balance", http.StatusOK},
		{readOnly, "/users/1/balance", http.StatusNotFound}, // another user's: as if it did not exist
		{readOnly, "/products", http.StatusForbidden},       // not its scope
		{token("--user", "2", "--scope", "orders,payments"), "/products", http.StatusOK},
		{token("--user", "1"), "/users/1/balance", http.StatusOK}, // every scope by default
		{"", "/products", http.StatusUnauthorized},
	} {
		if status, _, body := get(t, base, c.path, c.token); status != c.want {
			t.Errorf("GET %s: %d %s, want %d", c.path, status, body, c.want)
		}
	}

	// The API's metrics are on METRICS_ADDR, not on the API's port.
	if status, _, body := get(t, "http://"+metricsAddr, "/metrics", ""); status != http.StatusOK ||
		!strings.Contains(body, `http_requests_total{code="200",method="GET",route="/users/:userId/balance"}`) {
		t.Errorf("METRICS_ADDR /metrics: %d, want the API's request counts:\n%.2000s", status, body)
	}
	if status, _, _ := get(t, base, "/metrics", ""); status == http.StatusOK {
		t.Error("the API serves /metrics")
	}
	for _, logs := range []string{apiLogs.String(), issuerLogs.String()} {
		if strings.Contains(logs, readOnly) {
			t.Error("a token is in the logs")
		}
	}
}
