package shop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

// Each way a payment can be refused names its reason and leaves nothing:
// no debit, no payment, no outbox row, no idempotency key, the order as it
// was. A refused request's key is free for the next request.
func TestPayRefusedLeavesNothing(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	apiDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	svc := shop.New(apiDB)
	ctx := context.Background()
	detail := pgtest.NewProductDetail(t, db, 300, 1000)

	type state struct {
		status                          string
		balance, payments, events, keys int64
	}
	read := func(t *testing.T, user, order int64) state {
		t.Helper()
		var s state
		if err := db.QueryRow(`
			SELECT COALESCE((SELECT status FROM orders WHERE id = $2), ''), (SELECT balance FROM users WHERE id = $1),
			       (SELECT count(*) FROM payments WHERE order_id = $2),
			       (SELECT count(*) FROM outbox WHERE payload ->> 'orderId' = $2::text),
			       (SELECT count(*) FROM idempotency_keys WHERE user_id = $1)`, user, order).
			Scan(&s.status, &s.balance, &s.payments, &s.events, &s.keys); err != nil {
			t.Fatal(err)
		}
		return s
	}
	newOrder := func(t *testing.T, user int64) int64 {
		t.Helper()
		o, err := svc.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: detail, Quantity: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return o.OrderID
	}

	for _, key := range []string{"", "the-key"} {
		for _, tc := range []struct {
			name    string
			balance int64
			// setup returns the order the user pays, and may change it.
			setup   func(t *testing.T, user int64) int64
			wantErr error
		}{
			{"no such order", 1000, func(t *testing.T, user int64) int64 { return 1 << 40 }, shop.ErrNotFound},
			{"another user's order", 1000, func(t *testing.T, user int64) int64 {
				return newOrder(t, pgtest.NewUser(t, db, 1000))
			}, shop.ErrNotFound},
			{"already paid", 1000, func(t *testing.T, user int64) int64 {
				o := newOrder(t, user)
				if _, _, err := svc.Pay(ctx, shop.PayRequest{OrderID: o, UserID: user}); err != nil {
					t.Fatal(err)
				}
				return o
			}, shop.ErrOrderNotPayable},
			{"cancelled", 1000, func(t *testing.T, user int64) int64 {
				o := newOrder(t, user)
				if _, err := db.Exec(`UPDATE orders SET status = 'CANCELLED' WHERE id = $1`, o); err != nil {
					t.Fatal(err)
				}
				return o
			}, shop.ErrOrderNotPayable},
			{"balance short by 1", 299, func(t *testing.T, user int64) int64 { return newOrder(t, user) }, shop.ErrInsufficientBalance},
		} {
			t.Run(fmt.Sprintf("%s, key %q", tc.name, key), func(t *testing.T) {
				user := pgtest.NewUser(t, db, tc.balance)
				order := tc.setup(t, user)
				before := read(t, user, order)
				_, _, err := svc.Pay(ctx, shop.PayRequest{OrderID: order, UserID: user, IdempotencyKey: key})
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Pay: %v, want %v", err, tc.wantErr)
				}
				if after := read(t, user, order); after != before {
					t.Fatalf("after the refusal %+v, before %+v", after, before)
				}
				if key == "" || tc.wantErr == shop.ErrNotFound {
					return
				}
				// The refused request stored no key: once the cause is
				// gone, the same key pays.
				if _, err := db.Exec(`UPDATE users SET balance = 1000 WHERE id = $1`, user); err != nil {
					t.Fatal(err)
				}
				order = newOrder(t, user)
				p, replayed, err := svc.Pay(ctx, shop.PayRequest{OrderID: order, UserID: user, IdempotencyKey: key})
				if err != nil || replayed || p.OrderID != order || p.Amount != 300 || p.BalanceAfter != 700 {
					t.Fatalf("paying with the key afterwards: %+v, replayed %v, %v", p, replayed, err)
				}
			})
		}
	}
}

// A payment returns what it did, and its outbox rows carry the order's
// lines; with a key, a retry returns the same payment and charges nothing.
func TestPayResultAndReplay(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	apiDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	svc := shop.New(apiDB)
	ctx := context.Background()
	d1, d2 := pgtest.NewProductDetail(t, db, 100, 1000), pgtest.NewProductDetail(t, db, 250, 1000)
	user := pgtest.NewUser(t, db, 1000)
	o, err := svc.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: d2, Quantity: 1}, {ProductDetailID: d1, Quantity: 3}})
	if err != nil {
		t.Fatal(err)
	}
	req := shop.PayRequest{OrderID: o.OrderID, UserID: user, IdempotencyKey: "k"}
	p, replayed, err := svc.Pay(ctx, req)
	if err != nil || replayed {
		t.Fatalf("Pay: replayed %v, %v", replayed, err)
	}
	if p.OrderID != o.OrderID || p.UserID != user || p.Amount != 550 || p.BalanceAfter != 450 || p.Status != shop.PaymentPaid || p.PaymentID == 0 || p.PaidAt.IsZero() {
		t.Fatalf("payment %+v", p)
	}
	var items string
	if err := db.QueryRow(`SELECT payload -> 'items' FROM outbox WHERE type = 'OrderPaid' AND payload ->> 'orderId' = $1::text`, o.OrderID).Scan(&items); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`[{"quantity": 3, "productDetailId": %d}, {"quantity": 1, "productDetailId": %d}]`, d1, d2)
	if d1 > d2 {
		want = fmt.Sprintf(`[{"quantity": 1, "productDetailId": %d}, {"quantity": 3, "productDetailId": %d}]`, d2, d1)
	}
	if items != want {
		t.Fatalf("OrderPaid items %s, want %s", items, want)
	}
	again, replayed, err := svc.Pay(ctx, req)
	if err == nil && again.PaidAt.Equal(p.PaidAt) {
		again.PaidAt = p.PaidAt // the same instant, perhaps another *time.Location
	}
	if err != nil || !replayed || again != p {
		t.Fatalf("retry: %+v, replayed %v, %v; want %+v replayed", again, replayed, err, p)
	}
	var balance int64
	if err := db.QueryRow(`SELECT balance FROM users WHERE id = $1`, user).Scan(&balance); err != nil || balance != 450 {
		t.Fatalf("balance %d after the retry (%v), want 450", balance, err)
	}
}
