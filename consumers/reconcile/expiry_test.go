package reconcile_test

import (
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
)

// TestExpiry: the reconciler (as outboxpay_worker) marks ORDERED orders
// older than OrderExpiry as EXPIRED, in batches, and nothing else: newer or
// other orders, balances and stock stay as they were.
func TestExpiry(t *testing.T) {
	r := newRig(t)
	user, detail := pgtest.NewUser(t, r.db, 7000), pgtest.NewProductDetail(t, r.db, 100, 5)
	insert := func(n int, status, age string) {
		t.Helper()
		if _, err := r.db.Exec(`
			WITH o AS (
				INSERT INTO orders (user_id, status, total_price, created_at, updated_at)
				SELECT $1, $2, 100, now() - $3::interval, now() - $3::interval FROM generate_series(1, $4)
				RETURNING id)
			INSERT INTO order_items (order_id, product_detail_id, quantity, unit_price) SELECT id, $5, 1, 100 FROM o`,
			user, status, age, n, detail); err != nil {
			t.Fatal(err)
		}
	}
	insert(2500, "ORDERED", "31 minutes")
	insert(4, "ORDERED", "29 minutes")
	insert(3, "PAID", "2 hours")
	insert(2, "CANCELLED", "2 hours")
	rc, reg := r.reconciler(reconcile.Config{OrderExpiry: 30 * time.Minute, ExpireBatch: 1000}, nil)

	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expired != 2500 || rep.ExpireBatches != 3 {
		t.Fatalf("expired %d orders in %d batches, want 2500 in 3", rep.Expired, rep.ExpireBatches)
	}
	counts := map[string]int{}
	rows, err := r.db.Query(`SELECT status, count(*) FROM orders GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		counts[s] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"EXPIRED": 2500, "ORDERED": 4, "PAID": 3, "CANCELLED": 2}
	for s, n := range want {
		if counts[s] != n {
			t.Errorf("%d %s orders, want %d (all: %v)", counts[s], s, n, counts)
		}
	}
	var recent int
	if err := r.db.QueryRow(`SELECT count(*) FROM orders WHERE status = 'EXPIRED' AND updated_at > now() - interval '1 minute'`).
		Scan(&recent); err != nil || recent != 2500 {
		t.Errorf("%d EXPIRED orders with a fresh updated_at (err %v), want 2500", recent, err)
	}
	var balance, stock int64
	if err := r.db.QueryRow(`SELECT (SELECT balance FROM users WHERE id = $1), (SELECT stock FROM product_details WHERE id = $2)`,
		user, detail).Scan(&balance, &stock); err != nil {
		t.Fatal(err)
	}
	if balance != 7000 || stock != 5 {
		t.Errorf("balance %d and stock %d after expiry, want 7000 and 5", balance, stock)
	}
	if v := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", reconcile.ActionExpireOrder); v != 2500 {
		t.Errorf("expire_order actions %v, want 2500", v)
	}
	if rep, err = rc.RunOnce(t.Context()); err != nil || rep.Expired != 0 {
		t.Errorf("second cycle expired %d orders (err %v), want 0", rep.Expired, err)
	}
}
