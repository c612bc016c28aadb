package main

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

func TestWithApplicationName(t *testing.T) {
	for _, tc := range []struct {
		name, dsn, want string
	}{
		{"URL", "postgres://u:p@127.0.0.1:5432/db", "postgres://u:p@127.0.0.1:5432/db?application_name=outboxpay-api"},
		{"URL with parameters", "postgresql://u@h/db?sslmode=disable", "postgresql://u@h/db?application_name=outboxpay-api&sslmode=disable"},
		{"URL that names itself", "postgres://u@h/db?application_name=mine", "postgres://u@h/db?application_name=mine"},
		{"key=value", "host=h dbname=db", "host=h dbname=db application_name=outboxpay-api"},
		{"key=value that names itself", "host=h application_name=mine", "host=h application_name=mine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withApplicationName(tc.dsn, "outboxpay-api")
			if err != nil || got != tc.want {
				t.Errorf("withApplicationName(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
			}
		})
	}
	if _, err := withApplicationName("postgres://u:secret@h/db%zz", "x"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a malformed URL: error %v, want one that does not quote the password", err)
	}
}

// Each subcommand's sessions carry its name in pg_stat_activity.
func TestPoolApplicationName(t *testing.T) {
	db, url := pgtest.NewDB(t)
	cfg := testConfig(t)
	cfg.DatabaseURL = url
	d := testDeps(cfg, nil)
	d.command = "consumers"
	d, closeDB, err := d.withDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	var own string
	if err := d.dbs.worker.QueryRow(`SELECT current_setting('application_name')`).Scan(&own); err != nil {
		t.Fatal(err)
	}
	var seen int
	if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'outboxpay-consumers'`).Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if own != "outboxpay-consumers" || seen < 1 {
		t.Errorf("application_name %q, %d sessions named outboxpay-consumers in pg_stat_activity; want outboxpay-consumers, at least 1", own, seen)
	}
}
