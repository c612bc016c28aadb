package main

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestLoadOrCreatePasswords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", devRolesFile)
	first, err := loadOrCreatePasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, fi.Mode().Perm())
	}
	for _, role := range migrations.Roles() {
		if len(first[role]) != 32 {
			t.Errorf("%s: password of %d characters", role, len(first[role]))
		}
	}
	again, err := loadOrCreatePasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	for role, pw := range first {
		if again[role] != pw {
			t.Errorf("%s: the next run got another password", role)
		}
	}

	// A file from before a role existed keeps its passwords and gains one
	// for the new role.
	older := filepath.Join(t.TempDir(), devRolesFile)
	if err := os.WriteFile(older, []byte(`{"outboxpay_api": "a", "outboxpay_worker": "b", "outboxpay_cdc": "c"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	upgraded, err := loadOrCreatePasswords(older)
	if err != nil {
		t.Fatal(err)
	}
	reread, err := loadOrCreatePasswords(older)
	if err != nil {
		t.Fatal(err)
	}
	if upgraded[migrations.RoleAPI] != "a" || upgraded[migrations.RoleCDC] != "c" ||
		len(upgraded[migrations.RoleOperator]) != 32 || reread[migrations.RoleOperator] != upgraded[migrations.RoleOperator] {
		t.Errorf("upgraded passwords %v, read again %v", upgraded, reread)
	}

	for _, tc := range []struct {
		name, content, want string
		is                  error
	}{
		{"not JSON", "api: x", "not a JSON object", nil},
		{"an empty password", `{"outboxpay_api": "a", "outboxpay_worker": ""}`, "no password for outboxpay_worker", nil},
		{"an unknown role", `{"outboxpay_api": "a", "outboxpay_worker": "b", "outboxpay_cdc": "c", "postgres": "d"}`, `"postgres"`, migrations.ErrUnknownRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), devRolesFile)
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadOrCreatePasswords(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestWithUserAndRedact(t *testing.T) {
	const admin = "postgres://postgres:superpw@127.0.0.1:5432/outboxpay?sslmode=disable"
	got, err := withUser(admin, "outboxpay_api", "rolepw")
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://outboxpay_api:rolepw@127.0.0.1:5432/outboxpay?sslmode=disable"; got != want {
		t.Errorf("withUser = %s, want %s", got, want)
	}
	if r := redactDatabaseURL(got); strings.Contains(r, "rolepw") || !strings.Contains(r, "outboxpay_api") {
		t.Errorf("redactDatabaseURL = %s", r)
	}
	if _, err := withUser("postgres://u:se%zzcret@h/db", "r", "p"); err == nil || strings.Contains(err.Error(), "se%zzcret") {
		t.Errorf("withUser of a bad URL: %v", err)
	}
	if r := redactDatabaseURL("postgres://u:se%zzcret@h/db"); strings.Contains(r, "se%zzcret") {
		t.Errorf("redactDatabaseURL of a bad URL = %s", r)
	}
}

// migrate, as the superuser with DB_*_PASSWORD, creates the roles and lets
// log in exactly those whose password it was given; it never prints a
// password. It runs on a cluster of its own: role passwords belong to the
// cluster, and the other tests' roles must keep theirs.
func TestMigrateSetsRolePasswords(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	if err := cluster.CreateDatabase(t.Context(), "app", ""); err != nil {
		t.Fatal(err)
	}
	admin := cluster.URL("app")
	const apiPW, workerPW, operatorPW = "api-secret-1234", "worker-secret-5678", "operator-secret-9012"
	code, stdout, stderr := run(t, []string{"DATABASE_URL=" + admin, "DB_API_PASSWORD=" + apiPW, "DB_WORKER_PASSWORD=" + workerPW,
		"DB_OPERATOR_PASSWORD=" + operatorPW}, "migrate")
	if code != 0 || !strings.Contains(stderr, "database roles can log in") {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	for _, secret := range []string{apiPW, workerPW, operatorPW} {
		if strings.Contains(stdout+stderr, secret) {
			t.Error("migrate printed a role password")
		}
	}

	for _, tc := range []struct {
		role, password string
		login          bool
	}{
		{migrations.RoleAPI, apiPW, true},
		{migrations.RoleWorker, workerPW, true},
		{migrations.RoleOperator, operatorPW, true},
		{migrations.RoleAPI, "wrong", false},
		{migrations.RoleCDC, "anything", false}, // no DB_CDC_PASSWORD: still NOLOGIN
	} {
		u, err := withUser(admin, tc.role, tc.password)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("postgres", u)
		if err != nil {
			t.Fatal(err)
		}
		err = db.PingContext(t.Context())
		db.Close()
		if (err == nil) != tc.login {
			t.Errorf("%s with password %q: login error %v, want login=%v", tc.role, tc.password, err, tc.login)
		}
	}
}
