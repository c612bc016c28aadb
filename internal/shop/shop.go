// Package shop is the payments domain: balances, products, orders and
// payments, kept in Postgres. A payment commits its balance debit, the payment,
// the order status and its outbox events in one transaction.
package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/lib/pq"
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
	// ErrTimeout is work the database cancelled for taking too long (the
	// role's statement_timeout or idle_in_transaction_session_timeout):
	// nothing of it remains, and the caller may retry.
	ErrTimeout = errors.New("the database cancelled the work for taking too long")
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

	mu  sync.Mutex
	pay *payStmts // Pay's prepared statements, nil until the first Pay prepares them
}

// New returns a Service on db (a lib/pq connection pool).
func New(db *sql.DB) *Service { return &Service{db: db} }

// inTx runs fn in a transaction, committing if it returns nil. Its errors
// pass through cancelled: if ctx ended, the error wraps ctx.Err() too (when
// ctx ends, database/sql rolls the transaction back on its own, so a
// failing Commit then means "cancelled", not a fault), and a statement the
// database cancelled wraps ErrTimeout. Either way nothing of fn remains.
func (s *Service) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return cancelled(ctx, fmt.Errorf("begin: %w", err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return cancelled(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return cancelled(ctx, fmt.Errorf("commit: %w", err))
	}
	return nil
}

// SQLSTATEs of work the server cancelled: query_canceled (statement_timeout,
// or the driver's cancel request when a context ends) and
// idle_in_transaction_session_timeout.
const (
	sqlstateQueryCanceled   = "57014"
	sqlstateIdleInTxTimeout = "25P03"
)

// cancelled returns err, wrapping also ctx.Err() if ctx has ended, or
// ErrTimeout if the database cancelled the work on its own.
func cancelled(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrTimeout) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w: %w", err, cerr)
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && (pqErr.Code == sqlstateQueryCanceled || pqErr.Code == sqlstateIdleInTxTimeout) {
		return fmt.Errorf("%w: %w", err, ErrTimeout)
	}
	return err
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
