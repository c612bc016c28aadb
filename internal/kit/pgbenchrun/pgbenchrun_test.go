package pgbenchrun_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgbenchrun"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// pg15Output is what pgbench 15 prints for a run of a custom script.
const pg15Output = `transaction type: /tmp/payment.sql
scaling factor: 1
query mode: extended
number of clients: 8
number of threads: 4
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 8480
number of failed transactions: 3 (0.035%)
latency average = 18.861 ms
initial connection time = 25.104 ms
tps = 424.152873 (without initial connection time)
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    pgbenchrun.Result
		wantErr error
	}{
		{"pgbench 15", pg15Output, pgbenchrun.Result{Processed: 8480, Failed: 3, TPS: 424.152873, Latency: 18861 * time.Microsecond}, nil},
		{"no failures or latency reported", "number of transactions actually processed: 10\ntps = 5.5 (without initial connection time)\n",
			pgbenchrun.Result{Processed: 10, TPS: 5.5}, nil},
		{"no tps", "number of transactions actually processed: 10\n", pgbenchrun.Result{}, pgbenchrun.ErrNoSummary},
		{"nothing processed, so no tps", "number of transactions actually processed: 0\nnumber of failed transactions: 0 (NaN%)\n",
			pgbenchrun.Result{}, nil},
		{"an error only", "pgbench: error: connection to server failed\n", pgbenchrun.Result{}, pgbenchrun.ErrNoSummary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pgbenchrun.Parse(tc.out)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got.Output = ""
			if got != tc.want {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	const u = "postgres://postgres:secret@127.0.0.1:1/db"
	for _, tc := range []struct {
		name string
		o    pgbenchrun.Options
	}{
		{"no script", pgbenchrun.Options{URL: u, Clients: 1, Transactions: 1}},
		{"no clients", pgbenchrun.Options{URL: u, Script: "s", Transactions: 1}},
		{"neither duration nor count", pgbenchrun.Options{URL: u, Script: "s", Clients: 1}},
		{"both duration and count", pgbenchrun.Options{URL: u, Script: "s", Clients: 1, Transactions: 1, Duration: time.Second}},
		{"duration under a second", pgbenchrun.Options{URL: u, Script: "s", Clients: 1, Duration: time.Millisecond}},
		{"not a URL", pgbenchrun.Options{URL: "host=h password=secret", Script: "s", Clients: 1, Transactions: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgbenchrun.Run(t.Context(), tc.o)
			if err == nil || strings.Contains(err.Error(), "secret") {
				t.Errorf("Run: %v, want an error without the password", err)
			}
		})
	}
}

// setup returns a database with table t(client, tag) and a script that
// inserts one row per transaction, and the database's URL.
func setup(t *testing.T) (script, url string, count func() int) {
	t.Helper()
	db, url := pgtest.NewDB(t)
	if _, err := db.Exec(`CREATE TABLE t (client int, tag int)`); err != nil {
		t.Fatal(err)
	}
	script = filepath.Join(t.TempDir(), "insert.sql")
	if err := os.WriteFile(script, []byte("INSERT INTO t VALUES (:client_id, :tag);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return script, url, func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t WHERE tag = 7`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// Run runs the script as told, with the password of the URL and whatever
// PG* variables say, and its count is what reached the database.
func TestRun(t *testing.T) {
	// Nothing in the environment may steer pgbench elsewhere.
	t.Setenv("PGHOST", "192.0.2.1")
	t.Setenv("PGPORT", "1")
	t.Setenv("PGPASSWORD", "wrong")
	script, url, count := setup(t)
	for _, tc := range []struct {
		name string
		o    pgbenchrun.Options
		want int // rows; -1: as many as pgbench processed (on a loaded machine, maybe none)
	}{
		{"transactions per client", pgbenchrun.Options{Clients: 3, Transactions: 4, Protocol: "extended"}, 12},
		{"duration at a rate", pgbenchrun.Options{Clients: 2, Threads: 1, Duration: 2 * time.Second, Rate: 20}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count()
			o := tc.o
			o.URL, o.Script, o.Vars = url, script, map[string]string{"tag": "7"}
			res, err := pgbenchrun.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			rows := count() - before
			if res.Processed != rows || (tc.want >= 0 && rows != tc.want) || (rows > 0) != (res.TPS > 0) || res.Failed != 0 {
				t.Errorf("processed %d, failed %d, tps %.1f, %d rows inserted; want as many rows as processed (%d)\n%s",
					res.Processed, res.Failed, res.TPS, rows, tc.want, res.Output)
			}
			// pgbench ran for the duration asked; under --rate it may end
			// up to one scheduled transaction early, so its report, not the
			// clock, says so.
			if want := fmt.Sprintf("duration: %d s", int(o.Duration.Seconds())); o.Duration > 0 && !strings.Contains(res.Output, want) {
				t.Errorf("a %v run's report does not say %q:\n%s", o.Duration, want, res.Output)
			}
		})
	}
}

// A run whose context ends stops pgbench and returns the context's error.
func TestRunStopsWithContext(t *testing.T) {
	script, url, count := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := pgbenchrun.Run(ctx, pgbenchrun.Options{URL: url, Script: script, Clients: 1, Duration: time.Hour, Rate: 50,
			Vars: map[string]string{"tag": "7"}})
		done <- err
	}()
	eventually.True(t, time.Minute, "pgbench inserts rows", func() (bool, error) { return count() > 0, nil })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run still running a minute after its context ended")
	}
	n := count()
	eventually.True(t, 5*time.Second, "no more rows after the stop", func() (bool, error) { return count() == n, nil })
}
