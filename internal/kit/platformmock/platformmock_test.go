package platformmock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
)

const payment = `{"paymentId":1,"orderId":1,"userId":1,"amount":30000,"balanceAfter":20000,"paidAt":"2026-01-02T03:04:05Z"}`

// mock is a platform mock behind an httptest server.
type mock struct {
	*platformmock.Server
	url string
}

func start(t *testing.T, cfg platformmock.Config) *mock {
	t.Helper()
	s := platformmock.New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &mock{Server: s, url: ts.URL}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends one request; headers are name, value pairs.
func do(t *testing.T, client *http.Client, method, u, body string, headers ...string) (response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read %s %s: %w", method, u, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// must sends one request with the default client and checks its status.
func (m *mock) must(t *testing.T, want int, method, path, body string, headers ...string) response {
	t.Helper()
	r, err := do(t, http.DefaultClient, method, m.url+path, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

func (m *mock) post(t *testing.T, want int, key, eventType, body string) response {
	t.Helper()
	return m.must(t, want, "POST", "/events", body, "Idempotency-Key", key, "X-Event-Type", eventType)
}

type listing struct {
	platformmock.Stats
	Events []platformmock.Event `json:"events"`
}

func (m *mock) list(t *testing.T, query string) listing {
	t.Helper()
	var l listing
	m.must(t, http.StatusOK, "GET", "/events"+query, "").decode(t, &l)
	return l
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func (r response) problem(t *testing.T) problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, r.body)
	}
	var p problem
	r.decode(t, &p)
	if p.Status != r.status || p.Title != http.StatusText(r.status) {
		t.Fatalf("problem %+v does not match status %d", p, r.status)
	}
	return p
}

func TestFirstDeliveryAndDuplicates(t *testing.T) {
	m := start(t, platformmock.Config{})
	steps := []struct {
		key, eventType, body string
		wantStatus           int
		wantDuplicate        bool
	}{
		{"evt-1", "PaymentCompleted", payment, http.StatusCreated, false},
		{"evt-2", "PaymentRefunded", `{"paymentId":1,"amount":30000,"reason":"out of stock"}`, http.StatusCreated, false},
		{"evt-1", "PaymentCompleted", payment, http.StatusOK, true},
		// the same object with other whitespace and key order is the same event
		{"evt-1", "PaymentCompleted", `{ "userId":1, "orderId":1, "paymentId":1, "amount":30000, "balanceAfter":20000, "paidAt":"2026-01-02T03:04:05Z" }`, http.StatusOK, true},
		{"a/b_c%?", "PaymentCompleted", `{"paymentId":2}`, http.StatusCreated, false}, // served at /events/a%2Fb_c%25%3F
	}
	for i, st := range steps {
		var got struct {
			IdempotencyKey string `json:"idempotencyKey"`
			Duplicate      bool   `json:"duplicate"`
		}
		m.post(t, st.wantStatus, st.key, st.eventType, st.body).decode(t, &got)
		if got.IdempotencyKey != st.key || got.Duplicate != st.wantDuplicate {
			t.Errorf("step %d: got %+v, want key %q duplicate %v", i, got, st.key, st.wantDuplicate)
		}
	}

	wantStats := platformmock.Stats{Received: 5, FirstDeliveries: 3, Duplicates: 2}
	if got := m.Stats(); got != wantStats {
		t.Errorf("Stats() = %+v, want %+v", got, wantStats)
	}
	l := m.list(t, "")
	if l.Stats != wantStats {
		t.Errorf("GET /events counters = %+v, want %+v", l.Stats, wantStats)
	}
	var keys []string
	for _, e := range l.Events {
		keys = append(keys, e.IdempotencyKey)
	}
	if got, want := strings.Join(keys, ","), "evt-1,evt-2,a/b_c%?"; got != want {
		t.Fatalf("events in order %s, want %s", got, want)
	}
	first := l.Events[0]
	if first.EventType != "PaymentCompleted" || first.Deliveries != 3 || string(first.Body) != payment ||
		first.ReceivedAt.IsZero() || first.LastReceivedAt.Before(first.ReceivedAt) {
		t.Errorf("first event = %+v", first)
	}
	if l.Events[1].Deliveries != 1 || l.Events[1].EventType != "PaymentRefunded" {
		t.Errorf("second event = %+v", l.Events[1])
	}

	t.Run("filter by key", func(t *testing.T) {
		l := m.list(t, "?key=evt-2")
		if len(l.Events) != 1 || l.Events[0].IdempotencyKey != "evt-2" || l.FirstDeliveries != 3 {
			t.Errorf("?key=evt-2 gave %+v", l)
		}
		if l := m.list(t, "?key=nope"); len(l.Events) != 0 {
			t.Errorf("?key=nope gave %+v", l.Events)
		}
	})
	t.Run("one event", func(t *testing.T) {
		var e platformmock.Event
		m.must(t, http.StatusOK, "GET", "/events/"+url.PathEscape("a/b_c%?"), "").decode(t, &e)
		if e.IdempotencyKey != "a/b_c%?" || string(e.Body) != `{"paymentId":2}` {
			t.Errorf("GET /events/{key} = %+v", e)
		}
		p := m.must(t, http.StatusNotFound, "GET", "/events/nope", "").problem(t)
		if p.Type != "/problems/not-found" {
			t.Errorf("unknown key: %+v", p)
		}
	})
}

func TestConcurrentDeliveriesOfOneKey(t *testing.T) {
	m := start(t, platformmock.Config{})
	const n = 50
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() {
			r, err := do(t, http.DefaultClient, "POST", m.url+"/events", payment,
				"Idempotency-Key", "same", "X-Event-Type", "PaymentCompleted")
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- r.status
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusOK] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 200", count, n-1)
	}
	want := platformmock.Stats{Received: n, FirstDeliveries: 1, Duplicates: n - 1}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if e, ok := m.Event("same"); !ok || e.Deliveries != n {
		t.Errorf("Event(same) = %+v, %v; want %d deliveries", e, ok, n)
	}
}

func TestKeyReusedForAnotherEvent(t *testing.T) {
	m := start(t, platformmock.Config{})
	m.post(t, http.StatusCreated, "k", "PaymentCompleted", payment)
	cases := []struct {
		name, eventType, body string
	}{
		{"other body", "PaymentCompleted", `{"paymentId":1,"orderId":1,"userId":1,"amount":1}`},
		{"other number text", "PaymentCompleted", strings.Replace(payment, "30000", "3e4", 1)},
		{"other event type", "PaymentRefunded", payment},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := m.post(t, http.StatusUnprocessableEntity, "k", tc.eventType, tc.body).problem(t)
			if p.Type != "/problems/idempotency-key-reused" || !strings.Contains(p.Detail, `"k"`) {
				t.Errorf("problem %+v", p)
			}
		})
	}
	want := platformmock.Stats{Received: 4, FirstDeliveries: 1, Conflicts: 3}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if e, _ := m.Event("k"); e.Deliveries != 1 || string(e.Body) != payment {
		t.Errorf("the first event changed: %+v", e)
	}
}

func TestInvalidRequests(t *testing.T) {
	m := start(t, platformmock.Config{})
	key := []string{"Idempotency-Key", "k1"}
	cases := []struct {
		name       string
		method     string
		path, body string
		headers    []string
		wantStatus int
		wantType   string
		wantDetail string
	}{
		{"no key", "POST", "/events", payment, nil, 400, "/problems/invalid-request", "Idempotency-Key header is required"},
		{"empty key", "POST", "/events", payment, []string{"Idempotency-Key", ""}, 400, "/problems/invalid-request", "Idempotency-Key"},
		{"key too long", "POST", "/events", payment, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "/problems/invalid-request", "Idempotency-Key"},
		{"key with a space", "POST", "/events", payment, []string{"Idempotency-Key", "a b"}, 400, "/problems/invalid-request", "Idempotency-Key"},
		{"key not ASCII", "POST", "/events", payment, []string{"Idempotency-Key", "clé"}, 400, "/problems/invalid-request", "Idempotency-Key"},
		{"two keys", "POST", "/events", payment, []string{"Idempotency-Key", "a", "Idempotency-Key", "b"}, 400, "/problems/invalid-request", "Idempotency-Key"},
		{"bad event type", "POST", "/events", payment, append([]string{"X-Event-Type", "Payment Completed"}, key...), 400, "/problems/invalid-request", "X-Event-Type"},
		{"empty body", "POST", "/events", "", key, 400, "/problems/invalid-request", "empty"},
		{"not JSON", "POST", "/events", "paymentId=1", key, 400, "/problems/invalid-request", "JSON object"},
		{"array", "POST", "/events", "[1,2]", key, 400, "/problems/invalid-request", "JSON object"},
		{"string", "POST", "/events", `"{}"`, key, 400, "/problems/invalid-request", "JSON object"},
		{"null", "POST", "/events", "null", key, 400, "/problems/invalid-request", "null"},
		{"truncated", "POST", "/events", `{"paymentId":1`, key, 400, "/problems/invalid-request", "JSON object"},
		{"trailing data", "POST", "/events", payment + `{}`, key, 400, "/problems/invalid-request", "nothing after it"},
		{"too large", "POST", "/events", `{"pad":"` + strings.Repeat("x", platformmock.MaxBodyBytes) + `"}`, key, 413, "about:blank", "larger"},
		{"method", "DELETE", "/events", "", nil, 405, "about:blank", "DELETE"},
		{"method on one event", "POST", "/events/k1", payment, key, 405, "about:blank", "POST"},
		{"no route", "GET", "/nope", "", nil, 404, "about:blank", "/nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := m.must(t, tc.wantStatus, tc.method, tc.path, tc.body, tc.headers...)
			p := r.problem(t)
			if p.Type != tc.wantType || !strings.Contains(p.Detail, tc.wantDetail) {
				t.Errorf("problem %+v, want type %s and detail with %q", p, tc.wantType, tc.wantDetail)
			}
			if tc.wantStatus == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
	if l := m.list(t, ""); len(l.Events) != 0 || l.Received != 0 || l.Invalid != 15 {
		t.Errorf("after refused requests: %+v", l)
	}
}

func TestFailureInjection(t *testing.T) {
	m := start(t, platformmock.Config{FailureRate: 0.5, Seed: 42})
	const n = 200
	var failed []string
	created := 0
	for i := range n {
		key := fmt.Sprintf("evt-%d", i)
		r, err := do(t, http.DefaultClient, "POST", m.url+"/events", payment, "Idempotency-Key", key)
		if err != nil {
			t.Fatal(err)
		}
		switch r.status {
		case http.StatusServiceUnavailable:
			if p := r.problem(t); p.Type != "/problems/injected-failure" {
				t.Fatalf("503 problem %+v", p)
			}
			failed = append(failed, key)
		case http.StatusCreated:
			created++
		default:
			t.Fatalf("POST %s: status %d: %s", key, r.status, r.body)
		}
	}
	if len(failed) < n*35/100 || len(failed) > n*65/100 {
		t.Errorf("%d of %d POSTs failed, want about half", len(failed), n)
	}
	want := platformmock.Stats{Received: created, FirstDeliveries: created, Failed: len(failed)}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	for _, key := range failed {
		if _, ok := m.Event(key); ok {
			t.Fatalf("%s was answered 503 but recorded", key)
		}
	}

	// the same seed makes the same choices
	again := start(t, platformmock.Config{FailureRate: 0.5, Seed: 42})
	var failedAgain []string
	for i := range n {
		key := fmt.Sprintf("evt-%d", i)
		if r, err := do(t, http.DefaultClient, "POST", again.url+"/events", payment, "Idempotency-Key", key); err != nil {
			t.Fatal(err)
		} else if r.status == http.StatusServiceUnavailable {
			failedAgain = append(failedAgain, key)
		}
	}
	if strings.Join(failed, ",") != strings.Join(failedAgain, ",") {
		t.Error("the same seed failed other requests")
	}
}

// tracked wraps a handler and reports each request it has finished.
func tracked(h http.Handler) (http.Handler, <-chan string) {
	done := make(chan string, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		done <- r.Header.Get("Idempotency-Key")
	}), done
}

func TestTimeoutInjection(t *testing.T) {
	s := platformmock.New(platformmock.Config{TimeoutRate: 1})
	h, finished := tracked(s)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := do(t, client, "POST", ts.URL+"/events", payment, "Idempotency-Key", "hung")
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("POST with TimeoutRate 1: err %v, want a client timeout", err)
	}
	// the handler lets go once the client has
	select {
	case key := <-finished:
		if key != "hung" {
			t.Fatalf("finished %q", key)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hung handler did not return after the client gave up")
	}
	want := platformmock.Stats{TimedOut: 1}
	if got := s.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if _, ok := s.Event("hung"); ok {
		t.Error("a timed-out POST was recorded")
	}

	// a retry after the faults are gone is the first delivery
	s.SetFaults(0, 0, 0)
	r, err := do(t, http.DefaultClient, "POST", ts.URL+"/events", payment, "Idempotency-Key", "hung")
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("retry: %v %d %s", err, r.status, r.body)
	}
}

func TestLatency(t *testing.T) {
	const latency = 150 * time.Millisecond
	m := start(t, platformmock.Config{Latency: latency})
	for _, want := range []int{http.StatusCreated, http.StatusOK} { // the first delivery and a duplicate
		began := time.Now()
		m.post(t, want, "a", "PaymentCompleted", payment)
		if elapsed := time.Since(began); elapsed < latency {
			t.Errorf("POST took %v, want at least %v", elapsed, latency)
		}
	}

	t.Run("client gives up during the latency", func(t *testing.T) {
		s := platformmock.New(platformmock.Config{Latency: time.Minute})
		h, finished := tracked(s)
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/events", strings.NewReader(payment))
		req.Header.Set("Idempotency-Key", "slow")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("POST answered %d before the latency passed", resp.StatusCode)
		}
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatal("the delayed handler did not return after the client gave up")
		}
		if got := s.Stats(); got != (platformmock.Stats{}) {
			t.Errorf("Stats() = %+v, want nothing counted", got)
		}
	})
}

func TestFaults(t *testing.T) {
	m := start(t, platformmock.Config{FailureRate: 0.25, Latency: 10 * time.Millisecond, TimeoutRate: 0.5, Seed: 1})
	getFaults := func(t *testing.T) string {
		t.Helper()
		return strings.TrimSpace(string(m.must(t, http.StatusOK, "GET", "/faults", "").body))
	}
	if got, want := getFaults(t), `{"failureRate":0.25,"latencyMs":10,"timeoutRate":0.5}`; got != want {
		t.Errorf("GET /faults = %s, want %s", got, want)
	}

	// PUT replaces all three; the POSTs that follow see them
	r := m.must(t, http.StatusOK, "PUT", "/faults", `{"failureRate":1}`)
	if got, want := strings.TrimSpace(string(r.body)), `{"failureRate":1,"latencyMs":0,"timeoutRate":0}`; got != want {
		t.Errorf("PUT /faults = %s, want %s", got, want)
	}
	m.post(t, http.StatusServiceUnavailable, "k", "PaymentCompleted", payment)

	bad := []struct{ name, body, detail string }{
		{"rate above 1", `{"failureRate":1.5}`, "failureRate"},
		{"negative rate", `{"timeoutRate":-0.1}`, "timeoutRate"},
		{"rates above 1 together", `{"failureRate":0.6,"timeoutRate":0.6}`, "at most 1"},
		{"negative latency", `{"latencyMs":-1}`, "latencyMs"},
		{"latency too long", `{"latencyMs":600001}`, "latencyMs"},
		{"unknown field", `{"failureRatio":0.5}`, "failureRatio"},
		{"not JSON", `failureRate=0.5`, "failureRate"},
		{"wrong type", `{"latencyMs":"100"}`, "latencyMs"},
		{"name in another case", `{"FailureRate":0.5}`, "FailureRate"},
		{"duplicate field", `{"failureRate":0.1,"failureRate":0.9}`, "failureRate"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := m.must(t, http.StatusBadRequest, "PUT", "/faults", tc.body).problem(t)
			if p.Type != "/problems/invalid-request" || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("problem %+v, want detail with %q", p, tc.detail)
			}
		})
	}
	if got, want := getFaults(t), `{"failureRate":1,"latencyMs":0,"timeoutRate":0}`; got != want {
		t.Errorf("after refused PUTs GET /faults = %s, want %s", got, want)
	}

	// SetFaults clamps what it cannot use
	m.SetFaults(2, -time.Second, 0.5)
	if got, want := getFaults(t), `{"failureRate":1,"latencyMs":0,"timeoutRate":0}`; got != want {
		t.Errorf("after SetFaults(2, -1s, 0.5) GET /faults = %s, want %s", got, want)
	}
	m.SetFaults(0, 0, 0)
	m.post(t, http.StatusCreated, "k", "PaymentCompleted", payment)
	if got := m.Stats(); got.Failed != 1 || got.FirstDeliveries != 1 {
		t.Errorf("Stats() = %+v", got)
	}
}

func TestHealthz(t *testing.T) {
	m := start(t, platformmock.Config{FailureRate: 1, TimeoutRate: 0})
	r := m.must(t, http.StatusOK, "GET", "/healthz", "")
	if !bytes.Contains(r.body, []byte(`"ok"`)) {
		t.Errorf("GET /healthz = %s", r.body)
	}
	m.must(t, http.StatusMethodNotAllowed, "POST", "/healthz", "")
}
