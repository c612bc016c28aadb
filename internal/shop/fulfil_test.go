package shop_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// An OrderPaid whose outbox row the handler cannot see (yet) changes
// nothing: no stock taken, and no inbox claim, so the retry applies it.
// `make chaos` found the claim committed without the row's completion.
func TestFulfilWithoutVisibleRowChangesNothing(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	if _, err := shop.New(db).SeedDemo(ctx); err != nil {
		t.Fatal(err)
	}
	var detail int64
	var before int
	if err := db.QueryRow(`SELECT id, stock FROM product_details ORDER BY id LIMIT 1`).Scan(&detail, &before); err != nil {
		t.Fatal(err)
	}
	// The stock consumer's role fulfils.
	workerDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	svc := shop.New(workerDB)
	id := uuid.New()
	accepted := false
	_, err := svc.FulfilPaidOrder(ctx, id, event.GroupStock, func(event.Message) (event.OrderPaid, error) {
		accepted = true
		return event.OrderPaid{OrderID: 1, UserID: 1, Items: []event.Item{{ProductDetailID: detail, Quantity: 1}}}, nil
	})
	if !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("fulfil: %v, want ErrNotFound", err)
	}
	var after, claims int
	if err := db.QueryRow(`SELECT stock FROM product_details WHERE id = $1`, detail).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM processed_events WHERE event_id = $1`, id).Scan(&claims); err != nil {
		t.Fatal(err)
	}
	if after != before || claims != 0 || accepted {
		t.Fatalf("stock %d -> %d, %d inbox claims, accept called %v; want nothing changed", before, after, claims, accepted)
	}
}
