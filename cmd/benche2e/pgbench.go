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
// idempotency key, statement for statement: one statement claims the key,
// locks the order, debits the balance, inserts the payment, marks the order
// PAID and reads its lines (the bench's orders have one); one inserts the
// PaymentCompleted and OrderPaid outbox rows, with the payloads the
// consumers read, and stores the response. shop.Pay prepares both once per
// connection, as pgbench -M prepared does. Client c's k-th transaction pays
// order first + c*perClient + k, of user the same number: k is a variable
// of the client, kept across its transactions.
func paymentScript(first, perClient int64) string {
	return fmt.Sprintf(`\set o %d + :client_id * %d + :k
\set k :k + 1
BEGIN;
WITH claim AS (INSERT INTO idempotency_keys (key, user_id, order_id, fingerprint, response) VALUES ('pgbench-' || :o, :o, :o, 'pay order ' || :o, '{}') ON CONFLICT (user_id, key) DO NOTHING RETURNING 1), o AS (SELECT user_id, status, total_price FROM orders WHERE id = :o AND EXISTS (SELECT FROM claim) FOR UPDATE), u AS (UPDATE users SET balance = users.balance - o.total_price, updated_at = now() FROM o WHERE users.id = :o AND o.user_id = :o AND o.status = 'ORDERED' AND users.balance >= o.total_price RETURNING users.balance), p AS (INSERT INTO payments (order_id, user_id, amount, status) SELECT :o, :o, o.total_price, 'PAID' FROM o, u RETURNING id, paid_at), paid AS (UPDATE orders SET status = 'PAID', updated_at = now() FROM p WHERE orders.id = :o RETURNING 1) SELECT EXISTS (SELECT FROM claim) AS claimed, o.user_id, o.status, o.total_price AS amount, u.balance AS balance_after, p.id AS payment_id, p.paid_at, (SELECT array_agg(product_detail_id ORDER BY product_detail_id) FROM order_items WHERE order_id = :o AND p.id IS NOT NULL) AS product_detail_ids, (SELECT array_agg(quantity ORDER BY product_detail_id) FROM order_items WHERE order_id = :o AND p.id IS NOT NULL) AS quantities FROM (VALUES (1)) AS one LEFT JOIN o ON true LEFT JOIN u ON true LEFT JOIN p ON true \gset
WITH events AS (INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'payment', CAST(:o AS text), 'PaymentCompleted', jsonb_build_object('paymentId', CAST(:payment_id AS bigint), 'orderId', CAST(:o AS bigint), 'userId', CAST(:o AS bigint), 'amount', CAST(:amount AS bigint), 'balanceAfter', CAST(:balance_after AS bigint), 'paidAt', CAST(:paid_at AS timestamptz))), (gen_random_uuid(), 'order', CAST(:o AS text), 'OrderPaid', jsonb_build_object('orderId', CAST(:o AS bigint), 'userId', CAST(:o AS bigint), 'items', jsonb_build_array(jsonb_build_object('productDetailId', (CAST(:product_detail_ids AS bigint[]))[1], 'quantity', (CAST(:quantities AS int[]))[1]))))) UPDATE idempotency_keys SET response = jsonb_build_object('paymentId', CAST(:payment_id AS bigint), 'orderId', CAST(:o AS bigint), 'status', 'PAID') WHERE user_id = :o AND key = 'pgbench-' || :o;
END;
`, first, perClient)
}

// pgbench runs the payment script for o.sqlFor with o.sqlClients clients
// (prepared statements, as shop.Pay runs them) as the superuser, and checks that every
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
		Protocol: "prepared",
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
