package chaos

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// seedData is what the run put in the database before the faults.
type seedData struct {
	users        []int64
	charged      int64           // sum of every charge the API confirmed
	initialStock map[int64]int64 // product detail -> stock
	details      []int64
}

// seed creates users and products directly, then charges every user
// through the API (before any fault, so every charge's outcome is known).
func seed(ctx context.Context, db *sql.DB, api string, rng *rand.Rand) (seedData, error) {
	sd := seedData{initialStock: map[int64]int64{}}
	stocks := []int64{5, 10, 20, 40, 150, 300, 3000, 5000}
	for p := range 10 {
		var product int64
		if err := db.QueryRowContext(ctx, `INSERT INTO products (name) VALUES ($1) RETURNING id`,
			fmt.Sprintf("chaos product %d", p+1)).Scan(&product); err != nil {
			return sd, fmt.Errorf("seed products: %w", err)
		}
		for _, option := range []string{"small", "large"} {
			stock := stocks[rng.IntN(len(stocks))]
			var id int64
			if err := db.QueryRowContext(ctx, `INSERT INTO product_details (product_id, option, price, stock)
				VALUES ($1, $2, $3, $4) RETURNING id`, product, option, 100+rng.IntN(50)*100, stock).Scan(&id); err != nil {
				return sd, fmt.Errorf("seed product details: %w", err)
			}
			sd.initialStock[id] = stock
			sd.details = append(sd.details, id)
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for u := range 40 {
		var id int64
		if err := db.QueryRowContext(ctx, `INSERT INTO users (name) VALUES ($1) RETURNING id`,
			fmt.Sprintf("chaos user %d", u+1)).Scan(&id); err != nil {
			return sd, fmt.Errorf("seed users: %w", err)
		}
		const amount = 10_000_000
		status, body, err := call(ctx, client, "POST", fmt.Sprintf("%s/users/%d/balance/charge", api, id), map[string]any{"amount": amount}, nil)
		if err != nil || status != http.StatusOK {
			return sd, fmt.Errorf("charge user %d: %d %s %v", id, status, body, err)
		}
		sd.users = append(sd.users, id)
		sd.charged += amount
	}
	return sd, nil
}

// loadStats counts what the load did.
type loadStats struct {
	orders, ordersRefused, payments, paymentsRefused, unknown, retries, races atomic.Int64
}

// load drives orders and payments at rate per second until ctx ends, each
// request retried through outages until it has a definite answer.
type load struct {
	api     string
	seed    seedData
	rate    float64
	client  *http.Client
	stats   loadStats
	mu      sync.Mutex
	rng     *rand.Rand
	soldOut map[int64]bool
}

func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	race := time.NewTicker(15 * time.Second)
	defer race.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-race.C:
			wg.Add(1)
			go func() { defer wg.Done(); l.raceForLastUnits(context.WithoutCancel(ctx)) }()
			continue
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // every worker is waiting out an outage
		}
		user, items := l.pick()
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			// In-flight work finishes after ctx ends: a payment whose
			// answer is unknown is retried with its key until it is known.
			l.orderAndPay(context.WithoutCancel(ctx), user, items)
		}()
	}
}

func (l *load) pick() (int64, []map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	user := l.seed.users[l.rng.IntN(len(l.seed.users))]
	var items []map[string]any
	n := 1
	if l.rng.IntN(5) == 0 {
		n = 2
	}
	seen := map[int64]bool{}
	for range 20 {
		if len(items) == n {
			break
		}
		d := l.seed.details[l.rng.IntN(len(l.seed.details))]
		if seen[d] || (l.soldOut[d] && l.rng.IntN(10) != 0) { // now and then, try a sold-out one again
			continue
		}
		seen[d] = true
		items = append(items, map[string]any{"productDetailId": d, "quantity": 1 + l.rng.IntN(3)})
	}
	if len(items) == 0 {
		items = append(items, map[string]any{"productDetailId": l.seed.details[0], "quantity": 1})
	}
	return user, items
}

// raceForLastUnits has two users order and pay for all that is left of the
// scarcest product detail at once: both pass the order-time stock check
// (stock is taken when the paid order is handled), so one of the two paid
// orders runs short and must be refunded.
func (l *load) raceForLastUnits(ctx context.Context) {
	status, body, ok := l.retry(ctx, "GET", l.api+"/products", nil, nil)
	if !ok || status != http.StatusOK {
		return
	}
	var products []struct {
		Details []struct {
			ID    int64 `json:"productDetailId"`
			Stock int64 `json:"stock"`
		} `json:"details"`
	}
	if err := json.Unmarshal(body, &products); err != nil {
		return
	}
	var detail, stock int64
	for _, p := range products {
		for _, d := range p.Details {
			if d.Stock > 0 && d.Stock <= 400 && (stock == 0 || d.Stock < stock) {
				detail, stock = d.ID, d.Stock
			}
		}
	}
	if detail == 0 {
		return
	}
	l.mu.Lock()
	a, b := l.seed.users[l.rng.IntN(len(l.seed.users))], l.seed.users[l.rng.IntN(len(l.seed.users))]
	l.mu.Unlock()
	l.stats.races.Add(1)
	var wg sync.WaitGroup
	for _, user := range []int64{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.orderAndPay(ctx, user, []map[string]any{{"productDetailId": detail, "quantity": stock}})
		}()
	}
	wg.Wait()
}

func (l *load) orderAndPay(ctx context.Context, user int64, items []map[string]any) {
	status, body, ok := l.retry(ctx, "POST", l.api+"/orders", map[string]any{"userId": user, "items": items}, nil)
	if !ok {
		l.stats.unknown.Add(1)
		return
	}
	if status != http.StatusCreated {
		l.stats.ordersRefused.Add(1)
		if status == http.StatusConflict && len(items) == 1 {
			l.mu.Lock()
			l.soldOut[items[0]["productDetailId"].(int64)] = true
			l.mu.Unlock()
		}
		return
	}
	l.stats.orders.Add(1)
	var order struct {
		OrderID int64 `json:"orderId"`
	}
	if err := json.Unmarshal(body, &order); err != nil {
		l.stats.unknown.Add(1)
		return
	}
	key := uuid.NewString()
	status, _, ok = l.retry(ctx, "POST", fmt.Sprintf("%s/orders/%d/payment", l.api, order.OrderID),
		map[string]any{"userId": user}, map[string]string{"Idempotency-Key": key})
	switch {
	case !ok:
		l.stats.unknown.Add(1)
	case status == http.StatusCreated:
		l.stats.payments.Add(1)
	default:
		l.stats.paymentsRefused.Add(1)
	}
}

// retry repeats a request through connection errors, 5xx (the API or
// Postgres restarting) and 429 (the API's rate limit, which the load stays
// far below: about 15 requests/s against 50/s with bursts of 100) for up to
// two minutes. ok is false when no definite answer came.
func (l *load) retry(ctx context.Context, method, url string, body any, headers map[string]string) (int, []byte, bool) {
	deadline := time.Now().Add(2 * time.Minute)
	wait := 100 * time.Millisecond
	for {
		status, resp, err := call(ctx, l.client, method, url, body, headers)
		if err == nil && status < 500 && status != http.StatusTooManyRequests {
			return status, resp, true
		}
		if time.Now().After(deadline) {
			return 0, nil, false
		}
		l.stats.retries.Add(1)
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

func call(ctx context.Context, client *http.Client, method, url string, body any, headers map[string]string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
