package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lib/pq"

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
//
// The transaction is two statements, each prepared once per pool
// connection (payStatements): one claims the key and does the payment, one
// writes the outbox rows and stores the response.
func (s *Service) Pay(ctx context.Context, req PayRequest) (p Payment, replayed bool, err error) {
	if len(req.IdempotencyKey) > MaxIdempotencyKeyLen {
		return Payment{}, false, invalid("an idempotency key may be at most %d characters", MaxIdempotencyKeyLen)
	}
	if len(req.Fingerprint) > MaxFingerprintLen {
		return Payment{}, false, invalid("a request fingerprint may be at most %d bytes", MaxFingerprintLen)
	}
	stmts, err := s.payStatements(ctx)
	if err != nil {
		return Payment{}, false, cancelled(ctx, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var claimed bool
		claimed, p, err = pay(ctx, tx, stmts, req)
		if err != nil {
			return err
		}
		if !claimed {
			replayed = true
			p, err = storedPayment(ctx, tx, req)
		}
		return err
	})
	if err != nil {
		return Payment{}, false, err
	}
	return p, replayed, nil
}

// The payment statement. It claims the user's idempotency key when there is
// one (an insert of a key another request holds and has not committed yet
// waits for that request, so concurrent duplicates see its outcome) and, if
// it claimed it or there is none, locks the order and, if it is the user's
// and ORDERED, debits the balance if it covers the total, inserts the
// payment and marks the order PAID: each step happens only if the one
// before did. Its one row tells which steps happened, so the caller can
// name what stopped it, and carries the order's lines once it is paid.
// Parameters: $1 order, $2 user, and with a key $3 key, $4 fingerprint.
const (
	payClaimKey = `claim AS (
		INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, response)
		VALUES ($3, $2, $1, $4, '{}') ON CONFLICT (user_id, key) DO NOTHING
		RETURNING 1),
	`
	payBody = `o AS (
		SELECT user_id, status, total_price FROM orders
		WHERE id = $1 %s
		FOR UPDATE),
	u AS (
		UPDATE users SET balance = users.balance - o.total_price, updated_at = now()
		FROM o
		WHERE users.id = $2 AND o.user_id = $2 AND o.status = '` + OrderOrdered + `'
			AND users.balance >= o.total_price
		RETURNING users.balance),
	p AS (
		INSERT INTO payments (order_id, user_id, amount, status)
		SELECT $1, $2, o.total_price, '` + PaymentPaid + `' FROM o, u
		RETURNING id, paid_at),
	paid AS (
		UPDATE orders SET status = '` + OrderPaid + `', updated_at = now()
		FROM p WHERE orders.id = $1
		RETURNING 1)
	SELECT %s, o.user_id, o.status, o.total_price, u.balance, p.id, p.paid_at,
		(SELECT array_agg(product_detail_id ORDER BY product_detail_id) FROM order_items WHERE order_id = $1 AND p.id IS NOT NULL),
		(SELECT array_agg(quantity ORDER BY product_detail_id) FROM order_items WHERE order_id = $1 AND p.id IS NOT NULL)
	FROM (VALUES (1)) AS one
	LEFT JOIN o ON true LEFT JOIN u ON true LEFT JOIN p ON true`
)

// The outbox rows of a payment, and with a key also the stored response:
// parameters from $11 on are user, key and response.
var payEventsAndKeySQL = "WITH events AS (" + outbox.InsertSQL(2) + ")\n" +
	`UPDATE idempotency_keys SET response = $13 WHERE user_id = $11 AND key = $12`

// payStmts are Pay's statements, prepared on the pool.
type payStmts struct {
	withKey, withoutKey  *sql.Stmt // the payment statement
	events, eventsAndKey *sql.Stmt // the outbox rows (and the response)
}

// payStatements prepares Pay's statements the first time it succeeds and
// returns them. A *sql.Stmt of the pool is prepared again on each
// connection the first time a transaction there uses it (tx.StmtContext)
// and kept for the connection's life: after that a statement is one round
// trip (Bind, Execute, Sync) and no parse, where an ad-hoc query with
// arguments is two (lib/pq sends Parse, Describe, Sync first) and a parse
// and plan every time. It runs before Pay's transaction begins, so it never
// waits for a second connection while holding one.
func (s *Service) payStatements(ctx context.Context) (*payStmts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pay != nil {
		return s.pay, nil
	}
	var st payStmts
	for _, q := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.withKey, "WITH " + payClaimKey + fmt.Sprintf(payBody, "AND EXISTS (SELECT FROM claim)", "EXISTS (SELECT FROM claim)")},
		{&st.withoutKey, "WITH " + fmt.Sprintf(payBody, "", "true")},
		{&st.events, outbox.InsertSQL(2)},
		{&st.eventsAndKey, payEventsAndKeySQL},
	} {
		stmt, err := s.db.PrepareContext(ctx, q.query)
		if err != nil {
			for _, done := range []*sql.Stmt{st.withKey, st.withoutKey, st.events} {
				if done != nil {
					_ = done.Close()
				}
			}
			return nil, fmt.Errorf("prepare the payment statements: %w", err)
		}
		*q.dst = stmt
	}
	s.pay = &st
	return s.pay, nil
}

// pay runs the payment statement and then writes the outbox rows (and the
// response, with a key). claimed is false, and nothing done, when the user
// already holds the key.
func pay(ctx context.Context, tx *sql.Tx, stmts *payStmts, req PayRequest) (claimed bool, _ Payment, _ error) {
	stmt, args := stmts.withoutKey, []any{req.OrderID, req.UserID}
	if req.IdempotencyKey != "" {
		stmt, args = stmts.withKey, append(args, req.IdempotencyKey, req.fingerprint())
	}
	var (
		owner, total, balance, paymentID sql.NullInt64
		status                           sql.NullString
		paidAt                           sql.NullTime
		details, quantities              []int64
	)
	err := tx.StmtContext(ctx, stmt).QueryRowContext(ctx, args...).Scan(&claimed, &owner, &status, &total, &balance, &paymentID, &paidAt,
		pq.Array(&details), pq.Array(&quantities))
	if err != nil {
		return false, Payment{}, fmt.Errorf("pay order %d: %w", req.OrderID, err)
	}
	switch {
	case !claimed:
		return false, Payment{}, nil
	// Another user's order is, to this user, one that does not exist.
	case !owner.Valid || owner.Int64 != req.UserID:
		return true, Payment{}, orderNotFound(req.OrderID)
	case status.String != OrderOrdered:
		return true, Payment{}, fmt.Errorf("order %d is %s: %w", req.OrderID, status.String, ErrOrderNotPayable)
	case !balance.Valid:
		// The message is an API answer: it names no balance and no amount.
		return true, Payment{}, fmt.Errorf("the balance does not cover the order total: %w", ErrInsufficientBalance)
	case !paymentID.Valid || !paidAt.Valid || len(details) != len(quantities):
		return true, Payment{}, fmt.Errorf("pay order %d: the payment statement debited but returned no payment", req.OrderID)
	}
	p := Payment{
		PaymentID: paymentID.Int64, OrderID: req.OrderID, UserID: req.UserID, Amount: total.Int64,
		BalanceAfter: balance.Int64, Status: PaymentPaid, PaidAt: paidAt.Time.UTC(),
	}
	items := make([]event.Item, len(details))
	for i := range details {
		items[i] = event.Item{ProductDetailID: details[i], Quantity: int(quantities[i])}
	}
	completed, err := event.NewPaymentCompleted(event.PaymentCompleted{
		PaymentID: p.PaymentID, OrderID: p.OrderID, UserID: p.UserID,
		Amount: p.Amount, BalanceAfter: p.BalanceAfter, PaidAt: p.PaidAt,
	})
	if err != nil {
		return true, Payment{}, err
	}
	orderPaid, err := event.NewOrderPaid(event.OrderPaid{OrderID: p.OrderID, UserID: p.UserID, Items: items})
	if err != nil {
		return true, Payment{}, err
	}

	stmt, args = stmts.events, outbox.InsertArgs(completed, orderPaid)
	if req.IdempotencyKey != "" {
		response, err := json.Marshal(p)
		if err != nil {
			return true, Payment{}, fmt.Errorf("encode response: %w", err)
		}
		stmt, args = stmts.eventsAndKey, append(args, req.UserID, req.IdempotencyKey, response)
	}
	if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
		return true, Payment{}, fmt.Errorf("insert the outbox rows of order %d's payment: %w", req.OrderID, err)
	}
	return true, p, nil
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
