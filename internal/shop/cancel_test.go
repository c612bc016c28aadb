package shop_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

// cancelOnDone is a context that cancels itself on the n-th call of Done:
// every statement of a transaction asks for Done, so n picks the point in
// the transaction at which the client gives up.
type cancelOnDone struct {
	context.Context
	left   atomic.Int64
	cancel context.CancelFunc
}

func newCancelOnDone(n int64) *cancelOnDone {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cancelOnDone{Context: ctx, cancel: cancel}
	c.left.Store(n)
	return c
}

func (c *cancelOnDone) Done() <-chan struct{} {
	if c.left.Add(-1) == 0 {
		c.cancel()
	}
	return c.Context.Done()
}

// A payment whose client gives up at any point either happens whole (it
// committed first) or not at all, and its error says "cancelled"
// (context.Canceled), never an unexplained fault such as "commit: sql:
// transaction has already been committed or rolled back".
func TestPayCancelledAtEachPoint(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	apiDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	svc := shop.New(apiDB)
	detail := pgtest.NewProductDetail(t, db, 100, 1_000_000)

	whole := false
	for n := int64(1); !whole; n++ {
		if n > 500 {
			t.Fatal("Pay was still cancelled after 500 calls of Done")
		}
		user := pgtest.NewUser(t, db, 1000)
		o, err := svc.PlaceOrder(context.Background(), user, []shop.OrderLine{{ProductDetailID: detail, Quantity: 1}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := newCancelOnDone(n)
		_, _, err = svc.Pay(ctx, shop.PayRequest{OrderID: o.OrderID, UserID: user, IdempotencyKey: "k" + strconv.FormatInt(n, 10)})
		fired := ctx.Err() != nil
		ctx.cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at Done call %d: %v; want nil or context.Canceled", n, err)
		}

		var status string
		var balance, payments, events, keys int
		if err := db.QueryRow(`
			SELECT o.status, u.balance,
			       (SELECT count(*) FROM payments WHERE order_id = o.id),
			       (SELECT count(*) FROM outbox WHERE type IN ('PaymentCompleted', 'OrderPaid')
			                                     AND payload->>'orderId' = o.id::text),
			       (SELECT count(*) FROM idempotency_keys WHERE user_id = u.id)
			FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1`, o.OrderID).
			Scan(&status, &balance, &payments, &events, &keys); err != nil {
			t.Fatal(err)
		}
		paid := [5]any{shop.OrderPaid, 900, 1, 2, 1}
		unpaid := [5]any{shop.OrderOrdered, 1000, 0, 0, 0}
		got := [5]any{status, balance, payments, events, keys}
		switch {
		case err == nil && got != paid:
			t.Fatalf("Done call %d: Pay succeeded but (status, balance, payments, events, keys) = %v, want %v", n, got, paid)
		case err != nil && got != unpaid:
			t.Fatalf("Done call %d: Pay failed (%v) but (status, balance, payments, events, keys) = %v, want %v", n, err, got, unpaid)
		}
		whole = err == nil && !fired
	}
}
