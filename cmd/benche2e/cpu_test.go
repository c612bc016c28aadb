package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
)

// startPostgres starts a private cluster as startSystem does (with
// pg_stat_statements), with database dbName, and returns the system
// without dev.
func startPostgres(t *testing.T) *system {
	t.Helper()
	tmp, err := os.MkdirTemp("", "benche2e-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &system{pgDir: filepath.Join(tmp, "postgres")}
	s.pg, err = pgcluster.Start(t.Context(), pgcluster.Options{DataDir: s.pgDir,
		Settings: map[string]string{"shared_preload_libraries": "pg_stat_statements"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.pg.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := s.pg.CreateDatabase(t.Context(), dbName, ""); err != nil {
		t.Fatal(err)
	}
	s.url = s.pg.URL(dbName)
	s.stats = openDB(t, s.pg.URL("postgres")+"&application_name="+benchAppName)
	if _, err := s.stats.Exec(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		t.Fatal(err)
	}
	return s
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The sampler charges a backend's CPU to its application_name, also after
// the backend has exited, and the machine's busy time covers the parts;
// pg_stat_statements counts the backend's statement.
func TestCPUSamplerAndStatements(t *testing.T) {
	s := startPostgres(t)
	if err := s.resetStatements(t.Context()); err != nil {
		t.Fatal(err)
	}
	sampler, stop := s.startCPUSampler(t.Context(), slog.New(slog.DiscardHandler))
	defer stop()
	start := sampler.snapshot(t.Context())

	// A backend named probe burns CPU until the sampler has seen some of it.
	if _, err := s.stats.Exec(`CREATE ROLE prober LOGIN PASSWORD 'prober-pw'`); err != nil {
		t.Fatal(err)
	}
	probe := openDB(t, fmt.Sprintf("postgres://prober:prober-pw@127.0.0.1:%d/%s?sslmode=disable&application_name=probe", s.pg.Port(), dbName))
	probe.SetMaxOpenConns(1)
	const part = "pg backend probe"
	eventually.True(t, 2*time.Minute, "the sampler charges CPU to "+part, func() (bool, error) {
		if _, err := probe.Exec(`SELECT count(*) FROM generate_series(1, 2000000)`); err != nil {
			return false, err
		}
		return window(start, sampler.snapshot(t.Context())).parts[part] > 0, nil
	})
	seen := window(start, sampler.snapshot(t.Context()))
	// The backend exits; what it used up to the last sample stays.
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, time.Minute, "the probe backend exits", func() (bool, error) {
		var n int
		err := s.stats.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'probe'`).Scan(&n)
		return n == 0, err
	})
	after := window(start, sampler.snapshot(t.Context()))
	// A window holds rates: rate x elapsed gives back the CPU-seconds up to
	// float rounding.
	used := func(w cpuWindow) float64 { return w.parts[part] * w.elapsed.Seconds() }
	if used(after) < used(seen)-1e-6 || used(seen) <= 0 {
		t.Errorf("%s used %.2f CPU-s while alive, %.2f after it exited; want a positive figure that stays", part, used(seen), used(after))
	}
	if after.unknown || after.busy <= 0 || after.pg < after.parts[part] || after.parts["pg postmaster"] < 0 {
		t.Errorf("window %+v: want the machine busy and Postgres covering the probe", after)
	}
	if _, ok := after.parts["pg checkpointer"]; !ok {
		t.Errorf("no checkpointer among the parts %v", after.parts)
	}

	st, err := s.statements(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.top) == 0 || st.top[0].role != "prober" || !strings.Contains(st.top[0].query, "generate_series") ||
		st.top[0].calls < 1 || st.top[0].total <= 0 || st.product < st.top[0].total {
		t.Errorf("statements %+v: want the probe's first", st)
	}
	// The superuser's statements are the bench's own, left out of top.
	if _, err := openDB(t, s.url).Exec(`SELECT count(*) FROM generate_series(1, 100000)`); err != nil {
		t.Fatal(err)
	}
	if st, err = s.statements(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	for _, row := range st.top {
		if row.role == superuser {
			t.Errorf("the superuser's %q in top", row.query)
		}
	}
	if st.bench <= 0 {
		t.Errorf("the bench's own time %v, want it counted", st.bench)
	}
}

func TestWindowBrowserPart(t *testing.T) {
	at := time.Now()
	for _, tc := range []struct {
		name     string
		from, to time.Duration // chromium's CPU since the sampler started
		want     float64
		has      bool
	}{
		{"no console", 0, 0, 0, false},
		{"console open", time.Second, 3 * time.Second, 1, true},
		{"a chromium process gone", 3 * time.Second, 2 * time.Second, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := window(cpuSnapshot{at: at, browser: tc.from}, cpuSnapshot{at: at.Add(2 * time.Second), browser: tc.to})
			got, has := w.parts[partBrowser]
			if has != tc.has || !near(got, tc.want) {
				t.Errorf("chromium's part %v (%v), want %v (%v)", got, has, tc.want, tc.has)
			}
		})
	}
}
