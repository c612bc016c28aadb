package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Payment statuses.
const (
	PaymentPaid     = "PAID"
	PaymentRefunded = "REFUNDED"
)

// PayRequest asks, for user UserID, to pay their order OrderID from their
// balance; another user's order is ErrNotFound, as one that does not
// exist. A non-empty
// IdempotencyKey makes a retry of the same request return the first result.
// Keys are scoped to UserID: another user's key of the same text is another
// key.
type PayRequest struct {
	OrderID        int64
	UserID         int64
	IdempotencyKey string
	// Fingerprint identifies the request the key stands for (at most
	// MaxFingerprintLen bytes); a later request with the same key and
	// another fingerprint fails with ErrIdempotencyKeyReuse. Empty means
	// "pay order OrderID", for callers without a wire request.
	Fingerprint string
}

// fingerprint is the request's fingerprint, defaulting to one naming the
// order.
func (r PayRequest) fingerprint() string {
	if r.Fingerprint != "" {
		return r.Fingerprint
	}
	return fmt.Sprintf("pay order %d", r.OrderID)
}

// Payment is a captured payment.
type Payment struct {
	PaymentID    int64     `json:"paymentId"`
	OrderID      int64     `json:"orderId"`
	UserID       int64     `json:"userId"`
	Amount       int64     `json:"amount"`
	BalanceAfter int64     `json:"balanceAfter"`
	Status       string    `json:"status"`
	PaidAt       time.Time `json:"paidAt"`
}

// Pay pays an order from the user's balance. In one transaction it locks the
// order, debits the balance, records the payment, marks the order PAID and
// writes the PaymentCompleted and OrderPaid outbox rows; if any step fails,
// nothing of it remains.
//
// With an idempotency key, the first request of the user to commit stores its
// response; a request of the same user with the same key and fingerprint
// returns that response (replayed is true) and charges nothing, also when
// both run at once. Keys are forgotten once the reconciler's retention
// deletes them (DeleteExpiredIdempotencyKeys).
func (s *Service) Pay(ctx context.Context, req PayRequest) (p Payment, replayed bool, err error) {
	if len(req.IdempotencyKey) > MaxIdempotencyKeyLen {
		return Payment{}, false, invalid("an idempotency key may be at most %d characters", MaxIdempotencyKeyLen)
	}
	if len(req.Fingerprint) > MaxFingerprintLen {
		return Payment{}, false, invalid("a request fingerprint may be at most %d bytes", MaxFingerprintLen)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if req.IdempotencyKey != "" {
			claimed, err := claimKey(ctx, tx, req)
			if err != nil {
				return err
			}
			if !claimed {
				replayed = true
				p, err = storedPayment(ctx, tx, req)
				return err
			}
		}
		if p, err = pay(ctx, tx, req); err != nil {
			return err
		}
		if req.IdempotencyKey != "" {
			return storeResponse(ctx, tx, req, p)
		}
		return nil
	})
	if err != nil {
		return Payment{}, false, err
	}
	return p, replayed, nil
}

func pay(ctx context.Context, tx *sql.Tx, req PayRequest) (Payment, error) {
	p := Payment{OrderID: req.OrderID, UserID: req.UserID, Status: PaymentPaid}
	var owner int64
	var status string
	err := tx.QueryRowContext(ctx,
		`SELECT user_id, status, total_price FROM orders WHERE id = $1 FOR UPDATE`, req.OrderID).
		Scan(&owner, &status, &p.Amount)
	// Another user's order is, to this user, one that does not exist.
	if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != req.UserID) {
		return Payment{}, orderNotFound(req.OrderID)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("lock order %d: %w", req.OrderID, err)
	}
	if status != OrderOrdered {
		return Payment{}, fmt.Errorf("order %d is %s: %w", req.OrderID, status, ErrOrderNotPayable)
	}

	err = tx.QueryRowContext(ctx,
		`UPDATE users SET balance = balance - $2, updated_at = now()
		 WHERE id = $1 AND balance >= $2 RETURNING balance`, req.UserID, p.Amount).Scan(&p.BalanceAfter)
	if errors.Is(err, sql.ErrNoRows) {
		// The message is an API answer: it names no balance and no amount.
		return Payment{}, fmt.Errorf("the balance does not cover the order total: %w", ErrInsufficientBalance)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("debit user %d: %w", req.UserID, err)
	}

	err = tx.QueryRowContext(ctx,
		`INSERT INTO payments (order_id, user_id, amount, status) VALUES ($1, $2, $3, $4)
		 RETURNING id, paid_at`, req.OrderID, req.UserID, p.Amount, PaymentPaid).Scan(&p.PaymentID, &p.PaidAt)
	if err != nil {
		return Payment{}, fmt.Errorf("insert payment of order %d: %w", req.OrderID, err)
	}
	p.PaidAt = p.PaidAt.UTC()

	if _, err := tx.ExecContext(ctx,
		`UPDATE orders SET status = $2, updated_at = now() WHERE id = $1`, req.OrderID, OrderPaid); err != nil {
		return Payment{}, fmt.Errorf("mark order %d paid: %w", req.OrderID, err)
	}

	lines, err := orderLines(ctx, tx, req.OrderID)
	if err != nil {
		return Payment{}, err
	}
	items := make([]event.Item, len(lines))
	for i, l := range lines {
		items[i] = event.Item{ProductDetailID: l.ProductDetailID, Quantity: l.Quantity}
	}
	completed, err := event.NewPaymentCompleted(event.PaymentCompleted{
		PaymentID: p.PaymentID, OrderID: p.OrderID, UserID: p.UserID,
		Amount: p.Amount, BalanceAfter: p.BalanceAfter, PaidAt: p.PaidAt,
	})
	if err != nil {
		return Payment{}, err
	}
	orderPaid, err := event.NewOrderPaid(event.OrderPaid{OrderID: p.OrderID, UserID: p.UserID, Items: items})
	if err != nil {
		return Payment{}, err
	}
	if err := outbox.Insert(ctx, tx, completed, orderPaid); err != nil {
		return Payment{}, err
	}
	return p, nil
}

// claimKey inserts the user's idempotency key for this request. It reports
// false when the user already holds the key; if the request holding it has
// not committed yet, the insert waits for it, so concurrent duplicates see
// its outcome.
func claimKey(ctx context.Context, tx *sql.Tx, req PayRequest) (bool, error) {
	res, err := tx.ExecContext(ctx,
		`INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, response)
		 VALUES ($1, $2, $3, $4, '{}') ON CONFLICT (user_id, key) DO NOTHING`,
		req.IdempotencyKey, req.UserID, req.OrderID, req.fingerprint())
	if err != nil {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	return n == 1, nil
}

// storedPayment returns the response stored under the user's key, if the key
// was used for the same request. Keys stored before fingerprints existed
// (an empty fingerprint) match on the order.
func storedPayment(ctx context.Context, tx *sql.Tx, req PayRequest) (Payment, error) {
	var orderID int64
	var fingerprint string
	var response []byte
	err := tx.QueryRowContext(ctx,
		`SELECT order_id, fingerprint, response FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
		req.UserID, req.IdempotencyKey).Scan(&orderID, &fingerprint, &response)
	if err != nil {
		return Payment{}, fmt.Errorf("read idempotency key: %w", err)
	}
	same := fingerprint == req.fingerprint()
	if fingerprint == "" {
		same = orderID == req.OrderID
	}
	if !same {
		// The detail names nothing of the first request.
		return Payment{}, fmt.Errorf("idempotency key %q: %w", req.IdempotencyKey, ErrIdempotencyKeyReuse)
	}
	var p Payment
	if err := json.Unmarshal(response, &p); err != nil {
		return Payment{}, fmt.Errorf("decode stored response: %w", err)
	}
	return p, nil
}

func storeResponse(ctx context.Context, tx *sql.Tx, req PayRequest, p Payment) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE idempotency_keys SET response = $3 WHERE user_id = $1 AND key = $2`,
		req.UserID, req.IdempotencyKey, b); err != nil {
		return fmt.Errorf("store response for idempotency key: %w", err)
	}
	return nil
}

// DeleteExpiredIdempotencyKeys deletes at most limit idempotency keys created
// more than olderThan ago (on the database's clock) and returns how many it
// deleted; a request with a deleted key is a new request. Callers repeat it
// until it deletes fewer than limit, so no statement holds many locks. A key
// of a payment still in flight is not committed, so not seen. db needs
// DELETE and SELECT (user_id, key, created_at) on idempotency_keys, nothing
// more (no UPDATE, so no FOR UPDATE either).
func DeleteExpiredIdempotencyKeys(ctx context.Context, db outbox.Execer, olderThan time.Duration, limit int) (int64, error) {
	res, err := db.ExecContext(ctx, `
		DELETE FROM idempotency_keys WHERE (user_id, key) IN (
			SELECT user_id, key FROM idempotency_keys
			WHERE created_at < now() - $1::bigint * interval '1 microsecond'
			LIMIT $2)`, olderThan.Microseconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return n, nil
}
