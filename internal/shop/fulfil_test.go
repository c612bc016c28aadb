package shop_test

import (
	"context"
	"database/sql"
	"encoding/json"
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

// fulfil applies the OrderPaid event eventID in a transaction of its own,
// as the stock group does, and reports whether the order was refunded.
func fulfil(t *testing.T, db *sql.DB, eventID uuid.UUID) (refunded bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	row, err := outbox.Load(ctx, tx, eventID)
	if err != nil {
		t.Fatal(err)
	}
	var e event.OrderPaid
	if err := json.Unmarshal(row.Payload, &e); err != nil {
		t.Fatal(err)
	}
	if refunded, err = shop.FulfilPaidOrder(ctx, tx, e); err != nil {
		t.Fatalf("fulfil: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return refunded
}

// FulfilPaidOrder takes the stock of every item, or, when one is short,
// none of it and refunds the order, once.
func TestFulfilPaidOrder(t *testing.T) {
	type state struct {
		Stock          [2]int
		Order, Payment string
		Balance        int64
		Refunds        int
	}
	for _, tc := range []struct {
		name     string
		qty      [2]int // ordered of each of two details with stock 5 each, price 100
		before   func(db *sql.DB, details [2]int64) error
		times    int // fulfilments of the same event
		refunded bool
		want     state
	}{
		{name: "in stock", qty: [2]int{2, 5}, times: 1,
			want: state{Stock: [2]int{3, 0}, Order: shop.OrderPaid, Payment: shop.PaymentPaid, Balance: 1000 - 700}},
		{name: "one item short: nothing taken, refunded", qty: [2]int{2, 3}, times: 1, refunded: true,
			before: func(db *sql.DB, d [2]int64) error {
				_, err := db.Exec(`UPDATE product_details SET stock = 2 WHERE id = $1`, d[1])
				return err
			},
			want: state{Stock: [2]int{5, 2}, Order: shop.OrderCancelled, Payment: shop.PaymentRefunded, Balance: 1000, Refunds: 1}},
		{name: "none left: refunded", qty: [2]int{1, 1}, times: 1, refunded: true,
			before: func(db *sql.DB, d [2]int64) error {
				_, err := db.Exec(`UPDATE product_details SET stock = 0 WHERE id = $1`, d[0])
				return err
			},
			want: state{Stock: [2]int{0, 5}, Order: shop.OrderCancelled, Payment: shop.PaymentRefunded, Balance: 1000, Refunds: 1}},
		{name: "refunded at most once", qty: [2]int{2, 1}, times: 2, refunded: true,
			before: func(db *sql.DB, d [2]int64) error {
				_, err := db.Exec(`UPDATE product_details SET stock = 1 WHERE id = $1`, d[0])
				return err
			},
			want: state{Stock: [2]int{1, 5}, Order: shop.OrderCancelled, Payment: shop.PaymentRefunded, Balance: 1000, Refunds: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, dbURL := pgtest.NewDB(t)
			ctx := context.Background()
			svc := shop.New(db)
			var user int64
			if err := db.QueryRow(`INSERT INTO users (name, balance) VALUES ('u', 1000) RETURNING id`).Scan(&user); err != nil {
				t.Fatal(err)
			}
			var details [2]int64
			lines := make([]shop.OrderLine, 2)
			for i := range details {
				if err := db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
					INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', 100, 5 FROM p RETURNING id`).
					Scan(&details[i]); err != nil {
					t.Fatal(err)
				}
				lines[i] = shop.OrderLine{ProductDetailID: details[i], Quantity: tc.qty[i]}
			}
			o, err := svc.PlaceOrder(ctx, user, lines)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := svc.Pay(ctx, shop.PayRequest{OrderID: o.OrderID, UserID: user}); err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				if err := tc.before(db, details); err != nil {
					t.Fatal(err)
				}
			}
			var id uuid.UUID
			if err := db.QueryRow(`SELECT id FROM outbox WHERE type = $1`, event.TypeOrderPaid).Scan(&id); err != nil {
				t.Fatal(err)
			}
			worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker) // the stock group's role fulfils
			for range tc.times {
				if refunded := fulfil(t, worker, id); refunded != tc.refunded {
					t.Fatalf("refunded %v, want %v", refunded, tc.refunded)
				}
			}
			var got state
			err = db.QueryRow(`SELECT
					(SELECT stock FROM product_details WHERE id = $1), (SELECT stock FROM product_details WHERE id = $2),
					(SELECT status FROM orders WHERE id = $3), (SELECT status FROM payments WHERE order_id = $3),
					(SELECT balance FROM users WHERE id = $4),
					(SELECT count(*) FROM outbox WHERE type = $5)`, details[0], details[1], o.OrderID, user, event.TypePaymentRefunded).
				Scan(&got.Stock[0], &got.Stock[1], &got.Order, &got.Payment, &got.Balance, &got.Refunds)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("after %d fulfilments: %+v, want %+v", tc.times, got, tc.want)
			}
		})
	}
}

// FulfilPaidOrders decides a batch's orders one after the other against
// the stock the earlier ones took: a short order in the middle is refunded
// and takes nothing, the orders after it still take what is left, and
// stock never goes negative.
func TestFulfilPaidOrders(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	ctx := context.Background()
	svc := shop.New(db)
	var details [2]int64 // A and B, stock 5 each
	for i := range details {
		if err := db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
			INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', 100, 5 FROM p RETURNING id`).
			Scan(&details[i]); err != nil {
			t.Fatal(err)
		}
	}
	type order struct {
		qty      [2]int // of A and B
		refunded bool
	}
	orders := []order{
		{[2]int{3, 0}, false}, // A 5 -> 2
		{[2]int{3, 1}, true},  // A has 2: short, B untouched
		{[2]int{2, 4}, false}, // A 2 -> 0, B 5 -> 1
		{[2]int{0, 1}, false}, // B 1 -> 0
		{[2]int{0, 1}, true},  // B has 0
	}
	es := make([]event.OrderPaid, len(orders))
	ids := make([]int64, len(orders))
	for i, o := range orders {
		var user int64
		if err := db.QueryRow(`INSERT INTO users (name, balance) VALUES ('u', 1000) RETURNING id`).Scan(&user); err != nil {
			t.Fatal(err)
		}
		var lines []shop.OrderLine
		for j, q := range o.qty {
			if q > 0 {
				lines = append(lines, shop.OrderLine{ProductDetailID: details[j], Quantity: q})
			}
		}
		placed, err := svc.PlaceOrder(ctx, user, lines)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Pay(ctx, shop.PayRequest{OrderID: placed.OrderID, UserID: user}); err != nil {
			t.Fatal(err)
		}
		var payload []byte
		if err := db.QueryRow(`SELECT payload FROM outbox WHERE type = $1 AND payload ->> 'orderId' = $2::text`,
			event.TypeOrderPaid, placed.OrderID).Scan(&payload); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(payload, &es[i]); err != nil {
			t.Fatal(err)
		}
		ids[i] = placed.OrderID
	}
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	tx, err := worker.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	refunded, err := shop.FulfilPaidOrders(ctx, tx, es)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for i, o := range orders {
		if refunded[i] != o.refunded {
			t.Errorf("order %d: refunded %v, want %v", i, refunded[i], o.refunded)
		}
		var status, payment string
		var refunds int
		if err := db.QueryRow(`SELECT (SELECT status FROM orders WHERE id = $1), (SELECT status FROM payments WHERE order_id = $1),
				(SELECT count(*) FROM outbox WHERE type = $2 AND payload ->> 'orderId' = $1::text)`, ids[i], event.TypePaymentRefunded).
			Scan(&status, &payment, &refunds); err != nil {
			t.Fatal(err)
		}
		want := [3]any{shop.OrderPaid, shop.PaymentPaid, 0}
		if o.refunded {
			want = [3]any{shop.OrderCancelled, shop.PaymentRefunded, 1}
		}
		if got := [3]any{status, payment, refunds}; got != want {
			t.Errorf("order %d: %v, want %v", i, got, want)
		}
	}
	var a, b int
	if err := db.QueryRow(`SELECT (SELECT stock FROM product_details WHERE id = $1), (SELECT stock FROM product_details WHERE id = $2)`,
		details[0], details[1]).Scan(&a, &b); err != nil || a != 0 || b != 0 {
		t.Fatalf("stock A %d, B %d (%v); want 0, 0", a, b, err)
	}
}
