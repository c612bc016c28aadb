package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/shop"
)

func TestChargeOrderPay(t *testing.T) {
	s := newServer(t)
	user := s.newUser(0)
	shirt := s.newDetail(15000, 10)
	mug := s.newDetail(9000, 3)
	me := s.as(user)

	var b shop.Balance
	me.mustDo(http.StatusOK, "POST", fmt.Sprintf("/users/%d/balance/charge", user), map[string]any{"amount": 50000}).decode(t, &b)
	if b != (shop.Balance{UserID: user, Balance: 50000}) {
		t.Fatalf("charge: %+v", b)
	}
	me.mustDo(http.StatusOK, "GET", fmt.Sprintf("/users/%d/balance", user), nil).decode(t, &b)
	if b.Balance != 50000 {
		t.Fatalf("balance: %+v", b)
	}

	o := s.newOrder(user, item(shirt, 2), item(mug, 1))
	if o.Status != shop.OrderOrdered || o.TotalPrice != 2*15000+9000 || len(o.Items) != 2 {
		t.Fatalf("order: %+v", o)
	}

	var p shop.Payment
	me.mustDo(http.StatusCreated, "POST", fmt.Sprintf("/orders/%d/payment", o.OrderID), map[string]any{"userId": user}).decode(t, &p)
	want := shop.Payment{PaymentID: p.PaymentID, OrderID: o.OrderID, UserID: user, Amount: 39000,
		BalanceAfter: 11000, Status: shop.PaymentPaid, PaidAt: p.PaidAt}
	if p != want || p.PaymentID == 0 || p.PaidAt.IsZero() {
		t.Fatalf("payment: %+v, want %+v", p, want)
	}

	var v shop.OrderView
	me.mustDo(http.StatusOK, "GET", fmt.Sprintf("/orders/%d", o.OrderID), nil).decode(t, &v)
	if v.Status != shop.OrderPaid || len(v.Events) != 2 {
		t.Fatalf("order view: %+v", v)
	}
	topics := map[string]string{}
	for _, e := range v.Events {
		if e.Status != "INIT" {
			t.Errorf("event %s is %s, want INIT", e.Type, e.Status)
		}
		topics[e.Type] = e.Topic
	}
	if topics[event.TypePaymentCompleted] != "outbox.event.payment" || topics[event.TypeOrderPaid] != "outbox.event.order" {
		t.Errorf("event topics: %v", topics)
	}

	// The outbox rows carry the payloads of docs/EVENT-CONTRACT.md.
	rows, err := s.db.Query(`SELECT id, aggregatetype, aggregateid, type, payload FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var id, aggType, aggID, typ string
		var payload []byte
		if err := rows.Scan(&id, &aggType, &aggID, &typ, &payload); err != nil {
			t.Fatal(err)
		}
		switch typ {
		case event.TypePaymentCompleted:
			var pc event.PaymentCompleted
			strictDecode(t, payload, &pc)
			wantPC := event.PaymentCompleted{PaymentID: p.PaymentID, OrderID: o.OrderID, UserID: user,
				Amount: 39000, BalanceAfter: 11000, PaidAt: pc.PaidAt}
			if aggType != "payment" || aggID != fmt.Sprint(user) || pc != wantPC || !pc.PaidAt.Equal(p.PaidAt) {
				t.Errorf("PaymentCompleted row: %s %s %+v", aggType, aggID, pc)
			}
		case event.TypeOrderPaid:
			var op event.OrderPaid
			strictDecode(t, payload, &op)
			if aggType != "order" || aggID != fmt.Sprint(o.OrderID) || op.OrderID != o.OrderID || op.UserID != user ||
				len(op.Items) != 2 || op.Items[0] != (event.Item{ProductDetailID: shirt, Quantity: 2}) ||
				op.Items[1] != (event.Item{ProductDetailID: mug, Quantity: 1}) {
				t.Errorf("OrderPaid row: %s %s %+v", aggType, aggID, op)
			}
		default:
			t.Errorf("unexpected outbox row %s", typ)
		}
	}
	if n != 2 {
		t.Fatalf("%d outbox rows, want 2", n)
	}
}

func strictDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	// Every payload field is a known one: re-encoding gives the same keys.
	var got, again map[string]any
	_ = json.Unmarshal(b, &got)
	re, _ := json.Marshal(v)
	_ = json.Unmarshal(re, &again)
	if len(got) != len(again) {
		t.Errorf("payload %s has fields beyond %s", b, re)
	}
}

// A payment's balance debit, payment row, order status, outbox rows and
// idempotency record commit together: a failure at any step, including the
// commit itself, leaves none of them, and a retry then succeeds.
func TestPaymentIsAtomic(t *testing.T) {
	steps := []struct {
		name       string
		table      string
		constraint bool   // a deferred constraint trigger fires at commit
		when       string // the trigger's timing
		cond       string // and condition
	}{
		{"claim idempotency key", "idempotency_keys", false, `BEFORE INSERT`, ""},
		{"debit balance", "users", false, `BEFORE UPDATE`, ""},
		{"insert payment", "payments", false, `BEFORE INSERT`, ""},
		{"mark order paid", "orders", false, `BEFORE UPDATE`, ""},
		{"insert PaymentCompleted", "outbox", false, `BEFORE INSERT`, `WHEN (NEW.type = 'PaymentCompleted')`},
		{"insert OrderPaid", "outbox", false, `BEFORE INSERT`, `WHEN (NEW.type = 'OrderPaid')`},
		{"store idempotent response", "idempotency_keys", false, `BEFORE UPDATE`, ""},
		{"commit", "outbox", true, `AFTER INSERT`, ""},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			s := newServer(t)
			user := s.newUser(10000)
			o := s.newOrder(user, item(s.newDetail(2500, 10), 2))
			s.exec(`CREATE FUNCTION fail_step() RETURNS trigger LANGUAGE plpgsql AS
				$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`)
			kind, deferred := "TRIGGER", ""
			if step.constraint {
				kind, deferred = "CONSTRAINT TRIGGER", "DEFERRABLE INITIALLY DEFERRED"
			}
			s.exec(fmt.Sprintf(`CREATE %s fail_step %s ON %s %s FOR EACH ROW %s EXECUTE FUNCTION fail_step()`,
				kind, step.when, step.table, deferred, step.cond))

			before := s.snapshot()
			path := fmt.Sprintf("/orders/%d/payment", o.OrderID)
			s.as(user).mustDo(http.StatusInternalServerError, "POST", path, map[string]any{"userId": user}, "Idempotency-Key", "k1")
			if after := s.snapshot(); after != before {
				t.Fatalf("failed payment changed the database:\nbefore %s\nafter  %s", before, after)
			}

			s.exec(`DROP TRIGGER fail_step ON ` + step.table)
			var p shop.Payment
			s.as(user).mustDo(http.StatusCreated, "POST", path, map[string]any{"userId": user}, "Idempotency-Key", "k1").decode(t, &p)
			if p.BalanceAfter != 5000 {
				t.Fatalf("retried payment: %+v", p)
			}
			if n := s.count(`SELECT count(*) FROM outbox`); n != 2 {
				t.Fatalf("%d outbox rows after the retry, want 2", n)
			}
		})
	}
}

// 100 payments of distinct orders by one user whose balance covers exactly
// 10 of them: exactly 10 succeed and the balance ends at 0.
func TestConcurrentPaymentsOfOneUser(t *testing.T) {
	s := newServer(t)
	const price, orders, affordable = 700, 100, 10
	user := s.newUser(price * affordable)
	detail := s.newDetail(price, orders)
	ids := make([]int64, orders)
	for i := range ids {
		ids[i] = s.newOrder(user, item(detail, 1)).OrderID
	}

	statuses := make([]int, orders)
	me := s.as(user)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			statuses[i] = me.do("POST", fmt.Sprintf("/orders/%d/payment", id), map[string]any{"userId": user}).status
		})
	}
	wg.Wait()

	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[http.StatusCreated] != affordable || count[http.StatusConflict] != orders-affordable {
		t.Fatalf("statuses: %v, want %d × 201 and %d × 409", count, affordable, orders-affordable)
	}
	if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != 0 {
		t.Errorf("balance %d, want 0", b)
	}
	if n := s.count(`SELECT count(*) FROM payments`); n != affordable {
		t.Errorf("%d payments, want %d", n, affordable)
	}
	if n := s.count(`SELECT COALESCE(sum(amount), 0) FROM payments`); n != price*affordable {
		t.Errorf("payments sum to %d, want %d", n, price*affordable)
	}
	if n := s.count(`SELECT count(*) FROM orders WHERE status = 'PAID'`); n != affordable {
		t.Errorf("%d orders paid, want %d", n, affordable)
	}
	if n := s.count(`SELECT count(*) FROM outbox`); n != 2*affordable {
		t.Errorf("%d outbox rows, want %d", n, 2*affordable)
	}
}

// The same order paid 20 times at once: one payment, one debit, one pair of
// outbox rows. With one Idempotency-Key every request gets the first response.
func TestConcurrentPaymentsOfOneOrder(t *testing.T) {
	for _, withKey := range []bool{false, true} {
		t.Run(fmt.Sprintf("idempotency key %v", withKey), func(t *testing.T) {
			s := newServer(t)
			user := s.newUser(1000)
			o := s.newOrder(user, item(s.newDetail(300, 5), 1))
			const n = 20
			responses := make([]response, n)
			me := s.as(user)
			var wg sync.WaitGroup
			for i := range responses {
				wg.Go(func() {
					var headers []string
					if withKey {
						headers = []string{"Idempotency-Key", "pay-once"}
					}
					responses[i] = me.do("POST", fmt.Sprintf("/orders/%d/payment", o.OrderID), map[string]any{"userId": user}, headers...)
				})
			}
			wg.Wait()

			created, replayed, conflicts := 0, 0, 0
			var first string
			for _, r := range responses {
				switch r.status {
				case http.StatusCreated:
					created++
					if first == "" {
						first = string(r.body)
					} else if string(r.body) != first {
						t.Errorf("responses differ:\n%s\n%s", first, r.body)
					}
					if r.header.Get("Idempotent-Replayed") == "true" {
						replayed++
					}
				case http.StatusConflict:
					conflicts++
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}
			if withKey && (created != n || replayed != n-1) {
				t.Errorf("with a key: %d created, %d replayed; want %d and %d", created, replayed, n, n-1)
			}
			if !withKey && (created != 1 || conflicts != n-1) {
				t.Errorf("without a key: %d created, %d conflicts; want 1 and %d", created, conflicts, n-1)
			}
			if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != 700 {
				t.Errorf("balance %d, want 700 (one debit)", b)
			}
			if c := s.count(`SELECT count(*) FROM payments`); c != 1 {
				t.Errorf("%d payments, want 1", c)
			}
			if c := s.count(`SELECT count(*) FROM outbox`); c != 2 {
				t.Errorf("%d outbox rows, want 2", c)
			}
		})
	}
}

// A replay after the fact returns the stored response, even once the order
// is no longer payable; the key cannot be used for another order.
func TestIdempotencyKeyReplay(t *testing.T) {
	s := newServer(t)
	user := s.newUser(1000)
	detail := s.newDetail(100, 5)
	o1 := s.newOrder(user, item(detail, 1))
	o2 := s.newOrder(user, item(detail, 1))
	s = s.as(user)
	path := fmt.Sprintf("/orders/%d/payment", o1.OrderID)
	first := s.mustDo(http.StatusCreated, "POST", path, map[string]any{"userId": user}, "Idempotency-Key", "abc")
	again := s.mustDo(http.StatusCreated, "POST", path, map[string]any{"userId": user}, "Idempotency-Key", "abc")
	if string(first.body) != string(again.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %s (replayed=%q), first %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	s.mustDo(http.StatusConflict, "POST", path, map[string]any{"userId": user})
	p := s.mustDo(http.StatusUnprocessableEntity, "POST", fmt.Sprintf("/orders/%d/payment", o2.OrderID),
		map[string]any{"userId": user}, "Idempotency-Key", "abc").problem(t)
	if p.Type != "/problems/idempotency-key-reused" {
		t.Errorf("problem type %q", p.Type)
	}
	if b := s.count(`SELECT balance FROM users WHERE id = $1`, user); b != 900 {
		t.Errorf("balance %d, want 900", b)
	}
}
