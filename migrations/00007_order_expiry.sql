-- +goose Up
-- Unpaid orders expire: the reconciler marks ORDERED orders older than
-- ORDER_EXPIRY as EXPIRED (outboxpay_worker already has UPDATE (status,
-- updated_at) on orders). Stock is taken only when an order is paid, so an
-- expiry releases nothing; an EXPIRED order cannot be paid.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('ORDERED', 'PAID', 'CANCELLED', 'EXPIRED'));
-- The expiry's batches look up the oldest ORDERED orders.
CREATE INDEX orders_ordered_created_at_idx ON orders (created_at) WHERE status = 'ORDERED';

-- +goose Down
DROP INDEX orders_ordered_created_at_idx;
UPDATE orders SET status = 'CANCELLED', updated_at = now() WHERE status = 'EXPIRED';
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('ORDERED', 'PAID', 'CANCELLED'));
