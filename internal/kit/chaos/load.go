package chaos

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// seedData is what the run put in the database before the faults.
type seedData struct {
	users []int64
	// shopper holds each user's bearer token for the load: the scopes
	// orders and payments, for that user only.
	shopper      map[int64]string
	charged      int64           // sum of every charge the API confirmed
	initialStock map[int64]int64 // product detail -> stock
	details      []int64
}

// seed creates users and products directly, then charges every user
// through the API (before any fault, so every charge's outcome is known)
// with a token of that user that may only charge, and gives each user a
// token for the load, valid for ttl.
func seed(ctx context.Context, db *sql.DB, apiURL string, iss *devtoken.Issuer, ttl time.Duration, rng *rand.Rand) (seedData, error) {
	sd := seedData{initialStock: map[int64]int64{}, shopper: map[int64]string{}}
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
		funding, err := iss.Token(id, []string{api.ScopeBalanceCharge}, ttl)
		if err != nil {
			return sd, fmt.Errorf("seed users: %w", err)
		}
		if sd.shopper[id], err = iss.Token(id, []string{api.ScopeOrders, api.ScopePayments}, ttl); err != nil {
			return sd, fmt.Errorf("seed users: %w", err)
		}
		const amount = 10_000_000
		status, body, err := call(ctx, client, "POST", fmt.Sprintf("%s/users/%d/balance/charge", apiURL, id),
			map[string]any{"amount": amount}, bearer(funding))
		if err != nil || status != http.StatusOK {
			return sd, fmt.Errorf("charge user %d: %d %s %v", id, status, body, err)
		}
		sd.users = append(sd.users, id)
		sd.charged += amount
	}
	return sd, nil
}

// bearer is the headers of a request with token.
func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// loadStats counts what the load did. rateLimited counts 429 answers (each
// retried); authRefused 401 and 403 answers, which the load's tokens must
// never get.
type loadStats struct {
	orders, ordersRefused, payments, paymentsRefused, unknown, retries, races atomic.Int64
	rateLimited, authRefused                                                  atomic.Int64
}

// load drives orders and payments at rate per second until ctx ends, each
// request retried through outages until it has a definite answer. Its
// requests go to the API instances in apis in turn (round robin).
type load struct {
	apis    []string
	turn    atomic.Uint64
	seed    seedData
	rate    float64
	client  *http.Client
	stats   loadStats
	mu      sync.Mutex
	rng     *rand.Rand
	soldOut map[int64]bool
}

// api returns the base URL of the API instance the next request goes to.
func (l *load) api() string {
	return l.apis[(l.turn.Add(1)-1)%uint64(len(l.apis))]
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
	l.mu.Lock()
	a, b := l.seed.users[l.rng.IntN(len(l.seed.users))], l.seed.users[l.rng.IntN(len(l.seed.users))]
	l.mu.Unlock()
	status, body, ok := l.retry(ctx, "GET", l.api()+"/products", nil, bearer(l.seed.shopper[a]))
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

// orderAndPay places an order as user and pays it, each with the user's
// token: the order's body names the user too (it must be the token's), the
// payment's does not.
func (l *load) orderAndPay(ctx context.Context, user int64, items []map[string]any) {
	auth := bearer(l.seed.shopper[user])
	status, body, ok := l.retry(ctx, "POST", l.api()+"/orders", map[string]any{"userId": user, "items": items}, auth)
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
	headers := map[string]string{"Idempotency-Key": uuid.NewString()}
	maps.Copy(headers, auth)
	status, _, ok = l.retry(ctx, "POST", fmt.Sprintf("%s/orders/%d/payment", l.api(), order.OrderID),
		map[string]any{}, headers)
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
// Postgres restarting) and 429 (the API's rate limit per token user, which
// the load stays far below: a few requests/s spread over 40 users against
// 50/s with bursts of 100 each; a 429 waits its Retry-After) for up to two
// minutes, or until ctx ends. ok is false when no definite answer came.
func (l *load) retry(ctx context.Context, method, url string, body any, headers map[string]string) (int, []byte, bool) {
	type answer struct {
		status int
		body   []byte
	}
	got, err := backoff.Retry(ctx, func() (answer, error) {
		status, header, resp, err := send(ctx, l.client, method, url, body, headers)
		switch {
		case err != nil:
			return answer{}, err
		case status == http.StatusTooManyRequests:
			l.stats.rateLimited.Add(1)
			if after, ok := retryAfter(header); ok {
				return answer{}, backoff.RetryAfter(int(after / time.Second))
			}
			return answer{}, fmt.Errorf("%s %s: %d", method, url, status)
		case status >= 500:
			return answer{}, fmt.Errorf("%s %s: %d", method, url, status)
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			l.stats.authRefused.Add(1)
		}
		return answer{status, resp}, nil
	},
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 2 * time.Second}),
		backoff.WithMaxElapsedTime(2*time.Minute),
		backoff.WithNotify(func(error, time.Duration) { l.stats.retries.Add(1) }))
	if err != nil {
		return 0, nil, false
	}
	return got.status, got.body, true
}

// retryAfter is a Retry-After header's delay in seconds (RFC 9110), at
// most a minute.
func retryAfter(h http.Header) (time.Duration, bool) {
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0, false
	}
	return min(time.Duration(n)*time.Second, time.Minute), true
}

// call sends a JSON request and returns the answer's status and body.
func call(ctx context.Context, client *http.Client, method, url string, body any, headers map[string]string) (int, []byte, error) {
	status, _, b, err := send(ctx, client, method, url, body, headers)
	return status, b, err
}

// send is call that also returns the answer's headers.
func send(ctx context.Context, client *http.Client, method, url string, body any, headers map[string]string) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}
