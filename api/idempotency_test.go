package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// Idempotency keys are per token user and bound to the request they were
// first used for (Stripe's model). The steps run in order on one database;
// a refused step changes nothing.
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
		as       int64 // the token's user
		path     string
		body     string
		status   int
		replayed bool
		kind     string // the problem type of a refusal
	}{
		{"user 5's first use of the key", u5, pay(o5a), body(u5), 201, false, ""},
		{"user 6 with the same key is a fresh request", u6, pay(o6), body(u6), 201, false, ""},
		{"user 5, same request (other spacing): replayed", u5, pay(o5a), fmt.Sprintf(`{ "userId" :%d }`, u5), 201, true, ""},
		{"user 5, same request without userId: replayed", u5, pay(o5a), `{}`, 201, true, ""},
		{"user 5, another route (order)", u5, pay(o5b), body(u5), 422, false, "/problems/idempotency-key-reused"},
		{"user 5, another route without userId", u5, pay(o5b), `{}`, 422, false, "/problems/idempotency-key-reused"},
		{"user 6, user 5's route with the key: another request of user 6's", u6, pay(o5a), body(u6), 422, false, "/problems/idempotency-key-reused"},
		{"user 7 never used the key: fresh, refused on its merits (not its order)", u7, pay(o5b), body(u7), 404, false, "/problems/not-found"},
		{"user 7 naming user 5 in the body", u7, pay(o5a), body(u5), 403, false, "/problems/forbidden"},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.as(step.as).mustDo(step.status, "POST", step.path, step.body, "Idempotency-Key", "shared")
			if got := r.header.Get("Idempotent-Replayed") == "true"; got != step.replayed {
				t.Errorf("Idempotent-Replayed %v, want %v", got, step.replayed)
			}
			switch {
			case step.kind != "":
				p := r.problem(t)
				if p.Type != step.kind {
					t.Errorf("problem type %q, want %q", p.Type, step.kind)
				}
				// Nothing of the first request leaks: not its response, and
				// not its order unless the request named it.
				if strings.Contains(p.Detail, "paymentId") ||
					step.path != pay(o5a) && strings.Contains(p.Detail, fmt.Sprint(o5a)) {
					t.Errorf("detail %q reveals the first request", p.Detail)
				}
				if after := s.snapshot(); after != before {
					t.Error("a refused request changed the database")
				}
			case step.replayed:
				if string(r.body) != firstBody {
					t.Errorf("replay %s, want the first response %s", r.body, firstBody)
				}
				if after := s.snapshot(); after != before {
					t.Error("a replay changed the database")
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

// The first use of a key without userId and its replay with userId (the
// token's user) are the same request, and the other way round.
func TestIdempotencyReplayWithAndWithoutUserID(t *testing.T) {
	s := newServer(t)
	user := s.newUser(1000)
	detail := s.newDetail(100, 10)
	me := s.as(user)
	for i, c := range []struct{ first, again string }{
		{`{}`, fmt.Sprintf(`{"userId": %d}`, user)},
		{fmt.Sprintf(`{"userId": %d}`, user), `{}`},
	} {
		t.Run(c.first+" then "+c.again, func(t *testing.T) {
			s, me := s.in(t), me.in(t)
			path := fmt.Sprintf("/orders/%d/payment", s.newOrder(user, item(detail, 1)).OrderID)
			key := fmt.Sprintf("key-%d", i)
			first := me.mustDo(201, "POST", path, c.first, "Idempotency-Key", key)
			before := s.snapshot()
			again := me.mustDo(201, "POST", path, c.again, "Idempotency-Key", key)
			if string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay %s (replayed=%q), want the first response %s", again.body,
					again.header.Get("Idempotent-Replayed"), first.body)
			}
			if after := s.snapshot(); after != before {
				t.Error("the replay changed the database")
			}
		})
	}
	if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != 800 {
		t.Errorf("balance %d, want 800 (two payments)", b)
	}
}
