package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Balance is what a user can spend, in the smallest currency unit.
type Balance struct {
	UserID  int64 `json:"userId"`
	Balance int64 `json:"balance"`
}

// Balance returns the balance of a user.
func (s *Service) Balance(ctx context.Context, userID int64) (Balance, error) {
	b := Balance{UserID: userID}
	err := s.db.QueryRowContext(ctx, `SELECT balance FROM users WHERE id = $1`, userID).Scan(&b.Balance)
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{}, UserNotFound(userID)
	}
	if err != nil {
		return Balance{}, cancelled(ctx, fmt.Errorf("read balance of user %d: %w", userID, err))
	}
	return b, nil
}

// Charge adds amount to a user's balance.
func (s *Service) Charge(ctx context.Context, userID, amount int64) (Balance, error) {
	if amount < 1 || amount > MaxChargeAmount {
		return Balance{}, invalid("amount must be between 1 and %d", MaxChargeAmount)
	}
	b := Balance{UserID: userID}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			`UPDATE users SET balance = balance + $2, updated_at = now()
			 WHERE id = $1 AND balance + $2 <= $3 RETURNING balance`,
			userID, amount, int64(MaxBalance)).Scan(&b.Balance)
		if errors.Is(err, sql.ErrNoRows) {
			if err := userExists(ctx, tx, userID); err != nil {
				return err
			}
			return fmt.Errorf("a balance may not exceed %d: %w", int64(MaxBalance), ErrBalanceLimit)
		}
		if err != nil {
			return fmt.Errorf("credit user %d: %w", userID, err)
		}
		return nil
	})
	if err != nil {
		return Balance{}, err
	}
	return b, nil
}
