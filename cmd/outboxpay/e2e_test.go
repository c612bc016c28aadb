package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

// stack is a running system the end-to-end tests drive over HTTP only: the
// docker-compose stack with Debezium when OUTBOXPAY_E2E_API_URL is set (the
// compose CI workflow), otherwise the shared `outboxpay dev` process.
type stack struct {
	API, Connect, Platform string
	// User and Password are the Kafka Connect REST API's (and the platform
	// mock's operator) credentials.
	User, Password string
	// Prometheus is the stack's Prometheus; "" for dev (tests start their own).
	Prometheus string
	// Metrics is the base URL of the API's /metrics (dev's METRICS_ADDR);
	// "" for the compose stack, whose Prometheus scrapes it.
	Metrics string
	// Debezium reports that Debezium, not the embedded engine, runs the connector.
	Debezium bool
	// token returns a bearer token of the user with every scope.
	token func(t *testing.T, user int64) string
	// dev is the dev system, when that is what runs.
	dev *devSystem
}

func e2eStack(t *testing.T) stack {
	t.Helper()
	if api := os.Getenv("OUTBOXPAY_E2E_API_URL"); api != "" {
		env := func(name, def string) string {
			if v := os.Getenv(name); v != "" {
				return v
			}
			return def
		}
		return stack{API: api, Connect: env("OUTBOXPAY_E2E_CONNECT_URL", "http://localhost:8083"),
			Platform:   env("OUTBOXPAY_E2E_PLATFORM_URL", "http://localhost:8090"),
			Prometheus: env("OUTBOXPAY_E2E_PROMETHEUS_URL", "http://localhost:9090"),
			Debezium:   os.Getenv("OUTBOXPAY_E2E_ENGINE") != "embedded",
			User:       env("CONNECT_REST_USERNAME", "admin"), Password: os.Getenv("CONNECT_REST_PASSWORD"),
			token: commandTokens(env("OUTBOXPAY_E2E_TOKEN_COMMAND", "docker compose exec -T auth-issuer outboxpay token --user"))}
	}
	sys := sharedDev(t)
	return stack{API: sys.API, Connect: sys.Connect, Platform: sys.Platform, User: sys.User, Password: sys.Password,
		Metrics: sys.Metrics, dev: sys, token: func(t *testing.T, user int64) string { return sys.token(t, user) }}
}

// commandTokens returns tokens printed by command with the user id
// appended (the compose stack's `outboxpay token` in the auth-issuer
// container), one per user, made once.
func commandTokens(command string) func(t *testing.T, user int64) string {
	var mu sync.Mutex
	tokens := map[int64]string{}
	return func(t *testing.T, user int64) string {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if tok, ok := tokens[user]; ok {
			return tok
		}
		var stderr strings.Builder
		cmd := exec.Command("sh", "-c", fmt.Sprintf("%s %d", command, user))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %d: %v\n%s", command, user, err, stderr.String())
		}
		tokens[user] = strings.TrimSpace(string(out))
		return tokens[user]
	}
}

// The whole pipeline as a client sees it, through public interfaces only:
// the connector RUNNING over the Kafka Connect REST API; a payment whose
// events become COMPLETE and reach the data platform once; two orders for
// the last units of a product, both paid, of which one is refunded.
func TestEndToEnd(t *testing.T) {
	s := e2eStack(t)
	ctx := context.Background()

	connect := rest.NewClient(s.Connect, &http.Client{Timeout: 10 * time.Second}, rest.BasicAuth(s.User, s.Password))
	eventually.True(t, 2*time.Minute, "connector outbox RUNNING", func() (bool, error) {
		st, err := connect.ConnectorStatus(ctx, "outbox")
		if err != nil {
			return false, err
		}
		return running(st), fmt.Errorf("status %s", describeStatus(st))
	})

	t.Run("payment becomes COMPLETE and reaches the platform once", func(t *testing.T) {
		detail := s.detailWithStock(t, 1, false)
		s.charge(t, 2, detail.Price)
		order := s.order(t, 2, detail.ID, 1)
		s.pay(t, order, 2)
		view := s.waitSettled(t, 2, order)
		if view.Status != "PAID" {
			t.Fatalf("order %d is %s, want PAID", order, view.Status)
		}
		for _, e := range view.Events {
			if e.Type == "PaymentCompleted" {
				s.deliveredOnce(t, e.ID, "PaymentCompleted")
			}
		}
	})

	t.Run("an order is its owner's", func(t *testing.T) {
		detail := s.detailWithStock(t, 1, false)
		order := s.order(t, 2, detail.ID, 1)
		// Another user's token: as if the order did not exist.
		var other, missing map[string]any
		s.do(t, 3, "GET", fmt.Sprintf("/orders/%d", order), nil, http.StatusNotFound, &other)
		s.do(t, 3, "GET", "/orders/999999999", nil, http.StatusNotFound, &missing)
		if other["type"] != missing["type"] || other["status"] != missing["status"] {
			t.Errorf("another user's order: %v; a missing order: %v", other, missing)
		}
		s.do(t, 3, "POST", fmt.Sprintf("/orders/%d/payment", order), map[string]any{}, http.StatusNotFound, nil)
		// A body naming another user than the token's.
		s.do(t, 3, "POST", "/orders", map[string]any{"userId": 2,
			"items": []any{map[string]any{"productDetailId": detail.ID, "quantity": 1}}}, http.StatusForbidden, nil)
		// No token at all.
		s.request(t, s.API, "GET", fmt.Sprintf("/orders/%d", order), nil, http.StatusUnauthorized, nil)
		if v := s.view(t, 2, order); v.Status != "ORDERED" {
			t.Errorf("the owner's order is %s, want ORDERED", v.Status)
		}
	})

	t.Run("short stock is refunded once", func(t *testing.T) {
		detail := s.detailWithStock(t, 1, true)
		amount := detail.Price * detail.Stock
		s.charge(t, 3, 2*amount)
		before := s.balance(t, 3)
		first, second := s.order(t, 3, detail.ID, detail.Stock), s.order(t, 3, detail.ID, detail.Stock)
		s.pay(t, first, 3)
		s.pay(t, second, 3)
		statuses := []string{s.waitSettled(t, 3, first).Status, s.waitSettled(t, 3, second).Status}
		slices.Sort(statuses)
		if !slices.Equal(statuses, []string{"CANCELLED", "PAID"}) {
			t.Fatalf("orders %d and %d are %v, want one PAID and one CANCELLED", first, second, statuses)
		}
		if got, want := s.balance(t, 3), before-amount; got != want {
			t.Errorf("balance %d after one paid and one refunded order, want %d", got, want)
		}
		if got := s.detail(t, detail.ID).Stock; got != 0 {
			t.Errorf("stock %d, want 0", got)
		}
		for _, id := range []int64{first, second} {
			for _, e := range s.view(t, 3, id).Events {
				if e.Type == "PaymentRefunded" {
					s.deliveredOnce(t, e.ID, "PaymentRefunded")
				}
			}
		}
	})
}

type productDetail struct {
	ID     int64  `json:"productDetailId"`
	Option string `json:"option"`
	Price  int64  `json:"price"`
	Stock  int64  `json:"stock"`
}

type orderView struct {
	OrderID int64  `json:"orderId"`
	Status  string `json:"status"`
	Events  []struct {
		ID     string `json:"id"`
		Type   string `json:"type"`
		Topic  string `json:"topic"`
		Status string `json:"status"`
	} `json:"events"`
}

// detailWithStock picks a product detail with at least min units: the one
// with the fewest (when fewest) or the most.
func (s stack) detailWithStock(t *testing.T, min int64, fewest bool) productDetail {
	t.Helper()
	var products []struct {
		Details []productDetail `json:"details"`
	}
	s.do(t, 1, "GET", "/products", nil, http.StatusOK, &products)
	var best *productDetail
	for _, p := range products {
		for _, d := range p.Details {
			if d.Stock < min {
				continue
			}
			if best == nil || (fewest && d.Stock < best.Stock) || (!fewest && d.Stock > best.Stock) {
				best = &d
			}
		}
	}
	if best == nil {
		t.Fatalf("no product detail has %d units left; reseed the stack", min)
	}
	return *best
}

func (s stack) detail(t *testing.T, id int64) productDetail {
	t.Helper()
	var products []struct {
		Details []productDetail `json:"details"`
	}
	s.do(t, 1, "GET", "/products", nil, http.StatusOK, &products)
	for _, p := range products {
		for _, d := range p.Details {
			if d.ID == id {
				return d
			}
		}
	}
	t.Fatalf("product detail %d not found", id)
	return productDetail{}
}

func (s stack) charge(t *testing.T, user, amount int64) {
	t.Helper()
	s.do(t, user, "POST", fmt.Sprintf("/users/%d/balance/charge", user), map[string]any{"amount": amount}, http.StatusOK, nil)
}

func (s stack) balance(t *testing.T, user int64) int64 {
	t.Helper()
	var b struct {
		Balance int64 `json:"balance"`
	}
	s.do(t, user, "GET", fmt.Sprintf("/users/%d/balance", user), nil, http.StatusOK, &b)
	return b.Balance
}

func (s stack) order(t *testing.T, user, detail, quantity int64) int64 {
	t.Helper()
	var o orderView
	s.do(t, user, "POST", "/orders", map[string]any{"userId": user,
		"items": []any{map[string]any{"productDetailId": detail, "quantity": quantity}}}, http.StatusCreated, &o)
	return o.OrderID
}

func (s stack) pay(t *testing.T, order, user int64) {
	t.Helper()
	s.do(t, user, "POST", fmt.Sprintf("/orders/%d/payment", order), map[string]any{"userId": user}, http.StatusCreated, nil)
}

// view is the order as its owner sees it.
func (s stack) view(t *testing.T, user, order int64) orderView {
	t.Helper()
	var v orderView
	s.do(t, user, "GET", fmt.Sprintf("/orders/%d", order), nil, http.StatusOK, &v)
	return v
}

// waitSettled waits until every event of the user's order is COMPLETE and
// the order is PAID or CANCELLED (a refunded order has three events).
func (s stack) waitSettled(t *testing.T, user, order int64) orderView {
	t.Helper()
	var v orderView
	// Every 100 ms: each poll is an API request, and the API limits a client
	// to 50/s (API_RATE_LIMIT).
	eventually.TrueEvery(t, 2*time.Minute, 100*time.Millisecond, fmt.Sprintf("order %d settled", order), func() (bool, error) {
		v = s.view(t, user, order)
		for _, e := range v.Events {
			if e.Status != "COMPLETE" {
				return false, fmt.Errorf("order %s, event %s %s", v.Status, e.Type, e.Status)
			}
		}
		want := map[string]int{"PAID": 2, "CANCELLED": 3}[v.Status]
		return want > 0 && len(v.Events) == want, fmt.Errorf("order %s with %d events", v.Status, len(v.Events))
	})
	return v
}

// deliveredOnce checks that the platform recorded the event, by its
// idempotency key, as one first delivery of the right type.
func (s stack) deliveredOnce(t *testing.T, id, eventType string) {
	t.Helper()
	var ev struct {
		EventType string `json:"eventType"`
	}
	s.request(t, s.Platform, "GET", "/events/"+id, nil, http.StatusOK, &ev)
	if ev.EventType != eventType {
		t.Errorf("platform recorded event %s as %q, want %q", id, ev.EventType, eventType)
	}
}

// do sends a request to the API with a token of user.
func (s stack) do(t *testing.T, user int64, method, path string, body any, want int, out any) {
	t.Helper()
	s.request(t, s.API, method, path, body, want, out, "Bearer "+s.token(t, user))
}

// request sends a request to base: the API with the authorization given,
// the operator planes with the operator's credentials.
func (s stack) request(t *testing.T, base, method, path string, body any, want int, out any, authorization ...string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if base != s.API {
		req.SetBasicAuth(s.User, s.Password)
	} else if len(authorization) > 0 {
		req.Header.Set("Authorization", authorization[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}
