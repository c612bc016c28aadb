package api_test

import (
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
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

// TestRateLimit: a client with a valid token is its user, wherever it
// connects from: past its burst it gets 429 problem+json with Retry-After,
// and its request changes nothing; probes and the contract stay open;
// another user from the same IP has a bucket of its own, and so do the
// requests of that IP without a valid token.
func TestRateLimit(t *testing.T) {
	const burst = 3
	s := newLimitedServer(t, burst, "127.0.0.0/8")
	alice, bob := s.newUser(1000), s.newUser(1000) // not through the API: spends no request
	balance := func(user int64) string { return "/users/" + strconv.FormatInt(user, 10) + "/balance" }
	ip := []string{"X-Forwarded-For", "203.0.113.7"}
	asAlice, asBob := s.as(alice), s.as(bob)

	// Alice from two addresses: one bucket.
	for i := range burst {
		from := ip
		if i%2 == 1 {
			from = []string{"X-Forwarded-For", "198.51.100.9"}
		}
		asAlice.mustDo(http.StatusOK, "GET", balance(alice), nil, from...)
	}
	before := s.snapshot()
	r := asAlice.mustDo(http.StatusTooManyRequests, "POST", balance(alice)+"/charge", map[string]any{"amount": 5}, ip...)
	if p := r.problem(t); p.Type != "/problems/rate-limited" {
		t.Errorf("problem type %q, want /problems/rate-limited", p.Type)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", r.header.Get("Retry-After"))
	}
	if after := s.snapshot(); after != before {
		t.Errorf("a refused request changed the database:\nbefore %s\nafter  %s", before, after)
	}
	asAlice.mustDo(http.StatusTooManyRequests, "GET", "/products", nil, "X-Forwarded-For", "192.0.2.1")
	// Another token of alice's is still alice.
	s.as(alice).mustDo(http.StatusTooManyRequests, "GET", "/products", nil, ip...)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		asAlice.mustDo(http.StatusOK, "GET", path, nil, ip...)
	}

	// Bob, from alice's address, while alice is refused.
	for range burst {
		asBob.mustDo(http.StatusOK, "GET", balance(bob), nil, ip...)
		asAlice.mustDo(http.StatusTooManyRequests, "GET", balance(alice), nil, ip...)
	}
	asBob.mustDo(http.StatusTooManyRequests, "GET", balance(bob), nil, ip...)

	// That address without a token (or with a bad one) is limited as an
	// address, in a bucket of its own: refused for want of a token until
	// its burst is spent.
	anonymous := s.withAuthorization("")
	invalid := s.withAuthorization("Bearer not-a-token")
	anonymous.mustDo(http.StatusUnauthorized, "GET", "/products", nil, ip...)
	invalid.mustDo(http.StatusUnauthorized, "GET", "/products", nil, ip...)
	anonymous.mustDo(http.StatusUnauthorized, "GET", "/products", nil, ip...)
	invalid.mustDo(http.StatusTooManyRequests, "GET", "/products", nil, ip...)
	anonymous.mustDo(http.StatusTooManyRequests, "GET", "/products", nil, ip...)
	// Another address without a token is not affected, nor is a third user
	// at the spent address.
	anonymous.mustDo(http.StatusUnauthorized, "GET", "/products", nil, "X-Forwarded-For", "192.0.2.77")
	s.as(s.newUser(0)).mustDo(http.StatusOK, "GET", "/products", nil, ip...)
}

// TestRateLimitIgnoresForwardingHeadersByDefault: without trusted proxies
// the client without a token is the connection's peer, so X-Forwarded-For
// and X-Real-IP cannot buy a fresh limit.
func TestRateLimitIgnoresForwardingHeadersByDefault(t *testing.T) {
	const burst = 2
	s := newLimitedServer(t, burst)
	for i := range burst {
		s.mustDo(http.StatusUnauthorized, "GET", "/products", nil, "X-Forwarded-For", "203.0.113."+strconv.Itoa(i+1))
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
	s := startServer(t, db, apiDB, nil, func(c *api.Config) { c.RateLimit = api.RateLimit{Rate: 0, Burst: 1} }).as(1)
	for range 20 {
		s.mustDo(http.StatusOK, "GET", "/products", nil)
	}
}
