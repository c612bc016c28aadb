package shop

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

// The race behind `commit: sql: transaction has already been committed or
// rolled back`: the client gives up after the transaction's last statement;
// database/sql rolls the transaction back on its own, then Commit fails. The
// error must say "cancelled", and nothing of the transaction may remain.
func TestInTxCancelledBeforeCommit(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	apiDB, _ := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	s := New(apiDB)
	user := pgtest.NewUser(t, db, 1000)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET balance = 0 WHERE id = $1`, user); err != nil {
			return err
		}
		cancel()
		// Wait until database/sql has rolled the transaction back.
		eventually.True(t, 10*time.Second, "rollback on cancel", func() (bool, error) {
			_, err := tx.ExecContext(context.Background(), `SELECT 1`)
			return errors.Is(err, sql.ErrTxDone), nil
		})
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("inTx = %v, want an error wrapping context.Canceled", err)
	}
	var balance int64
	if err := db.QueryRow(`SELECT balance FROM users WHERE id = $1`, user).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if balance != 1000 {
		t.Fatalf("balance = %d after a cancelled transaction, want 1000", balance)
	}
}
