package api_test

import (
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

// newLimitedServer is newServer with a rate limit of burst requests per
// client that does not refill during a test, and trustedProxies (CIDRs).
func newLimitedServer(t *testing.T, burst int, trustedProxies ...string) *server {
	t.Helper()
	db, dbURL := pgtest.NewDB(t)
	apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	seen.addSecretsOf(dbURL)
	seen.addSecretsOf(apiURL)
	var proxies []*net.IPNet
	for _, p := range trustedProxies {
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, n)
	}
	return startServer(t, db, apiDB, nil, func(c *api.Config) {
		c.RateLimit = api.RateLimit{Rate: 0.01, Burst: burst}
		c.TrustedProxies = proxies
	})
}

// TestRateLimit: past its burst a client gets 429 problem+json with
// Retry-After, and its request changes nothing; probes and the contract
// stay open; another client is not affected.
func TestRateLimit(t *testing.T) {
	const burst = 3
	s := newLimitedServer(t, burst, "127.0.0.0/8")
	user := s.newUser(1000) // not through the API: spends no request
	balance := "/users/" + strconv.FormatInt(user, 10) + "/balance"
	client := []string{"X-Forwarded-For", "203.0.113.7"}

	for range burst {
		s.mustDo(http.StatusOK, "GET", balance, nil, client...)
	}
	before := s.snapshot()
	r := s.mustDo(http.StatusTooManyRequests, "POST", balance+"/charge", map[string]any{"amount": 5}, client...)
	if p := r.problem(t); p.Type != "/problems/rate-limited" {
		t.Errorf("problem type %q, want /problems/rate-limited", p.Type)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", r.header.Get("Retry-After"))
	}
	if after := s.snapshot(); after != before {
		t.Errorf("a refused request changed the database:\nbefore %s\nafter  %s", before, after)
	}
	s.mustDo(http.StatusTooManyRequests, "GET", "/products", nil, client...)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/metrics"} {
		s.mustDo(http.StatusOK, "GET", path, nil, client...)
	}

	other := []string{"X-Forwarded-For", "198.51.100.9"}
	for range burst {
		s.mustDo(http.StatusOK, "GET", balance, nil, other...)
	}
	s.mustDo(http.StatusTooManyRequests, "GET", balance, nil, other...)
}

// TestRateLimitIgnoresForwardingHeadersByDefault: without trusted proxies
// the client is the connection's peer, so X-Forwarded-For and X-Real-IP
// cannot buy a fresh limit.
func TestRateLimitIgnoresForwardingHeadersByDefault(t *testing.T) {
	const burst = 2
	s := newLimitedServer(t, burst)
	for i := range burst {
		s.mustDo(http.StatusOK, "GET", "/products", nil, "X-Forwarded-For", "203.0.113."+strconv.Itoa(i+1))
	}
	for i, h := range []string{"X-Forwarded-For", "X-Real-IP"} {
		s.mustDo(http.StatusTooManyRequests, "GET", "/products", nil, h, "198.51.100."+strconv.Itoa(i+1))
	}
}

// TestRateLimitDisabled: a zero rate limits nothing.
func TestRateLimitDisabled(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	seen.addSecretsOf(dbURL)
	seen.addSecretsOf(apiURL)
	s := startServer(t, db, apiDB, nil, func(c *api.Config) { c.RateLimit = api.RateLimit{Rate: 0, Burst: 1} })
	for range 20 {
		s.mustDo(http.StatusOK, "GET", "/products", nil)
	}
}
