package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Field names match exactly, a repeated field is refused at any depth, and a
// path id is only a canonical positive decimal: each such request is a 400
// problem naming the field or parameter, and changes nothing.
func TestStrictInputChangesNothing(t *testing.T) {
	s := newServer(t)
	alice := s.newUser(1000)
	cheap := s.newDetail(100, 5)
	open := s.newOrder(alice, item(cheap, 1)).OrderID
	product := s.count(`SELECT product_id FROM product_details WHERE id = $1`, cheap)

	charge := fmt.Sprintf("/users/%d/balance/charge", alice)
	pay := fmt.Sprintf("/orders/%d/payment", open)
	line := fmt.Sprintf(`{"productDetailId": %d, "quantity": 1}`, cheap)

	cases := []struct {
		name   string
		method string
		path   string
		body   string
		detail string // a part of the problem's detail
	}{
		{"charge: upper-case field", "POST", charge, `{"AMOUNT": 7}`, `unknown field "AMOUNT"`},
		{"charge: capitalised field", "POST", charge, `{"Amount": 7}`, `did you mean "amount"`},
		{"charge: duplicate field", "POST", charge, `{"amount": -5, "amount": 3}`, `duplicate field "amount"`},
		{"charge: duplicate of a valid value", "POST", charge, `{"amount": 3, "amount": 3}`, `duplicate field "amount"`},
		{"charge: duplicate unknown field", "POST", charge, `{"amount": 3, "x": 1, "x": 2}`, `unknown field "x"`},
		{"order: case of userId", "POST", "/orders", fmt.Sprintf(`{"userid": %d, "items": [%s]}`, alice, line), `unknown field "userid"`},
		{"order: case of items", "POST", "/orders", fmt.Sprintf(`{"userId": %d, "Items": [%s]}`, alice, line), `unknown field "Items"`},
		{"order: case of an item field", "POST", "/orders",
			fmt.Sprintf(`{"userId": %d, "items": [%s, {"productDetailID": %d, "quantity": 1}]}`, alice, line, cheap),
			`unknown field "items[1].productDetailID"`},
		{"order: duplicate userId", "POST", "/orders", fmt.Sprintf(`{"userId": 99999, "userId": %d, "items": [%s]}`, alice, line), `duplicate field "userId"`},
		{"order: duplicate items", "POST", "/orders", fmt.Sprintf(`{"userId": %d, "items": [], "items": [%s]}`, alice, line), `duplicate field "items"`},
		{"order: duplicate item field", "POST", "/orders",
			fmt.Sprintf(`{"userId": %d, "items": [{"productDetailId": %d, "quantity": 9, "quantity": 1}]}`, alice, cheap),
			`duplicate field "items[0].quantity"`},
		{"pay: case of userId", "POST", pay, fmt.Sprintf(`{"USERID": %d}`, alice), `unknown field "USERID"`},
		{"pay: duplicate userId", "POST", pay, fmt.Sprintf(`{"userId": %d, "userId": %d}`, alice, alice), `duplicate field "userId"`},

		{"balance: plus sign", "GET", "/users/+1/balance", ``, "userId must be a positive integer"},
		{"balance: leading zeros", "GET", fmt.Sprintf("/users/000%d/balance", alice), ``, "userId must be a positive integer"},
		{"balance: exponent", "GET", "/users/1e3/balance", ``, "userId must be a positive integer"},
		{"balance: leading space", "GET", fmt.Sprintf("/users/%%20%d/balance", alice), ``, "userId must be a positive integer"},
		{"balance: trailing space", "GET", fmt.Sprintf("/users/%d%%20/balance", alice), ``, "userId must be a positive integer"},
		{"balance: zero", "GET", "/users/0/balance", ``, "userId must be a positive integer"},
		{"balance: zeros", "GET", "/users/00/balance", ``, "userId must be a positive integer"},
		{"balance: negative", "GET", "/users/-1/balance", ``, "userId must be a positive integer"},
		{"balance: minus zero", "GET", "/users/-0/balance", ``, "userId must be a positive integer"},
		{"balance: overflow", "GET", "/users/9223372036854775808/balance", ``, "userId must be a positive integer"},
		{"balance: hex", "GET", "/users/0x1/balance", ``, "userId must be a positive integer"},
		{"balance: underscore", "GET", "/users/1_0/balance", ``, "userId must be a positive integer"},
		{"balance: fraction", "GET", "/users/1.0/balance", ``, "userId must be a positive integer"},
		{"charge: plus sign", "POST", fmt.Sprintf("/users/+%d/balance/charge", alice), `{"amount": 1}`, "userId must be a positive integer"},
		{"charge: leading zero", "POST", fmt.Sprintf("/users/0%d/balance/charge", alice), `{"amount": 1}`, "userId must be a positive integer"},
		{"product: leading zero", "GET", fmt.Sprintf("/products/0%d", product), ``, "productId must be a positive integer"},
		{"order: plus sign", "GET", fmt.Sprintf("/orders/+%d", open), ``, "orderId must be a positive integer"},
		{"pay: leading zero", "POST", fmt.Sprintf("/orders/0%d/payment", open), fmt.Sprintf(`{"userId": %d}`, alice), "orderId must be a positive integer"},
		{"pay: exponent", "POST", "/orders/1e0/payment", fmt.Sprintf(`{"userId": %d}`, alice), "orderId must be a positive integer"},
	}
	before := s.snapshot()
	me := s.as(alice)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := me.do(c.method, c.path, c.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if p := r.problem(t); !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, c.detail)
			}
			if after := s.snapshot(); after != before {
				t.Fatalf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// The exact, canonical forms the strict checks sit beside still work.
func TestStrictInputValidForms(t *testing.T) {
	s := newServer(t)
	alice := s.newUser(1000)
	cheap := s.newDetail(100, 5)
	product := s.count(`SELECT product_id FROM product_details WHERE id = $1`, cheap)
	other := s.newDetail(50, 5)
	s = s.as(alice)

	s.mustDo(http.StatusOK, "GET", fmt.Sprintf("/users/%d/balance", alice), nil)
	s.mustDo(http.StatusOK, "POST", fmt.Sprintf("/users/%d/balance/charge", alice), `{"amount": 7}`)
	s.mustDo(http.StatusOK, "GET", fmt.Sprintf("/products/%d", product), nil)
	// The same field name in sibling objects is not a duplicate.
	r := s.mustDo(http.StatusCreated, "POST", "/orders", fmt.Sprintf(
		`{"userId": %d, "items": [{"productDetailId": %d, "quantity": 1}, {"quantity": 2, "productDetailId": %d}]}`, alice, cheap, other))
	var o struct {
		OrderID    int64 `json:"orderId"`
		TotalPrice int64 `json:"totalPrice"`
	}
	r.decode(t, &o)
	if o.TotalPrice != 200 {
		t.Fatalf("total %d, want 200", o.TotalPrice)
	}
	s.mustDo(http.StatusOK, "GET", fmt.Sprintf("/orders/%d", o.OrderID), nil)
	s.mustDo(http.StatusCreated, "POST", fmt.Sprintf("/orders/%d/payment", o.OrderID), fmt.Sprintf(`{"userId": %d}`, alice))
	if got := s.count(`SELECT balance FROM users WHERE id = $1`, alice); got != 1000+7-200 {
		t.Fatalf("balance %d, want %d", got, 1000+7-200)
	}
	// The largest id is canonical: not found, not refused.
	s.mustDo(http.StatusNotFound, "GET", "/users/9223372036854775807/balance", nil)
}
