package shop_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

// The balance cap limits charges only: a user charged up to the cap whose
// paid order is refunded (its stock ran out) gets the money back above the
// cap, and a charge past the cap is still refused. The schema says so.
func TestRefundLandsAboveTheCap(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	apiDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	workerDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	api := shop.New(apiDB)

	const price = 5_000
	user, detail := pgtest.NewUser(t, db, price), pgtest.NewProductDetail(t, db, price, 1)
	o, err := api.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: detail, Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.Pay(ctx, shop.PayRequest{OrderID: o.OrderID, UserID: user, IdempotencyKey: "refund-above-cap"}); err != nil {
		t.Fatal(err)
	}
	// The user's balance reaches the cap, then the stock runs out before fulfilment.
	if _, err := db.Exec(`UPDATE users SET balance = $2 WHERE id = $1`, user, int64(shop.MaxBalance)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE product_details SET stock = 0 WHERE id = $1`, detail); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Charge(ctx, user, 1); !errors.Is(err, shop.ErrBalanceLimit) {
		t.Fatalf("charge past the cap: %v, want ErrBalanceLimit", err)
	}

	var id uuid.UUID
	if err := db.QueryRow(`SELECT id FROM outbox WHERE type = 'OrderPaid' AND payload ->> 'orderId' = $1::text`, o.OrderID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if refunded := fulfil(t, workerDB, id); !refunded {
		t.Fatal("fulfilment took the stock, want a refund")
	}
	b, err := api.Balance(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(shop.MaxBalance) + price; b.Balance != want {
		t.Fatalf("balance after the refund %d, want %d (the cap plus the refund)", b.Balance, want)
	}
	if _, err := api.Charge(ctx, user, 1); !errors.Is(err, shop.ErrBalanceLimit) {
		t.Fatalf("charge above the cap: %v, want ErrBalanceLimit", err)
	}

	var comment string
	if err := db.QueryRow(`SELECT col_description('users'::regclass, attnum) FROM pg_attribute
		WHERE attrelid = 'users'::regclass AND attname = 'balance'`).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(comment, "limits charges only") || !strings.Contains(comment, "refund always lands") {
		t.Fatalf("users.balance comment %q does not say the cap limits charges only", comment)
	}
}
