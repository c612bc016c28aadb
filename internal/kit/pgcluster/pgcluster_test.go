package pgcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

// testDir returns a fresh folder that the postgres user can enter (the test
// may run as root, and t.TempDir's folders are private to their owner).
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startCluster starts a cluster in dataDir (a fresh one when "") and stops
// it at the end of the test.
func startCluster(t *testing.T, dataDir string, durable bool) *Cluster {
	t.Helper()
	if dataDir == "" {
		dataDir = filepath.Join(testDir(t), "data")
	}
	c, err := Start(t.Context(), Options{
		DataDir: dataDir,
		Durable: durable,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return c
}

// open connects to database dbname of c.
func open(t *testing.T, c *Cluster, dbname string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", c.URL(dbname))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// queryString runs a query returning one text value.
func queryString(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	var s string
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

// mustExec runs statements on db.
func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// postmasterPID returns the pid in c's postmaster.pid.
func postmasterPID(t *testing.T, c *Cluster) int {
	t.Helper()
	pid := c.pidFromFile()
	if pid == 0 {
		t.Fatal("no pid in postmaster.pid")
	}
	return pid
}

// assertGone fails unless none of pids is a postgres process of c's data
// dir, and no process of that data dir is left.
func assertGone(t *testing.T, c *Cluster, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if k := classify(pid, c.dataDir); k == procServer {
			t.Errorf("pid %d still serves %s", pid, c.dataDir)
		}
	}
	left, err := serverPIDs(c.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("postgres processes left on %s: %v", c.dataDir, left)
	}
	// A server that did not shut down leaves its shared memory segment
	// behind, which a new server reuses only once nothing is attached.
	if pf := c.readPIDFile(); pf.hasShmem {
		n, err := shmemAttachments(pf.shmemKey, pf.shmemID)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("shared memory segment (key %d, ID %d) of %s still has %d attachments",
				pf.shmemKey, pf.shmemID, c.dataDir, n)
		}
	}
}

func TestStartSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		durable bool
		onOff   string
	}{
		{durable: false, onOff: "off"},
		{durable: true, onOff: "on"},
	} {
		t.Run(fmt.Sprintf("durable=%v", tc.durable), func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, "", tc.durable)
			if want := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/app?sslmode=disable", c.password, c.Port()); len(c.password) != 32 || c.URL("app") != want {
				t.Errorf("URL(app) = %s, want %s", c.URL("app"), want)
			}
			db := open(t, c, "postgres")
			for setting, want := range map[string]string{
				"wal_level":               "logical",
				"max_replication_slots":   "32",
				"max_wal_senders":         "32",
				"max_connections":         "300",
				"wal_sender_timeout":      "1min",
				"listen_addresses":        "127.0.0.1",
				"unix_socket_directories": "",
				"fsync":                   tc.onOff,
				"synchronous_commit":      "on", // see Options.Durable
				"full_page_writes":        tc.onOff,
				"server_encoding":         "UTF8",
				"lc_collate":              "C",
			} {
				if got := queryString(t, db, "SHOW "+setting); got != want {
					t.Errorf("%s = %q, want %q", setting, got, want)
				}
			}
			assertAuthenticates(t, c)

			// A commit reaches logical decoding at once.
			mustExec(t, db,
				"CREATE TABLE t (v int)",
				"SELECT pg_create_logical_replication_slot('s', 'test_decoding')",
				"INSERT INTO t VALUES (1)")
			if n := queryString(t, db, "SELECT count(*) FROM pg_logical_slot_peek_changes('s', NULL, NULL)"); n == "0" {
				t.Error("logical decoding does not see the last commit")
			}
			mustExec(t, db, "SELECT pg_drop_replication_slot('s')")
		})
	}
}

// assertAuthenticates fails unless every rule of c's pg_hba.conf asks for
// scram-sha-256, replication from 127.0.0.1 included, a wrong password is
// refused, and the password file is private.
func assertAuthenticates(t *testing.T, c *Cluster) {
	t.Helper()
	db := open(t, c, "postgres")
	if n := queryString(t, db, `SELECT count(*) FROM pg_hba_file_rules WHERE auth_method <> 'scram-sha-256' OR error IS NOT NULL`); n != "0" {
		t.Errorf("pg_hba.conf has %s rules that are not scram-sha-256", n)
	}
	if n := queryString(t, db, `SELECT count(*) FROM pg_hba_file_rules
		WHERE type = 'host' AND 'replication' = ANY(database) AND address = '127.0.0.1'`); n == "0" {
		t.Error("pg_hba.conf has no rule for replication from 127.0.0.1")
	}
	if n := queryString(t, db, `SELECT count(*) FROM pg_hba_file_rules
		WHERE 'replication' = ANY(database) AND user_name <> '{postgres}'`); n != "0" {
		t.Errorf("pg_hba.conf lets %s rules take physical replication connections for other users than postgres", n)
	}
	u, err := url.Parse(c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []*url.Userinfo{url.User("postgres"), url.UserPassword("postgres", "wrong")} {
		u.User = user
		wrong, err := sql.Open("postgres", u.String())
		if err != nil {
			t.Fatal(err)
		}
		err = wrong.PingContext(t.Context())
		wrong.Close()
		if err == nil || !strings.Contains(err.Error(), "authentication failed") {
			t.Errorf("connecting as %s: %v, want password authentication failed", u.Redacted(), err)
		}
	}
	fi, err := os.Stat(filepath.Join(c.dataDir, passwordFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", passwordFile, fi.Mode().Perm())
	}
}

// The log of a start never holds the superuser's password.
func TestLogHoldsNoPassword(t *testing.T) {
	t.Parallel()
	var log logtest.Buffer
	c, err := Start(t.Context(), Options{DataDir: filepath.Join(testDir(t), "data"), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if log.String() == "" || strings.Contains(log.String(), c.password) {
		t.Errorf("log holds the password, or nothing:\n%s", log.String())
	}
}

// A data dir made by the earlier version, which trusted every connection
// and set no superuser password, starts and is converted.
func TestStartConvertsTrustDataDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testDir(t), "data")
	c := startCluster(t, dir, false)
	mustExec(t, open(t, c, "postgres"), "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('kept')",
		"ALTER ROLE postgres PASSWORD NULL")
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// What initdb --auth=trust and the earlier pgcluster wrote.
	hba := filepath.Join(dir, "pg_hba.conf")
	data, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), "scram-sha-256", "trust"))
	if err := os.WriteFile(hba, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, passwordFile)); err != nil {
		t.Fatal(err)
	}

	c = startCluster(t, dir, false)
	if got := queryString(t, open(t, c, "postgres"), "SELECT v FROM t"); got != "kept" {
		t.Errorf("v = %q, want kept", got)
	}
	assertAuthenticates(t, c)

	// The next start finds the converted data dir as a new one.
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	c = startCluster(t, dir, false)
	if c.trusting {
		t.Error("the converted data dir still counts as trusting")
	}
	assertAuthenticates(t, c)
}

func TestReplaceTrustRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"# trust me\nlocal all all trust\n", "# trust me\nlocal all all scram-sha-256\n"},
		{"host replication all 127.0.0.1/32 trust # added\n", "host replication all 127.0.0.1/32 scram-sha-256 # added\n"},
		{"host all all ::1/128 scram-sha-256\n", "host all all ::1/128 scram-sha-256\n"},
		{"host all all 127.0.0.1/32 trust", "host all all 127.0.0.1/32 scram-sha-256"},
	} {
		if got := string(replaceTrustRules([]byte(tc.in))); got != tc.want {
			t.Errorf("replaceTrustRules(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if hasTrustRule([]byte(tc.want)) {
			t.Errorf("hasTrustRule(%q) = true", tc.want)
		}
	}
	if !hasTrustRule([]byte("local all all trust\n")) {
		t.Error("hasTrustRule misses a trust rule")
	}
}

func TestRestartKeepsDataAndPort(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", false)
	port := c.Port()
	mustExec(t, open(t, c, "postgres"),
		"CREATE TABLE t (v text)",
		"INSERT INTO t VALUES ('kept')")

	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Errorf("port changed from %d to %d", port, c.Port())
	}
	if got := queryString(t, open(t, c, "postgres"), "SELECT v FROM t"); got != "kept" {
		t.Errorf("after restart, v = %q", got)
	}
}

// Options.Settings reach the server, override the defaults and survive a
// restart; one the server rejects fails Start.
func TestStartExtraSettings(t *testing.T) {
	t.Parallel()
	c, err := Start(t.Context(), Options{
		DataDir: filepath.Join(testDir(t), "data"),
		Settings: map[string]string{
			"shared_preload_libraries": "pg_stat_statements",
			"max_connections":          "120",
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	check := func(when string) {
		t.Helper()
		db := open(t, c, "postgres")
		mustExec(t, db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "SELECT 42")
		if got := queryString(t, db, "SHOW max_connections"); got != "120" {
			t.Errorf("%s: max_connections = %q, want 120", when, got)
		}
		// pg_stat_statements answers only when preloaded.
		if n := queryString(t, db, "SELECT count(*) FROM pg_stat_statements WHERE query = 'SELECT $1'"); n == "0" {
			t.Errorf("%s: pg_stat_statements did not record SELECT 42", when)
		}
	}
	check("after start")
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("after restart")

	dir := filepath.Join(testDir(t), "bad")
	if bad, err := Start(t.Context(), Options{DataDir: dir, Settings: map[string]string{"no_such_setting": "1"}}); err == nil {
		bad.Stop(context.Background())
		t.Error("Start with an unknown setting succeeded")
	} else if !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("Start with an unknown setting: %v, want an error naming it", err)
	}
}

func TestStopThenStartDurable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testDir(t), "data")
	c := startCluster(t, dir, false)
	mustExec(t, open(t, c, "postgres"), "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('kept')")
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The same data dir, created non-durable, starts durable.
	c = startCluster(t, dir, true)
	db := open(t, c, "postgres")
	if got := queryString(t, db, "SHOW fsync"); got != "on" {
		t.Errorf("fsync = %q, want on", got)
	}
	if got := queryString(t, db, "SELECT v FROM t"); got != "kept" {
		t.Errorf("v = %q, want kept", got)
	}
}

func TestKillThenRestartRecovers(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{true, false} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, "", durable)
			db := open(t, c, "postgres")
			mustExec(t, db, "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('committed')")
			db.Close()

			pid := postmasterPID(t, c)
			if err := c.Kill(); err != nil {
				t.Fatal(err)
			}
			assertGone(t, c, pid)
			if err := c.Kill(); err == nil {
				t.Error("second Kill succeeded, want an error: not running")
			}

			if err := c.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := queryString(t, open(t, c, "postgres"), "SELECT v FROM t"); got != "committed" {
				t.Errorf("after crash recovery, v = %q", got)
			}
		})
	}
}

func TestStartTakesOverRunningInstance(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testDir(t), "data")
	// The first cluster stands for a server left behind by an earlier run
	// of the program that was killed hard.
	stale := startCluster(t, dir, false)
	mustExec(t, open(t, stale, "postgres"), "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('kept')")
	stalePID := postmasterPID(t, stale)

	c := startCluster(t, dir, false)
	assertNotServing(t, stale, stalePID)
	if pid := postmasterPID(t, c); pid == stalePID {
		t.Fatalf("postmaster.pid still names the stale pid %d", pid)
	}
	if got := queryString(t, open(t, c, "postgres"), "SELECT v FROM t"); got != "kept" {
		t.Errorf("v = %q, want kept", got)
	}
	// The stale cluster's Stop is a no-op that leaves the new server alone.
	if err := stale.Stop(t.Context()); err != nil {
		t.Errorf("Stop of the replaced cluster: %v", err)
	}
	if got := queryString(t, open(t, c, "postgres"), "SELECT 'alive'"); got != "alive" {
		t.Errorf("got %q", got)
	}
}

// assertNotServing fails if pid still serves the data dir of c.
func assertNotServing(t *testing.T, c *Cluster, pid int) {
	t.Helper()
	if k := classify(pid, c.dataDir); k == procServer {
		t.Errorf("pid %d still serves %s", pid, c.dataDir)
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", false)
	pid := postmasterPID(t, c)
	pids, err := serverPIDs(c.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) < 2 {
		t.Fatalf("server processes = %v, want the postmaster and its children", pids)
	}

	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, pids...)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) = %v, want ESRCH: the postmaster is not reaped", pid, err)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after a clean shutdown: %v", err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestCreateDropDatabase(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", false)
	const tmpl, name = `tmpl "quoted"`, `Weird name; DROP`
	if err := c.CreateDatabase(t.Context(), tmpl, ""); err != nil {
		t.Fatal(err)
	}
	db := open(t, c, tmpl)
	mustExec(t, db, "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('from template')")
	db.Close()

	if err := c.CreateDatabase(t.Context(), name, tmpl); err != nil {
		t.Fatal(err)
	}
	copyDB := open(t, c, name)
	if got := queryString(t, copyDB, "SELECT v FROM t"); got != "from template" {
		t.Errorf("v = %q", got)
	}
	// DropDatabase ends the sessions still connected.
	if err := c.DropDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, open(t, c, "postgres"),
		"SELECT count(*) FROM pg_database WHERE datname = $1", name); got != "0" {
		t.Errorf("database %q still exists", name)
	}
	if err := c.DropDatabase(t.Context(), name); err == nil {
		t.Error("dropping a missing database succeeded")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup returns the options to start with and the texts the error
		// must contain; no texts: Start must succeed.
		setup func(t *testing.T) (Options, []string)
	}{
		{
			name: "port in use",
			setup: func(t *testing.T) (Options, []string) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				dir := filepath.Join(testDir(t), "data")
				return Options{DataDir: dir, Port: l.Addr().(*net.TCPAddr).Port},
					[]string{"exited during startup", "already in use", filepath.Join(dir, "log", "postgres.log")}
			},
		},
		{
			name: "data dir not empty",
			setup: func(t *testing.T) (Options, []string) {
				dir := filepath.Join(testDir(t), "data")
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return Options{DataDir: dir}, []string{"initdb", "not empty"}
			},
		},
		{
			name: "ancestor closed to the postgres user",
			setup: func(t *testing.T) (Options, []string) {
				closed := filepath.Join(testDir(t), "closed")
				if err := os.Mkdir(closed, 0o700); err != nil {
					t.Fatal(err)
				}
				opts := Options{DataDir: filepath.Join(closed, "sub", "data")}
				if os.Geteuid() != 0 {
					// Not root: the server runs as this user, who can enter
					// the folder, so Start succeeds.
					return opts, nil
				}
				return opts, []string{"cannot enter " + closed + " "}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts, want := tc.setup(t)
			c, err := Start(t.Context(), opts)
			if want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				c.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
			for _, w := range want {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if left, _ := serverPIDs(opts.DataDir); len(left) > 0 {
				t.Errorf("failed start left processes %v", left)
			}
		})
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	notFound := func(string) (string, error) { return "", errors.New("not found") }
	onPath := func(file string) (string, error) { return "/opt/pg/bin/" + file, nil }

	// makeLib builds a fake /usr/lib/postgresql holding the given
	// VERSION/bin/PROGRAM files.
	makeLib := func(t *testing.T, files ...string) string {
		lib := t.TempDir()
		for _, f := range files {
			path := filepath.Join(lib, f)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return lib
	}

	for _, tc := range []struct {
		name     string
		lookPath func(string) (string, error)
		files    []string
		want     string // folder of the binaries found, relative to the fake lib unless absolute
		wantErr  string
	}{
		{
			name:     "PATH wins",
			lookPath: onPath,
			files:    []string{"15/bin/initdb", "15/bin/postgres"},
			want:     "/opt/pg/bin",
		},
		{
			name:     "highest complete version",
			lookPath: notFound,
			files: []string{
				"9.6/bin/initdb", "9.6/bin/postgres",
				"10/bin/initdb", "10/bin/postgres",
				"15/bin/initdb", "15/bin/postgres",
				"16/bin/postgres", // no initdb
				"common/bin/initdb", "common/bin/postgres",
			},
			want: "15/bin",
		},
		{
			name:     "numeric not lexical order",
			lookPath: notFound,
			files:    []string{"9.6/bin/initdb", "9.6/bin/postgres", "10/bin/initdb", "10/bin/postgres"},
			want:     "10/bin",
		},
		{
			name: "only postgres on PATH",
			lookPath: func(f string) (string, error) {
				if f == "postgres" {
					return onPath(f)
				}
				return notFound(f)
			},
			files: []string{"14/bin/initdb", "14/bin/postgres"},
			want:  "14/bin",
		},
		{
			name:     "none",
			lookPath: notFound,
			files:    []string{"16/bin/postgres"},
			wantErr:  "apt-get install -y postgresql",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lib := makeLib(t, tc.files...)
			got, err := findBinaries(tc.lookPath, lib)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if !filepath.IsAbs(want) {
				want = filepath.Join(lib, want)
			}
			if got.initdb != filepath.Join(want, "initdb") || got.postgres != filepath.Join(want, "postgres") {
				t.Errorf("got %+v, want binaries in %s", got, want)
			}
		})
	}

	t.Run("missing lib dir", func(t *testing.T) {
		t.Parallel()
		_, err := findBinaries(notFound, filepath.Join(t.TempDir(), "absent"))
		if err == nil || !strings.Contains(err.Error(), "install the postgresql package") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestParsePIDFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data string
		want pidFile
	}{
		{
			name: "running postmaster",
			data: "27845\n/tmp/data\n1795604063\n5432\n\n127.0.0.1\n  9977889    622628\nready   \n",
			want: pidFile{pid: 27845, shmemKey: 9977889, shmemID: 622628, hasShmem: true},
		},
		{
			name: "negative key, printed sign-extended",
			data: "42\n/tmp/data\n1\n5432\n\n127.0.0.1\n18446744073709551611         7\n",
			want: pidFile{pid: 42, shmemKey: -5, shmemID: 7, hasShmem: true},
		},
		{
			name: "no segment yet",
			data: "42\n/tmp/data\n1\n5432\n",
			want: pidFile{pid: 42},
		},
		{
			name: "standalone backend",
			data: "-5390\n/tmp/data\n1795604631\n5432\n\n\n  9978033    983069\n",
			want: pidFile{},
		},
		{name: "damaged", data: "garbage\n", want: pidFile{}},
		{name: "empty", data: "", want: pidFile{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parsePIDFile([]byte(tc.data)); got != tc.want {
				t.Errorf("parsePIDFile = %+v, want %+v", got, tc.want)
			}
		})
	}
}
