package pgtest_test

import (
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// The fixtures insert what they say, and each call makes a new row.
func TestFixtures(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	cases := []struct {
		balance, price int64
		stock          int
	}{
		{0, 1, 0},
		{5000, 300, 7},
	}
	users := map[int64]bool{}
	details := map[int64]bool{}
	for _, c := range cases {
		user := pgtest.NewUser(t, db, c.balance)
		var balance int64
		if err := db.QueryRowContext(t.Context(), `SELECT balance FROM users WHERE id = $1`, user).Scan(&balance); err != nil || balance != c.balance {
			t.Errorf("user %d: balance %d (%v), want %d", user, balance, err, c.balance)
		}
		detail := pgtest.NewProductDetail(t, db, c.price, c.stock)
		var price int64
		var stock int
		if err := db.QueryRowContext(t.Context(), `SELECT price, stock FROM product_details WHERE id = $1`, detail).Scan(&price, &stock); err != nil || price != c.price || stock != c.stock {
			t.Errorf("detail %d: price %d stock %d (%v), want %d, %d", detail, price, stock, err, c.price, c.stock)
		}
		users[user], details[detail] = true, true
	}
	if len(users) != len(cases) || len(details) != len(cases) {
		t.Errorf("%d users and %d details for %d calls each", len(users), len(details), len(cases))
	}
}
