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

// gauge is the value of the API's gauge name in s's registry.
func (s *server) gauge(name string) float64 {
	s.t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	s.t.Fatalf("no gauge %s", name)
	return 0
}

// chargeHeld starts n charges of user in the background while release (a
// lock on the user's row) is held; it returns their statuses.
func chargeHeld(as *server, user int64, n int) <-chan int {
	statuses := make(chan int, n)
	for range n {
		go func() {
			statuses <- as.do("POST", fmt.Sprintf("/users/%d/balance/charge", user), map[string]any{"amount": 1}).status
		}()
	}
	return statuses
}

// refused checks that r is the admission's refusal.
func refused(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("%s: status %d, want 503: %s", what, r.status, r.body)
	}
	if p := r.problem(t); p.Type != "/problems/overloaded" {
		t.Errorf("%s: problem type %q, want /problems/overloaded", what, p.Type)
	}
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("%s: Retry-After %q, want 1", what, got)
	}
}

// With N requests worked on (MaxWorking) and M more waiting (MaxInFlight
// N+M, a long QueueWait), one more request is refused at once with 503
// /problems/overloaded and Retry-After, and changes nothing; the probes
// still answer; once the N finish, the waiting ones are served, and
// requests succeed again.
func TestAdmissionBound(t *testing.T) {
	const working, waiting = 3, 2
	db, dbURL := pgtest.NewDB(t)
	apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	seen.addSecretsOf(dbURL)
	seen.addSecretsOf(apiURL)
	s := startServer(t, db, apiDB, nil, func(c *api.Config) {
		c.MaxInFlight, c.MaxWorking, c.QueueWait = working+waiting, working, time.Minute
	})
	user := s.newUser(0)
	as := s.as(user)

	// The charges wait for the user's row: working requests worked on,
	// then waiting more wait for them.
	release := lockRow(t, db, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, user)
	statuses := chargeHeld(as, user, working)
	waitForLockWaiters(t, db, working)
	waited := chargeHeld(as, user, waiting)
	eventually.True(t, 10*time.Second, fmt.Sprintf("%d requests waiting", waiting), func() (bool, error) {
		return s.gauge("http_requests_waiting") == waiting, nil
	})
	if got := s.gauge("http_requests_in_flight"); got != working+waiting {
		t.Errorf("http_requests_in_flight %v, want %d", got, working+waiting)
	}

	for _, path := range []string{fmt.Sprintf("/users/%d/balance/charge", user), "/products"} {
		method, body := "GET", any(nil)
		if strings.HasSuffix(path, "/charge") {
			method, body = "POST", map[string]any{"amount": 1}
		}
		start := time.Now()
		r := as.do(method, path, body)
		took := time.Since(start)
		refused(t, method+" "+path+" past the bound", r)
		if took > 50*time.Millisecond {
			t.Errorf("%s %s past the bound: refused after %v, want at once (< 50 ms)", method, path, took)
		}
	}
	for _, probe := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		s.mustDo(http.StatusOK, "GET", probe, nil)
	}

	release()
	for range working {
		if st := <-statuses; st != http.StatusOK {
			t.Errorf("a charge worked on got %d, want 200", st)
		}
	}
	for range waiting {
		if st := <-waited; st != http.StatusOK {
			t.Errorf("a charge that waited got %d, want 200", st)
		}
	}
	// The refused charge changed nothing.
	if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != working+waiting {
		t.Errorf("balance %d, want %d", b, working+waiting)
	}
	for range 2 * (working + waiting) {
		as.mustDo(http.StatusOK, "GET", "/products", nil)
	}
}

// A request admitted while MaxWorking requests are worked on waits
// QueueWait for one of them to finish, then is refused with 503
// /problems/overloaded, changing nothing; MaxWorking unset (or QueueWait
// zero) refuses it at once.
func TestAdmissionQueueWait(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxWorking int
		queueWait  time.Duration
		// the refusal comes after at least min and at most max
		min, max time.Duration
	}{
		{name: "waits QueueWait", maxWorking: 1, queueWait: 300 * time.Millisecond, min: 300 * time.Millisecond, max: 3 * time.Second},
		{name: "no queue wait", maxWorking: 1, max: 50 * time.Millisecond},
		{name: "MaxWorking unset", queueWait: time.Minute, max: 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, dbURL := pgtest.NewDB(t)
			apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
			seen.addSecretsOf(dbURL)
			seen.addSecretsOf(apiURL)
			s := startServer(t, db, apiDB, nil, func(c *api.Config) {
				c.MaxWorking, c.QueueWait = tc.maxWorking, tc.queueWait
				c.MaxInFlight = 1
				if tc.maxWorking > 0 {
					c.MaxInFlight = 2
				}
			})
			user := s.newUser(0)
			as := s.as(user)
			release := lockRow(t, db, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, user)
			statuses := chargeHeld(as, user, 1)
			waitForLockWaiters(t, db, 1)

			start := time.Now()
			r := as.do("POST", fmt.Sprintf("/users/%d/balance/charge", user), map[string]any{"amount": 1})
			took := time.Since(start)
			refused(t, "a charge past MaxWorking", r)
			if took < tc.min || took > tc.max {
				t.Errorf("refused after %v, want between %v and %v", took, tc.min, tc.max)
			}
			if got := s.gauge("http_requests_waiting"); got != 0 {
				t.Errorf("http_requests_waiting %v after the refusal, want 0", got)
			}
			release()
			if st := <-statuses; st != http.StatusOK {
				t.Errorf("the charge worked on got %d, want 200", st)
			}
			if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != 1 {
				t.Errorf("balance %d, want 1: the refused charge changed it", b)
			}
		})
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
