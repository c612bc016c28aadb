package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/consumers/platformmock"
	"github.com/outboxpay/outboxpay/internal/eventually"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// system is everything `dev` runs, in this test process: a fresh database,
// an embedded Kafka, the CDC engine behind its Kafka Connect API with the
// connector registered, the three consumer groups, the platform mock and
// the API.
type system struct {
	*cdcRig
	cfg      config
	reg      *prometheus.Registry
	api      string
	connect  *rest.Client
	platform *platformmock.Server
	stop     context.CancelFunc
	stopped  chan error
}

func newSystem(t *testing.T) *system {
	t.Helper()
	r := newCDCRig(t)
	s := &system{cdcRig: r, reg: prometheus.NewRegistry(), platform: platformmock.New(platformmock.Config{Seed: 1})}
	pm := httptest.NewServer(s.platform)
	t.Cleanup(pm.Close)

	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectAddr = "127.0.0.1:0"
	cfg.PlatformURL = pm.URL
	cfg.PlatformTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	s.cfg = cfg
	logger := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.stopped = cancel, make(chan error, 2)
	addrCh := make(chan net.Addr, 1)
	go func() {
		s.stopped <- serveConnect(ctx, cfg, r.db, r.bootstrap, s.reg, r.lookup, logger, func(a net.Addr) { addrCh <- a })
	}()
	s.connect = rest.NewClient("http://"+(<-addrCh).String(), &http.Client{Timeout: 10 * time.Second})
	if _, _, err := s.connect.PutConnectorConfig(ctx, r.name, r.config); err != nil {
		t.Fatal(err)
	}
	r.waitSlot(true)

	groups, err := consumerGroups(cfg, r.db, r.bootstrap, s.reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	go func() { s.stopped <- runGroups(ctx, groups) }()

	e, err := api.New(shop.New(r.db), api.Config{MaxBodyBytes: 1 << 16, RequestTimeout: 10 * time.Second,
		Ready: r.db.PingContext, Registerer: s.reg, Gatherer: s.reg})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(e)
	s.api = apiSrv.URL
	t.Cleanup(func() {
		apiSrv.Close()
		cancel()
		for range 2 {
			if err := <-s.stopped; err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	return s
}

// call sends a JSON request to the API and decodes the response into out.
func (s *system) call(method, path string, body any, want int, out any) {
	s.t.Helper()
	var b strings.Builder
	if body != nil {
		_ = json.NewEncoder(&b).Encode(body)
	}
	req, _ := http.NewRequest(method, s.api+path, strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var p map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&p)
		s.t.Fatalf("%s %s: %d, want %d: %v", method, path, resp.StatusCode, want, p)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *system) newUser(balance int64) int64 {
	var id int64
	if err := s.db.QueryRow(`INSERT INTO users (name, balance) VALUES ('u', $1) RETURNING id`, balance).Scan(&id); err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *system) newDetail(price int64, stock int) int64 {
	var id int64
	err := s.db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
		INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', $1, $2 FROM p RETURNING id`,
		price, stock).Scan(&id)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *system) stock(detail int64) int {
	var n int
	if err := s.db.QueryRow(`SELECT stock FROM product_details WHERE id = $1`, detail).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

func (s *system) balance(user int64) int64 {
	var n int64
	if err := s.db.QueryRow(`SELECT balance FROM users WHERE id = $1`, user).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// orderAndPay places an order of one item and pays it.
func (s *system) orderAndPay(user, detail int64, qty int) shop.Order {
	s.t.Helper()
	var o shop.Order
	s.call("POST", "/orders", map[string]any{"userId": user, "items": []any{map[string]any{"productDetailId": detail, "quantity": qty}}}, 201, &o)
	s.call("POST", fmt.Sprintf("/orders/%d/payment", o.OrderID), map[string]any{"userId": user}, 201, nil)
	return o
}

// waitComplete waits until every event of the orders is COMPLETE and
// returns the orders as the API shows them.
func (s *system) waitComplete(orders ...int64) map[int64]shop.OrderView {
	s.t.Helper()
	views := map[int64]shop.OrderView{}
	eventually.True(s.t, 90*time.Second, fmt.Sprintf("orders %v COMPLETE", orders), func() (bool, error) {
		for _, id := range orders {
			var v shop.OrderView
			s.call("GET", fmt.Sprintf("/orders/%d", id), nil, 200, &v)
			views[id] = v
			if len(v.Events) < 2 {
				return false, fmt.Errorf("order %d has %d events", id, len(v.Events))
			}
			for _, e := range v.Events {
				if e.Status != "COMPLETE" {
					return false, fmt.Errorf("order %d: %s is %s", id, e.Type, e.Status)
				}
			}
		}
		return true, nil
	})
	return views
}

// A paid order's events all become COMPLETE; stock is taken once and the
// platform received the payment once.
func TestPaidOrderBecomesComplete(t *testing.T) {
	s := newSystem(t)
	user, detail := s.newUser(100000), s.newDetail(2500, 10)
	o := s.orderAndPay(user, detail, 3)
	v := s.waitComplete(o.OrderID)[o.OrderID]
	if v.Status != shop.OrderPaid || len(v.Events) != 2 {
		t.Fatalf("order %+v", v)
	}
	if got := s.stock(detail); got != 7 {
		t.Errorf("stock %d, want 7", got)
	}
	st := s.platform.Stats()
	if st.FirstDeliveries != 1 || st.Duplicates != 0 {
		t.Errorf("platform stats %+v, want one first delivery", st)
	}
	var published int
	if err := s.db.QueryRow(`SELECT count(*) FROM outbox WHERE published_at IS NOT NULL AND completed_at IS NOT NULL`).Scan(&published); err != nil || published != 2 {
		t.Errorf("%d rows both published and completed (%v), want 2", published, err)
	}
}

// When stock runs short after payment, the order is cancelled and refunded
// once, PaymentRefunded reaches the platform once, and stock never goes
// below zero.
func TestShortStockRefunds(t *testing.T) {
	s := newSystem(t)
	detail := s.newDetail(1000, 2)
	users := []int64{s.newUser(5000), s.newUser(5000), s.newUser(5000)}
	var orders []int64
	for _, u := range users {
		var o shop.Order
		s.call("POST", "/orders", map[string]any{"userId": u, "items": []any{map[string]any{"productDetailId": detail, "quantity": 1}}}, 201, &o)
		orders = append(orders, o.OrderID)
	}
	for i, u := range users { // all three pass the order-time check; only two can be served
		s.call("POST", fmt.Sprintf("/orders/%d/payment", orders[i]), map[string]any{"userId": u}, 201, nil)
	}
	views := s.waitComplete(orders...)
	cancelled := 0
	for i, id := range orders {
		v := views[id]
		switch v.Status {
		case shop.OrderPaid:
			if b := s.balance(users[i]); b != 4000 {
				t.Errorf("user of paid order %d: balance %d, want 4000", id, b)
			}
		case shop.OrderCancelled:
			cancelled++
			if b := s.balance(users[i]); b != 5000 {
				t.Errorf("user of cancelled order %d: balance %d, want 5000 (refunded once)", id, b)
			}
			types := map[string]bool{}
			for _, e := range v.Events {
				types[e.Type] = true
			}
			if !types["PaymentRefunded"] {
				t.Errorf("cancelled order %d has no PaymentRefunded event: %+v", id, v.Events)
			}
		default:
			t.Errorf("order %d is %s", id, v.Status)
		}
	}
	if cancelled != 1 || s.stock(detail) != 0 {
		t.Fatalf("%d orders cancelled, stock %d; want 1 and 0", cancelled, s.stock(detail))
	}
	var refunds int
	for _, e := range s.platform.Events() {
		if e.EventType == "PaymentRefunded" {
			refunds++
		}
	}
	if st := s.platform.Stats(); refunds != 1 || st.FirstDeliveries != 4 || st.Duplicates != 0 {
		t.Errorf("platform: %d refunds, stats %+v; want 1 refund among 4 first deliveries", refunds, st)
	}
}

// A platform that fails half of the calls and is slow: every event still
// becomes COMPLETE and the platform records each once.
func TestFlakyPlatform(t *testing.T) {
	s := newSystem(t)
	s.platform.SetFaults(0.5, 30*time.Millisecond, 0)
	user, detail := s.newUser(1_000_000), s.newDetail(100, 100)
	var orders []int64
	for range 10 {
		orders = append(orders, s.orderAndPay(user, detail, 1).OrderID)
	}
	s.waitComplete(orders...)
	st := s.platform.Stats()
	if st.FirstDeliveries != 10 || st.Failed == 0 {
		t.Errorf("platform stats %+v: want 10 first deliveries and some injected failures", st)
	}
	if s.stock(detail) != 90 {
		t.Errorf("stock %d, want 90", s.stock(detail))
	}
}
