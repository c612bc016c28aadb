package pgtest

import (
	"database/sql"
	"testing"
)

// NewUser inserts a user with the given balance into a test database and
// returns its id.
func NewUser(t testing.TB, db *sql.DB, balance int64) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRowContext(t.Context(),
		`INSERT INTO users (name, balance) VALUES ('user', $1) RETURNING id`, balance).Scan(&id); err != nil {
		t.Fatalf("pgtest: insert user: %v", err)
	}
	return id
}

// NewProductDetail inserts a product with one option of the given price and
// stock into a test database and returns the option's (product_details) id.
func NewProductDetail(t testing.TB, db *sql.DB, price int64, stock int) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRowContext(t.Context(), `WITH p AS (INSERT INTO products (name) VALUES ('product') RETURNING id)
		INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'one', $1, $2 FROM p RETURNING id`,
		price, stock).Scan(&id); err != nil {
		t.Fatalf("pgtest: insert product: %v", err)
	}
	return id
}
