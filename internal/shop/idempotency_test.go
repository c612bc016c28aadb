package shop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

// Idempotency keys are scoped to the user, bound to the request's
// fingerprint, and forgotten once retention deletes them. The API pays as
// its role; retention runs as the worker's.
func TestIdempotencyKeyPerUserAndFingerprint(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	apiDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	workerDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	api := shop.New(apiDB)

	detail := pgtest.NewProductDetail(t, db, 100, 100)
	newUser := func() int64 { return pgtest.NewUser(t, db, 1000) }
	newOrder := func(user int64) int64 {
		o, err := api.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: detail, Quantity: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return o.OrderID
	}
	balance := func(user int64) int64 {
		var b int64
		if err := db.QueryRow(`SELECT balance FROM users WHERE id = $1`, user).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	alice, bob := newUser(), newUser()
	a1, a2, b1 := newOrder(alice), newOrder(alice), newOrder(bob)

	first, replayed, err := api.Pay(ctx, shop.PayRequest{OrderID: a1, UserID: alice, IdempotencyKey: "k", Fingerprint: "f1"})
	if err != nil || replayed {
		t.Fatalf("first payment: replayed=%v, %v", replayed, err)
	}
	for _, tc := range []struct {
		name     string
		req      shop.PayRequest
		wantErr  error
		replayed bool
	}{
		{"same user, same request: replayed", shop.PayRequest{OrderID: a1, UserID: alice, IdempotencyKey: "k", Fingerprint: "f1"}, nil, true},
		{"same user, another fingerprint", shop.PayRequest{OrderID: a1, UserID: alice, IdempotencyKey: "k", Fingerprint: "f2"}, shop.ErrIdempotencyKeyReuse, false},
		{"same user, another order", shop.PayRequest{OrderID: a2, UserID: alice, IdempotencyKey: "k", Fingerprint: "f2"}, shop.ErrIdempotencyKeyReuse, false},
		{"another user, same key and fingerprint: fresh", shop.PayRequest{OrderID: b1, UserID: bob, IdempotencyKey: "k", Fingerprint: "f1"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := balance(tc.req.UserID)
			p, replayed, err := api.Pay(ctx, tc.req)
			if !errors.Is(err, tc.wantErr) || replayed != tc.replayed {
				t.Fatalf("Pay: replayed=%v, %v; want replayed=%v, %v", replayed, err, tc.replayed, tc.wantErr)
			}
			switch {
			case tc.wantErr != nil:
				if b := balance(tc.req.UserID); b != before {
					t.Errorf("balance %d after a refusal, was %d", b, before)
				}
			case tc.replayed:
				if p != first || balance(tc.req.UserID) != before {
					t.Errorf("replay %+v (balance %d, was %d), want %+v and no charge", p, balance(tc.req.UserID), before, first)
				}
			default:
				if p.OrderID != tc.req.OrderID || balance(tc.req.UserID) != before-100 {
					t.Errorf("payment %+v, balance %d (was %d)", p, balance(tc.req.UserID), before)
				}
			}
		})
	}
	var payments int
	if err := db.QueryRow(`SELECT count(*) FROM payments`).Scan(&payments); err != nil || payments != 2 {
		t.Fatalf("%d payments (%v), want 2", payments, err)
	}

	// A key stored before fingerprints (empty) matches on its order.
	if _, err := db.Exec(`INSERT INTO idempotency_keys (key, user_id, order_id, response)
		VALUES ('legacy', $1, $2, jsonb_build_object('paymentId', 42, 'orderId', $2::bigint))`, bob, b1); err != nil {
		t.Fatal(err)
	}
	if p, replayed, err := api.Pay(ctx, shop.PayRequest{OrderID: b1, UserID: bob, IdempotencyKey: "legacy", Fingerprint: "f9"}); err != nil || !replayed || p.PaymentID != 42 {
		t.Errorf("legacy key replay: %+v, replayed=%v, %v", p, replayed, err)
	}
	if _, _, err := api.Pay(ctx, shop.PayRequest{OrderID: b1 + 1000, UserID: bob, IdempotencyKey: "legacy"}); !errors.Is(err, shop.ErrIdempotencyKeyReuse) {
		t.Errorf("legacy key for another order: %v, want ErrIdempotencyKeyReuse", err)
	}

	// Past retention the key is forgotten: only alice's (aged) key goes,
	// and her next request with it is a new one.
	if _, err := db.Exec(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1`, alice); err != nil {
		t.Fatal(err)
	}
	n, err := shop.DeleteExpiredIdempotencyKeys(ctx, workerDB, 24*time.Hour, 10)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d keys (%v), want 1", n, err)
	}
	if _, replayed, err := api.Pay(ctx, shop.PayRequest{OrderID: a2, UserID: alice, IdempotencyKey: "k", Fingerprint: "f2"}); err != nil || replayed {
		t.Fatalf("payment with a forgotten key: replayed=%v, %v; want a new payment", replayed, err)
	}
	var keys int
	if err := db.QueryRow(`SELECT count(*) FROM idempotency_keys WHERE key = 'k'`).Scan(&keys); err != nil || keys != 2 {
		t.Errorf("%d keys 'k' (%v), want alice's new one and bob's", keys, err)
	}
}
