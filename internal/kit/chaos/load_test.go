package chaos

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// A 429 is a refusal to retry: the load waits the answer's Retry-After,
// counts it, and gets its definite answer after.
func TestRetryWaitsRetryAfterOn429(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		n := len(arrivals)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	l := &load{client: srv.Client()}
	status, _, ok := l.retry(t.Context(), "POST", srv.URL+"/orders", map[string]any{}, nil)
	if !ok || status != http.StatusCreated {
		t.Fatalf("retry = %d, %v; want 201 after the 429", status, ok)
	}
	if got := l.stats.rateLimited.Load(); got != 1 {
		t.Errorf("rateLimited = %d, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 2 {
		t.Fatalf("%d requests, want 2", len(arrivals))
	}
	if gap := arrivals[1].Sub(arrivals[0]); gap < time.Second {
		t.Errorf("retried %v after the 429, want at least its Retry-After of 1s", gap)
	}
}

// A retry stops when its context ends, without waiting out its two
// minutes of retries (an interrupted run's load must stop at once).
func TestRetryStopsWithItsContext(t *testing.T) {
	arrived := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	l := &load{client: srv.Client()}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		status int
		ok     bool
	}
	done := make(chan result, 1)
	go func() {
		status, _, ok := l.retry(ctx, "POST", srv.URL+"/orders", map[string]any{}, nil)
		done <- result{status, ok}
	}()
	<-arrived
	<-arrived // retried once: the 503 is not an answer
	cancel()
	select {
	case r := <-done:
		if r.ok {
			t.Errorf("retry = %d, true after its context ended; want no definite answer", r.status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retry still going 10s after its context ended")
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"1", time.Second, true},
		{"0", 0, true},
		{"3600", time.Minute, true},
		{"", 0, false},
		{"-1", 0, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, false},
	} {
		got, ok := retryAfter(http.Header{"Retry-After": {tc.header}})
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

// The load acts as the order's user: both requests carry that user's
// token with the scope the route needs, the order's body names the same
// user and the payment's names none. A 401/403 is counted.
func TestOrderAndPayActAsTheUser(t *testing.T) {
	iss, err := devtoken.New("outboxpay-chaos-test", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemKey)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// principal is who a request's token names and may do, or why not.
	principal := func(r *http.Request) (int64, []string, error) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return 0, nil, fmt.Errorf("no bearer token")
		}
		var cl devtoken.Claims
		if _, err := jwt.ParseWithClaims(raw, &cl, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(iss.Name), jwt.WithAudience(iss.Audience),
			jwt.WithExpirationRequired()); err != nil {
			return 0, nil, err
		}
		user, err := strconv.ParseInt(cl.Subject, 10, 64)
		return user, strings.Fields(cl.Scope), err
	}
	const user, order = 7, 31
	var mu sync.Mutex
	var problems []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, scopes, err := principal(r)
		if err != nil {
			fail("%s %s: %v", r.Method, r.URL.Path, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			fail("%s %s: body: %v", r.Method, r.URL.Path, err)
		}
		switch r.URL.Path {
		case "/orders":
			if sub != user || !slices.Contains(scopes, api.ScopeOrders) {
				fail("POST /orders as %d with %v, want user %d with %q", sub, scopes, user, api.ScopeOrders)
			}
			if body["userId"] != float64(sub) {
				fail("POST /orders body userId %v, want the token's %d", body["userId"], sub)
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"orderId": %d}`, order)
		case fmt.Sprintf("/orders/%d/payment", order):
			if sub != user || !slices.Contains(scopes, api.ScopePayments) {
				fail("POST payment as %d with %v, want user %d with %q", sub, scopes, user, api.ScopePayments)
			}
			if _, named := body["userId"]; named || r.Header.Get("Idempotency-Key") == "" {
				fail("POST payment: body %v, Idempotency-Key %q; want no userId and a key", body, r.Header.Get("Idempotency-Key"))
			}
			w.WriteHeader(http.StatusForbidden) // counted as a refusal of the load's token
		default:
			fail("unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	token, err := iss.Token(user, []string{api.ScopeOrders, api.ScopePayments}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{apis: []string{srv.URL}, client: srv.Client(), seed: seedData{shopper: map[int64]string{user: token}}}
	l.orderAndPay(t.Context(), user, []map[string]any{{"productDetailId": int64(1), "quantity": 1}})
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if l.stats.orders.Load() != 1 || l.stats.paymentsRefused.Load() != 1 || l.stats.authRefused.Load() != 1 {
		t.Errorf("orders %d, payments refused %d, auth refused %d; want 1, 1, 1",
			l.stats.orders.Load(), l.stats.paymentsRefused.Load(), l.stats.authRefused.Load())
	}
}

// The load sends its requests to the API instances in turn.
func TestLoadSpreadsOverAPIs(t *testing.T) {
	var hits [2]atomic.Int64
	apis := make([]string, len(hits))
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(http.StatusConflict) // the order is refused: one request per order
		}))
		defer srv.Close()
		apis[i] = srv.URL
	}
	l := &load{apis: apis, client: http.DefaultClient, seed: seedData{shopper: map[int64]string{1: "token"}}, soldOut: map[int64]bool{}}
	for range 6 {
		l.orderAndPay(t.Context(), 1, []map[string]any{{"productDetailId": int64(1), "quantity": 1}})
	}
	if a, b := hits[0].Load(), hits[1].Load(); a != 3 || b != 3 {
		t.Errorf("requests per API instance: %d and %d, want 3 and 3", a, b)
	}
}
