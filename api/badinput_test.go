package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Every bad request gets a 4xx problem+json with a clear detail, and leaves
// the database exactly as it was.
func TestBadInputChangesNothing(t *testing.T) {
	s := newServer(t)
	alice, bob := s.newUser(1000), s.newUser(0)
	rich := s.newUser(999_999_999_999) // one charge short of the balance cap
	cheap, dear := s.newDetail(100, 5), s.newDetail(1000, 5)
	paid := s.newOrder(alice, item(cheap, 1)).OrderID
	s.as(alice).mustDo(http.StatusCreated, "POST", fmt.Sprintf("/orders/%d/payment", paid), map[string]any{"userId": alice},
		"Idempotency-Key", "used-key")
	open := s.newOrder(alice, item(cheap, 1)).OrderID
	tooDear := s.newOrder(alice, item(dear, 1)).OrderID
	bobs := s.newOrder(bob, item(cheap, 1)).OrderID

	charge := fmt.Sprintf("/users/%d/balance/charge", alice)
	pay := fmt.Sprintf("/orders/%d/payment", open)
	user := fmt.Sprintf(`{"userId": %d}`, alice)
	order := func(items string) string { return fmt.Sprintf(`{"userId": %d, "items": %s}`, alice, items) }
	big := `{"amount": 1, "pad": "` + strings.Repeat("x", 70<<10) + `"}`

	const ghost = 55555 // a user with a valid token but no row
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		detail  string // a part of the problem's detail
	}{
		{"charge: malformed JSON", "POST", charge, `{"amount": }`, nil, 400, "not valid JSON"},
		{"charge: truncated JSON", "POST", charge, `{"amount": 10`, nil, 400, "ends too early"},
		{"charge: empty body", "POST", charge, ``, nil, 400, "empty"},
		{"charge: unknown field", "POST", charge, `{"amount": 10, "currency": "KRW"}`, nil, 400, `unknown field "currency"`},
		{"charge: string amount", "POST", charge, `{"amount": "10"}`, nil, 400, `"amount" must be an integer`},
		{"charge: fractional amount", "POST", charge, `{"amount": 1.5}`, nil, 400, `"amount" must be an integer`},
		{"charge: huge amount", "POST", charge, `{"amount": 1e30}`, nil, 400, `"amount" must be an integer`},
		{"charge: amount over the limit", "POST", charge, `{"amount": 1000000001}`, nil, 400, "between 1 and 1000000000"},
		{"charge: zero amount", "POST", charge, `{"amount": 0}`, nil, 400, "positive"},
		{"charge: negative amount", "POST", charge, `{"amount": -5}`, nil, 400, "positive"},
		{"charge: missing amount", "POST", charge, `{}`, nil, 400, `"amount" is required`},
		{"charge: null amount", "POST", charge, `{"amount": null}`, nil, 400, `"amount" is required`},
		{"charge: array body", "POST", charge, `[10]`, nil, 400, "must be a JSON object"},
		{"charge: two objects", "POST", charge, `{"amount": 1}{"amount": 2}`, nil, 400, "single JSON object"},
		{"charge: no content type", "POST", charge, `{"amount": 1}`, []string{"Content-Type", ""}, 415, "application/json"},
		{"charge: form content type", "POST", charge, `amount=1`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"charge: body over the limit", "POST", charge, big, nil, 413, "larger"},
		{"charge: unknown user", "POST", "/users/999999/balance/charge", `{"amount": 1}`, nil, 404, "user 999999"},
		{"charge: user id not a number", "POST", "/users/abc/balance/charge", `{"amount": 1}`, nil, 400, "userId must be a positive integer"},
		{"charge: user id zero", "POST", "/users/0/balance/charge", `{"amount": 1}`, nil, 400, "userId must be a positive integer"},
		{"charge: user id overflows", "POST", "/users/99999999999999999999/balance/charge", `{"amount": 1}`, nil, 400, "userId must be a positive integer"},
		{"charge: past the balance cap", "POST", fmt.Sprintf("/users/%d/balance/charge", rich), `{"amount": 2}`, nil, 409, "may not exceed"},
		{"charge: the token's user has no row", "POST", fmt.Sprintf("/users/%d/balance/charge", ghost), `{"amount": 1}`, nil, 404, "user 55555"},
		{"balance: unknown user", "GET", "/users/424242/balance", ``, nil, 404, "user 424242"},
		{"balance: negative user id", "GET", "/users/-1/balance", ``, nil, 400, "positive integer"},

		{"order: no items", "POST", "/orders", order(`[]`), nil, 400, "1 to 50 items"},
		{"order: items missing", "POST", "/orders", fmt.Sprintf(`{"userId": %d}`, alice), nil, 400, `"items" is required`},
		{"order: items not an array", "POST", "/orders", order(`{"productDetailId": 1}`), nil, 400, `"items" must be an array`},
		{"order: too many items", "POST", "/orders", order("[" + strings.TrimSuffix(strings.Repeat(fmt.Sprintf(`{"productDetailId": %d, "quantity": 1},`, cheap), 51), ",") + "]"), nil, 400, "1 to 50 items"},
		{"order: zero quantity", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": 0}]`, cheap)), nil, 400, "quantity"},
		{"order: negative quantity", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": -2}]`, cheap)), nil, 400, "quantity"},
		{"order: quantity over the limit", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": 1001}]`, cheap)), nil, 400, "at most 1000"},
		{"order: huge quantity", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": 1e20}]`, cheap)), nil, 400, "quantity"},
		{"order: missing quantity", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d}]`, cheap)), nil, 400, "quantity"},
		{"order: unknown item field", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": 1, "price": 1}]`, cheap)), nil, 400, `unknown field "items[0].price"`},
		{"order: unknown product detail", "POST", "/orders", order(`[{"productDetailId": 987654, "quantity": 1}]`), nil, 404, "product detail 987654"},
		{"order: product detail listed twice", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": 1}, {"productDetailId": %d, "quantity": 2}]`, cheap, cheap)), nil, 400, "listed twice"},
		{"order: short of stock", "POST", "/orders", order(fmt.Sprintf(`[{"productDetailId": %d, "quantity": 6}]`, cheap)), nil, 409, "in stock"},
		{"order: the token's user has no row", "POST", "/orders", fmt.Sprintf(`{"items": [{"productDetailId": %d, "quantity": 1}]}`, cheap), nil, 404, "user 55555"},
		{"order: another user in the body", "POST", "/orders", fmt.Sprintf(`{"userId": 55555, "items": [{"productDetailId": %d, "quantity": 1}]}`, cheap), nil, 403, `"userId" must be the bearer token's user`},
		{"order: user id a string", "POST", "/orders", fmt.Sprintf(`{"userId": "1", "items": [{"productDetailId": %d, "quantity": 1}]}`, cheap), nil, 400, `"userId" must be an integer`},
		{"order: unknown id", "GET", "/orders/31337", ``, nil, 404, "order 31337"},
		{"order: id not a number", "GET", "/orders/x1", ``, nil, 400, "orderId must be a positive integer"},
		{"product: unknown id", "GET", "/products/4040", ``, nil, 404, "product 4040"},

		{"pay: unknown order", "POST", "/orders/777777/payment", user, nil, 404, "order 777777"},
		{"pay: another user's order", "POST", fmt.Sprintf("/orders/%d/payment", bobs), user, nil, 404, fmt.Sprintf("order %d", bobs)},
		{"pay: another user's order as that user in the body", "POST", fmt.Sprintf("/orders/%d/payment", bobs), fmt.Sprintf(`{"userId": %d}`, bob), nil, 403, `"userId" must be the bearer token's user`},
		{"pay: the token's user has no row", "POST", pay, `{}`, nil, 404, fmt.Sprintf("order %d", open)},
		{"pay: insufficient balance", "POST", fmt.Sprintf("/orders/%d/payment", tooDear), user, nil, 409, "does not cover the order total"},
		{"pay: order already paid", "POST", fmt.Sprintf("/orders/%d/payment", paid), user, nil, 409, "is PAID"},
		{"pay: user id zero", "POST", pay, `{"userId": 0}`, nil, 403, `"userId" must be the bearer token's user`},
		{"pay: user id a string", "POST", pay, fmt.Sprintf(`{"userId": "%d"}`, alice), nil, 400, `"userId" must be an integer`},
		{"pay: idempotency key too long", "POST", pay, user, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},
		{"pay: idempotency key with a space", "POST", pay, user, []string{"Idempotency-Key", "a b"}, 400, "Idempotency-Key"},
		{"pay: idempotency key used for another order", "POST", pay, user, []string{"Idempotency-Key", "used-key"}, 422, "idempotency key"},

		{"no such route", "GET", "/nope", ``, nil, 404, "no resource"},
		{"method not allowed", "DELETE", "/orders", ``, nil, 405, "not allowed"},
	}
	// Who sends each case whose sender is not alice.
	actingUser := map[string]int64{
		"charge: past the balance cap":        rich,
		"charge: the token's user has no row": ghost,
		"order: the token's user has no row":  ghost,
		"pay: the token's user has no row":    ghost,
	}
	names := map[string]bool{}
	for _, c := range cases {
		names[c.name] = true
	}
	for name := range actingUser {
		if !names[name] {
			t.Fatalf("actingUser names no case %q", name)
		}
	}
	before := s.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as, ok := actingUser[c.name]
			if !ok {
				as = alice
			}
			r := s.as(as).do(c.method, c.path, c.body, c.headers...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			p := r.problem(t)
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, c.detail)
			}
			if after := s.snapshot(); after != before {
				t.Fatalf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
