package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/shop"
)

// sameAsMissing fails the test unless got, the answer about someone else's
// resource gotID, is the answer about the missing resource missingID: the
// same status, problem and media type, the same body fields, and a detail
// and instance that differ only by the id.
func sameAsMissing(t *testing.T, got response, gotID int64, missing response, missingID int64) {
	t.Helper()
	if got.status != http.StatusNotFound || missing.status != http.StatusNotFound {
		t.Fatalf("statuses %d and %d, want 404 for both: %s / %s", got.status, missing.status, got.body, missing.body)
	}
	if g, m := got.header.Get("Content-Type"), missing.header.Get("Content-Type"); g != m {
		t.Errorf("Content-Type %q, a missing one's %q", g, m)
	}
	var gf, mf map[string]any
	if err := json.Unmarshal(got.body, &gf); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(missing.body, &mf); err != nil {
		t.Fatal(err)
	}
	if g, m := slices.Sorted(maps.Keys(gf)), slices.Sorted(maps.Keys(mf)); !slices.Equal(g, m) {
		t.Errorf("body fields %v, a missing one's %v", g, m)
	}
	g, m := got.problem(t), missing.problem(t)
	g.Detail = strings.ReplaceAll(g.Detail, fmt.Sprint(gotID), "{id}")
	g.Instance = strings.ReplaceAll(g.Instance, fmt.Sprint(gotID), "{id}")
	m.Detail = strings.ReplaceAll(m.Detail, fmt.Sprint(missingID), "{id}")
	m.Instance = strings.ReplaceAll(m.Instance, fmt.Sprint(missingID), "{id}")
	if g != m {
		t.Errorf("another user's resource answers\n%+v\na missing one\n%+v", g, m)
	}
}

// Another user's balance, charge, order and payment answer exactly as a
// user or order that does not exist, and change nothing.
func TestAnotherUsersResourceIsNotFound(t *testing.T) {
	s := newServer(t)
	alice, bob := s.newUser(1000), s.newUser(1000)
	const nobody, noOrder = 987654, 876543 // ids with no row
	bobs := s.newOrder(bob, item(s.newDetail(100, 5), 1)).OrderID
	asAlice := s.as(alice)

	cases := []struct {
		name         string
		method       string
		path         func(id int64) string
		body         any
		headers      []string
		theirs, none int64
	}{
		{"balance", "GET", func(id int64) string { return fmt.Sprintf("/users/%d/balance", id) }, nil, nil, bob, nobody},
		{"charge", "POST", func(id int64) string { return fmt.Sprintf("/users/%d/balance/charge", id) }, map[string]any{"amount": 5}, nil, bob, nobody},
		{"order", "GET", func(id int64) string { return fmt.Sprintf("/orders/%d", id) }, nil, nil, bobs, noOrder},
		{"payment", "POST", func(id int64) string { return fmt.Sprintf("/orders/%d/payment", id) }, map[string]any{}, nil, bobs, noOrder},
		{"payment with userId", "POST", func(id int64) string { return fmt.Sprintf("/orders/%d/payment", id) }, map[string]any{"userId": alice}, nil, bobs, noOrder},
		{"payment with a key", "POST", func(id int64) string { return fmt.Sprintf("/orders/%d/payment", id) }, map[string]any{}, []string{"Idempotency-Key", "try-bobs"}, bobs, noOrder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, asAlice := s.in(t), asAlice.in(t)
			before := s.snapshot()
			theirs := asAlice.do(c.method, c.path(c.theirs), c.body, c.headers...)
			missing := asAlice.do(c.method, c.path(c.none), c.body, c.headers...)
			sameAsMissing(t, theirs, c.theirs, missing, c.none)
			if after := s.snapshot(); after != before {
				t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// Bob still sees and pays his own order.
	s.as(bob).mustDo(http.StatusOK, "GET", fmt.Sprintf("/orders/%d", bobs), nil)
	s.as(bob).mustDo(http.StatusCreated, "POST", fmt.Sprintf("/orders/%d/payment", bobs), map[string]any{}, "Idempotency-Key", "try-bobs")
}

// A body userId naming another user is a 403 forbidden that changes
// nothing; leaving it out acts for the token's user.
func TestBodyUserID(t *testing.T) {
	s := newServer(t)
	alice, bob := s.newUser(1000), s.newUser(1000)
	detail := s.newDetail(100, 5)
	asAlice := s.as(alice)
	open := s.newOrder(alice, item(detail, 1)).OrderID

	for _, c := range []struct {
		name, path string
		body       map[string]any
	}{
		{"order for bob", "/orders", map[string]any{"userId": bob, "items": []any{item(detail, 1)}}},
		{"order for a user with no row", "/orders", map[string]any{"userId": 999999, "items": []any{item(detail, 1)}}},
		{"payment as bob", fmt.Sprintf("/orders/%d/payment", open), map[string]any{"userId": bob}},
		{"payment as bob of an order with no row", "/orders/999999/payment", map[string]any{"userId": bob}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, asAlice := s.in(t), asAlice.in(t)
			before := s.snapshot()
			r := asAlice.mustDo(http.StatusForbidden, "POST", c.path, c.body, "Idempotency-Key", "k1")
			if p := r.problem(t); p.Type != "/problems/forbidden" || !strings.Contains(p.Detail, `"userId"`) {
				t.Errorf("problem %+v, want /problems/forbidden about userId", p)
			}
			if ch := r.header.Get("WWW-Authenticate"); ch != "" {
				t.Errorf("WWW-Authenticate %q on a forbidden userId", ch)
			}
			if after := s.snapshot(); after != before {
				t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// Without userId: alice's order, paid by alice.
	var o shop.Order
	asAlice.mustDo(http.StatusCreated, "POST", "/orders", map[string]any{"items": []any{item(detail, 2)}}).decode(t, &o)
	if o.UserID != alice || o.TotalPrice != 200 {
		t.Fatalf("order %+v, want alice's (%d) for 200", o, alice)
	}
	var p shop.Payment
	asAlice.mustDo(http.StatusCreated, "POST", fmt.Sprintf("/orders/%d/payment", o.OrderID), map[string]any{}).decode(t, &p)
	if p.UserID != alice || p.OrderID != o.OrderID || p.BalanceAfter != 800 {
		t.Fatalf("payment %+v, want alice's of order %d leaving 800", p, o.OrderID)
	}
	if got := s.count(`SELECT balance FROM users WHERE id = $1`, bob); got != 1000 {
		t.Errorf("bob's balance %d, want 1000", got)
	}
	if got := s.count(`SELECT user_id FROM orders WHERE id = $1`, o.OrderID); got != alice {
		t.Errorf("order %d is user %d's, want alice's", o.OrderID, got)
	}
}
