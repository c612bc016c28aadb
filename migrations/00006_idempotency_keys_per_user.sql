-- +goose Up
-- Idempotency keys belong to a user (Stripe's model): a key is unique per
-- (user_id, key), so one user's key neither blocks nor reveals another's.
-- user_id has been NOT NULL since 00001 (the user the payment acts for), so
-- existing rows need no backfill.
--
-- fingerprint identifies the request a key was first used for (the route and
-- a hash of its canonical form, see api's requestFingerprint); a replay with
-- another fingerprint is refused. Rows from before this migration have ''
-- and are matched by order_id instead.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (user_id, key);
ALTER TABLE idempotency_keys ADD COLUMN fingerprint text NOT NULL DEFAULT ''
    CHECK (length(fingerprint) <= 512);

-- The reconciler deletes keys older than IDEMPOTENCY_KEY_RETENTION in batches.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- The API inserts fingerprint with the key (its table-wide INSERT and SELECT
-- cover the new column) and never changes it. The worker (the reconciler's
-- retention) reads only what its DELETE's WHERE names, never the responses.
GRANT SELECT (user_id, key, created_at), DELETE ON idempotency_keys TO outboxpay_worker;

-- +goose Down
-- Fails if two users hold the same key, which only this migration allowed.
REVOKE ALL ON idempotency_keys FROM outboxpay_worker;
DROP INDEX idempotency_keys_created_at_idx;
ALTER TABLE idempotency_keys DROP COLUMN fingerprint;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (key);
