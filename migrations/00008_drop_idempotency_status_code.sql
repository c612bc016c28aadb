-- +goose Up
-- idempotency_keys.status_code was written (0 when a key is claimed, 201
-- with the stored response) and never read: a stored response is always a
-- 201 payment. Dropping the column also drops the API's UPDATE privilege on
-- it; the API keeps UPDATE (response).
ALTER TABLE idempotency_keys DROP COLUMN status_code;

-- +goose Down
-- Every committed key holds a payment's response, which was a 201.
ALTER TABLE idempotency_keys ADD COLUMN status_code integer NOT NULL DEFAULT 201;
ALTER TABLE idempotency_keys ALTER COLUMN status_code DROP DEFAULT;
GRANT UPDATE (status_code) ON idempotency_keys TO outboxpay_api;
