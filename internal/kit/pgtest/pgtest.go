// Package pgtest gives tests a private PostgreSQL: one non-durable cluster
// per test binary, and a fresh, migrated database per test. It is meant to be
// imported by _test.go files only.
//
// A package that uses it runs its tests through [Run]:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// and each test takes its own database with [NewDB]. The cluster runs from
// the system's PostgreSQL binaries (see package pgcluster); without them the
// test binary fails.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq" // the "postgres" database/sql driver

	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
	"github.com/outboxpay/outboxpay/migrations"
)

// templateDB is the database that is migrated once and copied for each test.
const templateDB = "template_migrated"

const (
	startTimeout    = 2 * time.Minute
	stopTimeout     = time.Minute
	templateTimeout = 5 * time.Minute
	dropTimeout     = time.Minute
)

// active is the harness that Run installed for this test binary. TestMain
// and the tests share nothing but the package, so this state is
// package-level by necessity.
var active atomic.Pointer[harness]

// harness is the cluster of one test binary and what the tests made in it.
type harness struct {
	cluster  *pgcluster.Cluster
	template func() error // creates and migrates templateDB, once
	// rolePasswords gives the migrations' roles LOGIN and random
	// passwords, once, and returns them.
	rolePasswords func() (map[string]string, error)
	createMu      sync.Mutex   // serializes copies of templateDB
	seq           atomic.Int64 // numbers the test databases
}

// Run starts one private, non-durable cluster in a temporary folder, runs
// the tests, then stops the cluster and removes the folder. It returns the
// exit code for os.Exit: 1, with a message on stderr, when the cluster
// cannot be started, for instance because PostgreSQL is not installed.
func Run(m *testing.M) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: remove %s: %v\n", dir, err)
		}
	}()
	// MkdirTemp makes the folder private to its owner; the postgres user,
	// which runs the server when the tests run as root, must enter it.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: filepath.Join(dir, "data"),
		Logger:  logger,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: cannot run the tests without PostgreSQL: %v\n", err)
		return 1
	}

	h := &harness{cluster: cluster}
	h.template = sync.OnceValue(h.createTemplate)
	h.rolePasswords = sync.OnceValues(h.setRolePasswords)
	active.Store(h)
	code := m.Run()
	active.Store(nil)

	ctx, cancel = context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := cluster.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// NewDB creates a database for the test, a copy of one that has been
// migrated once per test binary, and returns it opened, with its URL. When
// the test ends, the database is closed and dropped.
func NewDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	h := current(t)
	if err := h.template(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	name := fmt.Sprintf("test_%d", h.seq.Add(1))
	h.createMu.Lock()
	err := h.cluster.CreateDatabase(t.Context(), name, templateDB)
	h.createMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	url := h.cluster.URL(name)
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("pgtest: close %s: %v", name, err)
		}
		// The test's context is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		if err := h.cluster.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return db, url
}

// AsRole opens the test database at dbURL (from [NewDB]) as role, one of
// [migrations.Roles], and returns it with its URL; the database is closed
// when the test ends. The roles get LOGIN and a random password once per
// test binary.
func AsRole(t testing.TB, dbURL, role string) (*sql.DB, string) {
	t.Helper()
	h := current(t)
	passwords, err := h.rolePasswords()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	password, ok := passwords[role]
	if !ok {
		t.Fatalf("pgtest: %q is not a role of the migrations", role)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest: parse database URL: %v", err)
	}
	u.User = url.UserPassword(role, password)
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatalf("pgtest: open as %s: %v", role, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("pgtest: close connection as %s: %v", role, err)
		}
	})
	return db, u.String()
}

// setRolePasswords creates the roles (the template's migration does) and
// gives them random passwords.
func (h *harness) setRolePasswords() (map[string]string, error) {
	if err := h.template(); err != nil {
		return nil, err
	}
	passwords := map[string]string{}
	for _, role := range migrations.Roles() {
		pw, err := migrations.NewPassword()
		if err != nil {
			return nil, err
		}
		passwords[role] = pw
	}
	ctx, cancel := context.WithTimeout(context.Background(), templateTimeout)
	defer cancel()
	db, err := sql.Open("postgres", h.cluster.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	if err := migrations.SetRolePasswords(ctx, db, passwords); err != nil {
		return nil, err
	}
	return passwords, nil
}

// Cluster returns the cluster of the test binary, for tests that restart or
// kill PostgreSQL. Its URLs stay valid across restarts.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	return current(t).cluster
}

// NewCluster starts a cluster of the test's own, empty and unmigrated, in a
// temporary folder, for tests of what belongs to a whole cluster (roles and
// their passwords); it is stopped and removed when the test ends.
func NewCluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgtest-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user runs the server when we are root
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return cluster
}

// current returns the harness installed by Run, or fails the test.
func current(t testing.TB) *harness {
	t.Helper()
	h := active.Load()
	if h == nil {
		t.Fatal("pgtest: no cluster: call pgtest.Run from TestMain (func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) })")
	}
	return h
}

// createTemplate creates templateDB and applies the migrations to it. It
// runs on a context of its own: the test that happens to trigger it may end
// before others are done with the result.
func (h *harness) createTemplate() error {
	ctx, cancel := context.WithTimeout(context.Background(), templateTimeout)
	defer cancel()
	if err := h.cluster.CreateDatabase(ctx, templateDB, ""); err != nil {
		return err
	}
	db, err := sql.Open("postgres", h.cluster.URL(templateDB))
	if err != nil {
		return fmt.Errorf("open %s: %w", templateDB, err)
	}
	if err := migrations.Up(ctx, db); err != nil {
		db.Close()
		return fmt.Errorf("migrate %s: %w", templateDB, err)
	}
	// Copies fail while a session is connected to the template.
	if err := db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", templateDB, err)
	}
	return nil
}
