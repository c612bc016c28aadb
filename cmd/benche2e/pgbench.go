package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/pgbenchrun"
)

// paymentScript is the payment transaction as shop.Pay runs it with an
// idempotency key, statement for statement (the key claimed, the order
// locked, the balance debited, the payment inserted, the order marked PAID,
// its line read (the bench's orders have one), the PaymentCompleted and OrderPaid outbox rows inserted
// with the payloads the consumers read, the response stored). Client c's
// k-th transaction pays order first + c*perClient + k, of user the same
// number: k is a variable of the client, kept across its transactions.
func paymentScript(first, perClient int64) string {
	return fmt.Sprintf(`\set o %d + :client_id * %d + :k
\set k :k + 1
BEGIN;
INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, response) VALUES ('pgbench-' || :o, :o, :o, 'pay order ' || :o, '{}') ON CONFLICT (user_id, key) DO NOTHING;
SELECT user_id, status, total_price AS amount FROM orders WHERE id = :o FOR UPDATE \gset
UPDATE users SET balance = balance - :amount, updated_at = now() WHERE id = :o AND balance >= :amount RETURNING balance AS balance_after \gset
INSERT INTO payments (order_id, user_id, amount, status) VALUES (:o, :o, :amount, 'PAID') RETURNING id AS payment_id, paid_at \gset
UPDATE orders SET status = 'PAID', updated_at = now() WHERE id = :o;
SELECT product_detail_id, quantity, unit_price FROM order_items WHERE order_id = :o ORDER BY product_detail_id \gset
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'payment', CAST(:o AS text), 'PaymentCompleted', jsonb_build_object('paymentId', CAST(:payment_id AS bigint), 'orderId', CAST(:o AS bigint), 'userId', CAST(:o AS bigint), 'amount', CAST(:amount AS bigint), 'balanceAfter', CAST(:balance_after AS bigint), 'paidAt', CAST(:paid_at AS timestamptz)));
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', CAST(:o AS text), 'OrderPaid', jsonb_build_object('orderId', CAST(:o AS bigint), 'userId', CAST(:o AS bigint), 'items', jsonb_build_array(jsonb_build_object('productDetailId', CAST(:product_detail_id AS bigint), 'quantity', CAST(:quantity AS int)))));
UPDATE idempotency_keys SET response = jsonb_build_object('paymentId', CAST(:payment_id AS bigint), 'orderId', CAST(:o AS bigint), 'status', 'PAID') WHERE user_id = :o AND key = 'pgbench-' || :o;
END;
`, first, perClient)
}

// pgbench runs the payment script for o.sqlFor with o.sqlClients clients
// (extended protocol, as lib/pq) as the superuser, and checks that every
// transaction it counts paid an order.
func (s *system) pgbench(ctx context.Context, o options, first, perClient int64, tmp string) (sqlResult, error) {
	script := filepath.Join(tmp, "payment.sql")
	if err := os.WriteFile(script, []byte(paymentScript(first, perClient)), 0o644); err != nil {
		return sqlResult{}, fmt.Errorf("write pgbench script: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.sqlFor+time.Minute)
	defer cancel()
	run, err := pgbenchrun.Run(ctx, pgbenchrun.Options{
		Program:  s.pgbenchPath(),
		URL:      s.url,
		Script:   script,
		Clients:  o.sqlClients,
		Duration: o.sqlFor.Round(time.Second),
		Protocol: "extended",
		Vars:     map[string]string{"k": "0"},
	})
	if err != nil {
		return sqlResult{}, err
	}
	var paid int
	last := first + perClient*int64(o.sqlClients) - 1
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE id BETWEEN $1 AND $2 AND status = 'PAID'`, first, last).Scan(&paid); err != nil {
		return sqlResult{}, fmt.Errorf("count pgbench's payments: %w", err)
	}
	if paid != run.Processed {
		return sqlResult{}, fmt.Errorf("pgbench counted %d transactions but %d of its orders are PAID:\n%s", run.Processed, paid, run.Output)
	}
	return sqlResult{clients: o.sqlClients, duration: o.sqlFor, tps: run.TPS, payments: paid, latency: run.Latency}, nil
}
