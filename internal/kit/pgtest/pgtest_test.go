package pgtest_test

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func TestNewDBConcurrent(t *testing.T) {
	const n = 8
	names := make(chan string, n)
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				db, url := pgtest.NewDB(t)
				var name string
				if err := db.QueryRowContext(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(url, "/"+name+"?") {
					t.Errorf("URL %s does not name database %s", url, name)
				}
				if v, err := migrations.Version(t.Context(), db); err != nil || v < 1 {
					t.Errorf("schema version = %d, %v; want a migrated database", v, err)
				}
				// Each test has a database of its own.
				if _, err := db.ExecContext(t.Context(), "CREATE TABLE mine (v int)"); err != nil {
					t.Fatal(err)
				}
				names <- name
			})
		}
	})
	close(names)

	// The databases are gone once their tests are over.
	admin := openAdmin(t)
	seen := map[string]bool{}
	for name := range names {
		if seen[name] {
			t.Errorf("database %s handed out twice", name)
		}
		seen[name] = true
		var count int
		if err := admin.QueryRowContext(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != 0 {
			t.Errorf("database %s still exists after its test", name)
		}
	}
	if len(seen) != n {
		t.Errorf("got %d databases, want %d", len(seen), n)
	}
}

func TestClusterRestartKeepsURLs(t *testing.T) {
	db, url := pgtest.NewDB(t)
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Cluster(t).Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	again, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var v string
	if err := again.QueryRowContext(t.Context(), "SELECT v FROM kept").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "yes" {
		t.Errorf("after restart, v = %q", v)
	}
}

func openAdmin(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", pgtest.Cluster(t).URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
