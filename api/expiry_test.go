package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/shop"
)

// TestPayingAnExpiredOrder: an order left unpaid past the expiry becomes
// EXPIRED (shop.ExpireOrders, as the reconciler runs it), the API shows
// it, and paying it is a 409 that changes nothing.
func TestPayingAnExpiredOrder(t *testing.T) {
	s := newServer(t)
	user := s.newUser(50000)
	shirt := s.newDetail(15000, 10)
	o := s.newOrder(user, item(shirt, 2))
	s.exec(`UPDATE orders SET created_at = now() - interval '31 minutes' WHERE id = $1`, o.OrderID)

	n, err := shop.ExpireOrders(t.Context(), s.db, 30*time.Minute, 100)
	if err != nil || n != 1 {
		t.Fatalf("expired %d orders (err %v), want 1", n, err)
	}
	s = s.as(user)
	var v shop.OrderView
	s.mustDo(http.StatusOK, "GET", fmt.Sprintf("/orders/%d", o.OrderID), nil).decode(t, &v)
	if v.Status != shop.OrderExpired {
		t.Fatalf("order is %s, want %s", v.Status, shop.OrderExpired)
	}

	before := s.snapshot()
	for _, key := range []string{"", "expired-1"} {
		r := s.mustDo(http.StatusConflict, "POST", fmt.Sprintf("/orders/%d/payment", o.OrderID),
			map[string]any{"userId": user}, "Idempotency-Key", key)
		if p := r.problem(t); p.Type != "/problems/order-not-payable" {
			t.Errorf("problem type %q, want /problems/order-not-payable", p.Type)
		}
	}
	if after := s.snapshot(); after != before {
		t.Errorf("paying an expired order changed the database:\nbefore %s\nafter  %s", before, after)
	}
	if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != 50000 {
		t.Errorf("balance %d, want 50000", b)
	}
	if st := s.count(`SELECT stock FROM product_details WHERE id = $1`, shirt); st != 10 {
		t.Errorf("stock %d, want 10", st)
	}
}
