package api_test

import (
	"database/sql"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

// A database that refuses connections makes /readyz answer "not ready" and
// requests answer 500, without the address or the driver's error; the logs
// say the database is unreachable, also without its address or password.
func TestDatabaseUnreachableDetail(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	_, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	seen.addSecretsOf(apiURL)

	// A port nothing listens on: the dial is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	u, err := url.Parse(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	u.Host = closed
	dead, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })

	logger, logs := logtest.New()
	// User 1 acts on its own balance, orders and payments.
	s := startServer(t, db, dead, logger).as(1)

	cases := []struct {
		method, path string
		body         any
		status       int
		detail       string
		log          string
	}{
		{"GET", "/readyz", nil, http.StatusServiceUnavailable, "not ready", "readiness check failed"},
		{"POST", "/users/1/balance/charge", map[string]any{"amount": 1}, http.StatusInternalServerError, "internal error", "request failed"},
		{"POST", "/orders", map[string]any{"userId": 1, "items": []any{item(1, 1)}}, http.StatusInternalServerError, "internal error", "request failed"},
		{"POST", "/orders/1/payment", map[string]any{"userId": 1}, http.StatusInternalServerError, "internal error", "request failed"},
	}
	addr := regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}:\d+|\[[0-9a-fA-F:]+\]:\d+`)
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			before := logs.String()
			r := s.do(c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if p := r.problem(t); !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail %q, want it to say %q", p.Detail, c.detail)
			}
			logged := strings.TrimPrefix(logs.String(), before)
			if !strings.Contains(logged, c.log) || !strings.Contains(logged, "database unreachable") {
				t.Errorf("log %q does not say %q and %q", logged, c.log, "database unreachable")
			}
			if m := addr.FindString(logged); m != "" {
				t.Errorf("log carries the address %s: %s", m, logged)
			}
			if strings.Contains(logged, closed) || (password != "" && strings.Contains(logged, password)) {
				t.Errorf("log carries the database's address or password: %s", logged)
			}
		})
	}
}
