package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// 00006 keeps the keys it finds (user_id was always set), scopes them to
// their user, and goes back down while no two users share a key.
func TestIdempotencyKeysPerUserUpgrade(t *testing.T) {
	db, p := upgradeDB(t, "upgrade_00006")
	exec := func(query string) error {
		_, err := db.ExecContext(t.Context(), query)
		return err
	}
	if _, err := p.UpTo(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	if err := exec(`INSERT INTO idempotency_keys (key, user_id, order_id, status_code, response) VALUES ('k', 5, 1, 201, '{"paymentId": 1}')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 6); err != nil {
		t.Fatal(err)
	}
	var user int64
	var fingerprint, response string
	if err := db.QueryRow(`SELECT user_id, fingerprint, response::text FROM idempotency_keys WHERE key = 'k'`).
		Scan(&user, &fingerprint, &response); err != nil || user != 5 || fingerprint != "" || response != `{"paymentId": 1}` {
		t.Fatalf("kept key: user %d, fingerprint %q, response %s (%v)", user, fingerprint, response, err)
	}
	if err := exec(`INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, status_code, response) VALUES ('k', 6, 2, 'f', 201, '{}')`); err != nil {
		t.Errorf("another user's key of the same text: %v", err)
	}
	if err := exec(`INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, status_code, response) VALUES ('k', 5, 3, 'f', 201, '{}')`); err == nil {
		t.Error("the same user's key stored twice")
	}
	if err := exec(`DELETE FROM idempotency_keys WHERE user_id = 6`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(t.Context(), 5); err != nil {
		t.Fatalf("down to 5: %v", err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

// 00008 drops idempotency_keys.status_code, which nothing read, keeping the
// keys and the API's UPDATE (response); down brings the column back as the
// 201 every stored response was.
func TestIdempotencyStatusCodeDropped(t *testing.T) {
	db, p := upgradeDB(t, "upgrade_00008")
	hasColumn := func() bool {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns
			WHERE table_name = 'idempotency_keys' AND column_name = 'status_code'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if _, err := p.UpTo(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), `INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, status_code, response)
		VALUES ('k', 5, 1, 'f', 201, '{"paymentId": 1}')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 8); err != nil {
		t.Fatal(err)
	}
	if hasColumn() {
		t.Error("status_code still there after 00008")
	}
	var response string
	if err := db.QueryRow(`SELECT response::text FROM idempotency_keys WHERE user_id = 5 AND key = 'k'`).Scan(&response); err != nil || response != `{"paymentId": 1}` {
		t.Errorf("kept key: response %s (%v)", response, err)
	}
	var canUpdate bool
	if err := db.QueryRow(`SELECT has_column_privilege('outboxpay_api', 'idempotency_keys', 'response', 'UPDATE')`).Scan(&canUpdate); err != nil || !canUpdate {
		t.Errorf("the API may update response: %v (%v)", canUpdate, err)
	}

	if _, err := p.DownTo(t.Context(), 7); err != nil {
		t.Fatalf("down to 7: %v", err)
	}
	var code int
	if err := db.QueryRow(`SELECT status_code FROM idempotency_keys WHERE key = 'k'`).Scan(&code); err != nil || code != 201 {
		t.Errorf("status_code after down: %d (%v), want 201", code, err)
	}
	if err := db.QueryRow(`SELECT has_column_privilege('outboxpay_api', 'idempotency_keys', 'status_code', 'UPDATE')`).Scan(&canUpdate); err != nil || !canUpdate {
		t.Errorf("after down the API may update status_code: %v (%v)", canUpdate, err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if hasColumn() {
		t.Error("status_code back after up again")
	}
}

// 00011 keeps the outbox's rows and lets them be PARKED or DISCARDED; down
// goes back once no row is in either status.
func TestOperatorConsoleUpgrade(t *testing.T) {
	db, p := upgradeDB(t, "upgrade_00011")
	exec := func(query string) error {
		_, err := db.ExecContext(t.Context(), query)
		return err
	}
	if _, err := p.UpTo(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	const row = `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, status)
		VALUES ('00000000-0000-0000-0000-00000000000%d', 'order', '1', 'OrderPaid', '{}', '%s')`
	if err := exec(fmt.Sprintf(row, 1, "FAILED")); err != nil {
		t.Fatal(err)
	}
	if err := exec(fmt.Sprintf(row, 2, "PARKED")); err == nil {
		t.Fatal("PARKED accepted before 00011")
	}
	if _, err := p.UpTo(t.Context(), 11); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"PARKED", "DISCARDED"} {
		if err := exec(fmt.Sprintf(row, i+2, s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if err := exec(fmt.Sprintf(row, 4, "LOST")); err == nil {
		t.Error("an unknown status accepted")
	}
	if err := exec(`INSERT INTO operator_audit (actor, action, target, reason, changed) VALUES ('ops', 'shred', 'x', 'r', true)`); err == nil {
		t.Error("an unknown audit action accepted")
	}
	if _, err := p.DownTo(t.Context(), 10); err == nil {
		t.Fatal("down to 10 with PARKED rows succeeded")
	}
	if err := exec(`DELETE FROM outbox WHERE status IN ('PARKED', 'DISCARDED')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(t.Context(), 10); err != nil {
		t.Fatalf("down to 10: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE status = 'FAILED'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d FAILED rows after down (%v), want 1", n, err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

// upgradeDB creates the database name in the test cluster, dropped when the
// test ends, and a goose provider of the migrations of this folder (as the
// package embeds them) on it, at no version yet.
func upgradeDB(t *testing.T, name string) (*sql.DB, *goose.Provider) {
	t.Helper()
	cluster := pgtest.Cluster(t)
	if err := cluster.CreateDatabase(t.Context(), name, ""); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", cluster.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if err := cluster.DropDatabase(context.Background(), name); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}
