package main

import (
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// seed fills an empty database once and leaves one with data alone.
func TestSeed(t *testing.T) {
	db, url := pgtest.NewDB(t)
	for i, want := range []string{"demo data seeded", "nothing seeded"} {
		code, _, stderr := run(t, []string{"DATABASE_URL=" + url}, "seed")
		if code != 0 || !strings.Contains(stderr, want) {
			t.Fatalf("run %d: exit %d, want 0 and %q\n%s", i+1, code, want, stderr)
		}
	}
	var users, products int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM products)`).Scan(&users, &products); err != nil {
		t.Fatal(err)
	}
	if users != 3 || products != 3 {
		t.Errorf("%d users, %d products after seeding twice; want 3 and 3", users, products)
	}
}
