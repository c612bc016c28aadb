-- +goose Up
-- The reconciler's retention deletes COMPLETE rows older than RECONCILE_RETENTION
-- in batches; without this index each batch scans the whole table.
CREATE INDEX outbox_completed_at_idx ON outbox (completed_at) WHERE status = 'COMPLETE';

-- +goose Down
DROP INDEX outbox_completed_at_idx;
