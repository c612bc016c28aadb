// Package shop is the payments domain: balances, products, orders and
// payments, kept in Postgres. A payment commits its balance debit, the payment,
// the order status and its outbox events in one transaction.
package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Conditions callers branch on. Errors returned by Service wrap one of them
// with what was being done, e.g. "order 7: not found".
var (
	ErrInvalid             = errors.New("invalid input")
	ErrNotFound            = errors.New("not found")
	ErrInsufficientBalance = errors.New("insufficient balance")
	ErrBalanceLimit        = errors.New("balance limit exceeded")
	ErrOutOfStock          = errors.New("out of stock")
	ErrOrderNotPayable     = errors.New("order cannot be paid")
	ErrIdempotencyKeyReuse = errors.New("idempotency key reused with a different request")
)

// Limits on what a single request may ask for.
const (
	MaxChargeAmount      = 1_000_000_000     // per charge, in the smallest currency unit
	MaxBalance           = 1_000_000_000_000 // per user, for charges only: a refund always lands
	MaxOrderLines        = 50
	MaxQuantity          = 1_000 // per order line
	MaxIdempotencyKeyLen = 255
	MaxFingerprintLen    = 512 // bytes of PayRequest.Fingerprint (a CHECK of the table)
)

// Service runs the domain's use cases against Postgres.
type Service struct {
	db *sql.DB
}

// New returns a Service on db (a lib/pq connection pool).
func New(db *sql.DB) *Service { return &Service{db: db} }

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Service) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

// UserNotFound is the error for a user that does not exist, or that the
// caller may not see: the two are indistinguishable.
func UserNotFound(userID int64) error { return fmt.Errorf("user %d: %w", userID, ErrNotFound) }

// orderNotFound is UserNotFound's counterpart for orders.
func orderNotFound(orderID int64) error { return fmt.Errorf("order %d: %w", orderID, ErrNotFound) }

// userExists reports ErrNotFound for a user id that has no row.
func userExists(ctx context.Context, tx *sql.Tx, userID int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = $1`, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return UserNotFound(userID)
	}
	if err != nil {
		return fmt.Errorf("look up user %d: %w", userID, err)
	}
	return nil
}
