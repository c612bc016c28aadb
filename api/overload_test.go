package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

// lockRow holds a row lock taken by query (a SELECT ... FOR UPDATE) in a
// transaction of db until the returned func ends it, so requests needing
// the row wait.
func lockRow(t *testing.T, db *sql.DB, query string, args ...any) (release func()) {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(query, args...); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

// waitForLockWaiters waits until n sessions of the test database wait for a
// lock.
func waitForLockWaiters(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	eventually.True(t, 10*time.Second, fmt.Sprintf("%d requests waiting for a lock", n), func() (bool, error) {
		var waiting int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return waiting == n, err
	})
}

// With the bound at N and N requests in flight, one more request is refused
// at once with 503 /problems/overloaded and Retry-After, and changes
// nothing; the probes still answer; once the N finish, requests succeed.
func TestAdmissionBound(t *testing.T) {
	const bound = 3
	db, dbURL := pgtest.NewDB(t)
	apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	seen.addSecretsOf(dbURL)
	seen.addSecretsOf(apiURL)
	s := startServer(t, db, apiDB, nil, func(c *api.Config) { c.MaxInFlight = bound })
	user := s.newUser(0)
	as := s.as(user)

	// The charges wait for the user's row: bound requests in flight.
	release := lockRow(t, db, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, user)
	statuses := make(chan int, bound)
	for range bound {
		go func() {
			statuses <- as.do("POST", fmt.Sprintf("/users/%d/balance/charge", user), map[string]any{"amount": 1}).status
		}()
	}
	waitForLockWaiters(t, db, bound)

	for _, path := range []string{fmt.Sprintf("/users/%d/balance/charge", user), "/products"} {
		method, body := "GET", any(nil)
		if strings.HasSuffix(path, "/charge") {
			method, body = "POST", map[string]any{"amount": 1}
		}
		start := time.Now()
		r := as.do(method, path, body)
		took := time.Since(start)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("%s %s past the bound: status %d, want 503: %s", method, path, r.status, r.body)
		}
		if took > 50*time.Millisecond {
			t.Errorf("%s %s past the bound: refused after %v, want at once (< 50 ms)", method, path, took)
		}
		if p := r.problem(t); p.Type != "/problems/overloaded" {
			t.Errorf("problem type %q, want /problems/overloaded", p.Type)
		}
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After %q, want 1", got)
		}
	}
	for _, probe := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		s.mustDo(http.StatusOK, "GET", probe, nil)
	}

	release()
	for range bound {
		if st := <-statuses; st != http.StatusOK {
			t.Errorf("a charge in flight got %d, want 200", st)
		}
	}
	// The refused charge changed nothing.
	if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != bound {
		t.Errorf("balance %d, want %d", b, bound)
	}
	for range 2 * bound {
		as.mustDo(http.StatusOK, "GET", "/products", nil)
	}
}

// A payment cut short while it waits for the order's lock leaves nothing
// behind, logs no error line, and, when anyone still listens, answers 503
// /problems/timeout; never a 500. The cut comes from the client going
// away, the API's request deadline, or the role's statement_timeout
// (shortened here for this test's database only).
func TestPaymentCutShort(t *testing.T) {
	for _, tc := range []struct {
		name string
		// requestTimeout is the API's; statementTimeout, if set, the
		// role's in this database.
		requestTimeout, statementTimeout time.Duration
		clientGivesUp                    bool
		log                              string // a line the cut logs
	}{
		{name: "client gives up", requestTimeout: 30 * time.Second, clientGivesUp: true, log: "request cut short"},
		{name: "request deadline", requestTimeout: 300 * time.Millisecond, log: "request cut short"},
		{name: "statement timeout", requestTimeout: 30 * time.Second, statementTimeout: 300 * time.Millisecond, log: "database timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, dbURL := pgtest.NewDB(t)
			if tc.statementTimeout > 0 {
				// Before the API's first connection: role settings apply
				// to new sessions.
				if _, err := db.Exec(fmt.Sprintf(`ALTER ROLE %s IN DATABASE %s SET statement_timeout = '%dms'`,
					migrations.RoleAPI, mustDBName(t, db), tc.statementTimeout.Milliseconds())); err != nil {
					t.Fatal(err)
				}
			}
			apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
			seen.addSecretsOf(dbURL)
			seen.addSecretsOf(apiURL)
			logger, logs := logtest.New()
			s := startServer(t, db, apiDB, logger, func(c *api.Config) { c.RequestTimeout = tc.requestTimeout })
			user := s.newUser(1000)
			order := s.newOrder(user, item(s.newDetail(100, 10), 1))
			before := s.snapshot()

			release := lockRow(t, db, `SELECT 1 FROM orders WHERE id = $1 FOR UPDATE`, order.OrderID)
			path := fmt.Sprintf("/orders/%d/payment", order.OrderID)
			if tc.clientGivesUp {
				ctx, cancel := context.WithCancel(context.Background())
				req, err := http.NewRequestWithContext(ctx, "POST", s.url+path, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+s.token(user))
				gotResponse := make(chan error, 1)
				go func() {
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						resp.Body.Close()
					}
					gotResponse <- err
				}()
				waitForLockWaiters(t, db, 1)
				cancel()
				if err := <-gotResponse; err == nil {
					t.Fatal("the request got a response after its client gave up")
				}
				eventually.True(t, 10*time.Second, "the server logs the request", func() (bool, error) {
					return strings.Contains(logs.String(), `msg="http request" method=POST uri=`+path), nil
				})
				if !strings.Contains(logs.String(), "status=503") {
					t.Errorf("the request was logged with another status than 503:\n%s", logs)
				}
			} else {
				r := s.as(user).do("POST", path, map[string]any{})
				if r.status != http.StatusServiceUnavailable {
					t.Fatalf("status %d, want 503: %s", r.status, r.body)
				}
				if p := r.problem(t); p.Type != "/problems/timeout" {
					t.Errorf("problem type %q, want /problems/timeout", p.Type)
				}
			}
			release()

			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("the log does not say %q:\n%s", tc.log, logs)
			}
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("an error line for a request cut short:\n%s", logs)
			}
			if after := s.snapshot(); after != before {
				t.Errorf("the payment cut short changed the database:\nbefore %s\nafter  %s", before, after)
			}
			// The order can still be paid (by the domain itself: the API's
			// deadline may be short).
			if _, _, err := shop.New(apiDB).Pay(t.Context(), shop.PayRequest{OrderID: order.OrderID, UserID: user}); err != nil {
				t.Errorf("paying the order after the cut: %v", err)
			}
		})
	}
}

// mustDBName is the name of db's database.
func mustDBName(t *testing.T, db *sql.DB) string {
	t.Helper()
	var name string
	if err := db.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
