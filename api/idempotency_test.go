package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// Idempotency keys are per user and bound to the request they were first
// used for (Stripe's model). The steps run in order on one database; a
// refused step changes nothing.
func TestIdempotencyKeysPerUserWithFingerprint(t *testing.T) {
	s := newServer(t)
	u5, u6, u7 := s.newUser(1000), s.newUser(1000), s.newUser(1000)
	detail := s.newDetail(100, 10)
	o5a, o5b := s.newOrder(u5, item(detail, 1)).OrderID, s.newOrder(u5, item(detail, 1)).OrderID
	o6 := s.newOrder(u6, item(detail, 1)).OrderID
	pay := func(order int64) string { return fmt.Sprintf("/orders/%d/payment", order) }
	body := func(user int64) string { return fmt.Sprintf(`{"userId": %d}`, user) }
	var firstBody string

	for _, step := range []struct {
		name     string
		path     string
		body     string
		status   int
		replayed bool
		kind     string // the problem type of a refusal
	}{
		{"user 5's first use of the key", pay(o5a), body(u5), 201, false, ""},
		{"user 6 with the same key is a fresh request", pay(o6), body(u6), 201, false, ""},
		{"user 5, same request (other spacing): replayed", pay(o5a), fmt.Sprintf(`{ "userId" :%d }`, u5), 201, true, ""},
		{"user 5, another route (order)", pay(o5b), body(u5), 422, false, "/problems/idempotency-key-reused"},
		{"user 6, user 5's route with the key: another request of user 6's", pay(o5a), body(u6), 422, false, "/problems/idempotency-key-reused"},
		{"user 7 never used the key: fresh, refused on its merits", pay(o5b), body(u7), 403, false, "/problems/not-order-owner"},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.mustDo(step.status, "POST", step.path, step.body, "Idempotency-Key", "shared")
			if got := r.header.Get("Idempotent-Replayed") == "true"; got != step.replayed {
				t.Errorf("Idempotent-Replayed %v, want %v", got, step.replayed)
			}
			switch {
			case step.kind != "":
				p := r.problem(t)
				if p.Type != step.kind {
					t.Errorf("problem type %q, want %q", p.Type, step.kind)
				}
				// Nothing of the first request leaks: not its order, not its response.
				if strings.Contains(p.Detail, fmt.Sprint(o5a)) || strings.Contains(p.Detail, "paymentId") {
					t.Errorf("detail %q reveals the first request", p.Detail)
				}
				if after := s.snapshot(); after != before {
					t.Error("a refused request changed the database")
				}
			case step.replayed:
				if string(r.body) != firstBody {
					t.Errorf("replay %s, want the first response %s", r.body, firstBody)
				}
			default:
				if firstBody == "" {
					firstBody = string(r.body)
				}
			}
		})
	}
	if n := s.count(`SELECT count(*) FROM payments`); n != 2 {
		t.Errorf("%d payments, want 2 (user 5's and user 6's)", n)
	}
	if n := s.count(`SELECT count(*) FROM idempotency_keys WHERE key = 'shared'`); n != 2 {
		t.Errorf("%d keys 'shared', want user 5's and user 6's", n)
	}
	for user, want := range map[int64]int64{u5: 900, u6: 900, u7: 1000} {
		if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != want {
			t.Errorf("user %d balance %d, want %d", user, b, want)
		}
	}
}
