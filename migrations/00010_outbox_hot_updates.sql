-- +goose Up
-- Less Postgres work per event. Each outbox row is inserted once and
-- updated twice (outbox-tracker: PUBLISHED; the handling group: COMPLETE).
-- An update can be HOT (a heap-only tuple: no new index entries, the old
-- version pruned within its page) only when no column any index mentions,
-- in its key or in its predicate, changes, and the page has room.
--
-- * The unfinished rows are indexed by created_at where completed_at IS
--   NULL instead of by (status, created_at) where status <> 'COMPLETE'.
--   No index mentions status, published_at or updated_at any more, so the
--   PUBLISHED mark is HOT. The reconciler's and lag exporter's queries on
--   unfinished rows say completed_at IS NULL (set, with status COMPLETE,
--   by the handler's MarkHandled and by nothing else) to use it.
-- * Retention's index is on completed_at where it is set, not where
--   status = 'COMPLETE' (completed_at < x implies it is set).
-- * outbox_aggregate_idx goes: no query looks rows up by aggregate (the
--   API lists an order's events by payload ->> 'orderId', consumers by id),
--   and every insert and non-HOT update wrote an entry into it.
-- * fillfactor leaves room in each page for the new versions of its rows:
--   the outbox's PUBLISHED and the first COMPLETE, and the balance and
--   stock rows that every payment and fulfilment update in place (users,
--   product_details: no index mentions balance, stock or updated_at). It
--   applies to pages written from now on.
--
-- The indexes are built in the migration's transaction (CREATE INDEX
-- CONCURRENTLY cannot run in one): on a large outbox, run retention first.
ALTER TABLE outbox SET (fillfactor = 70);
ALTER TABLE users SET (fillfactor = 80);
ALTER TABLE product_details SET (fillfactor = 80);

DROP INDEX outbox_unfinished_idx;
CREATE INDEX outbox_unfinished_idx ON outbox (created_at) WHERE completed_at IS NULL;
DROP INDEX outbox_completed_at_idx;
CREATE INDEX outbox_completed_at_idx ON outbox (completed_at) WHERE completed_at IS NOT NULL;
DROP INDEX outbox_aggregate_idx;

-- +goose Down
CREATE INDEX outbox_aggregate_idx ON outbox (aggregatetype, aggregateid);
DROP INDEX outbox_completed_at_idx;
CREATE INDEX outbox_completed_at_idx ON outbox (completed_at) WHERE status = 'COMPLETE';
DROP INDEX outbox_unfinished_idx;
CREATE INDEX outbox_unfinished_idx ON outbox (status, created_at) WHERE status <> 'COMPLETE';
ALTER TABLE product_details RESET (fillfactor);
ALTER TABLE users RESET (fillfactor);
ALTER TABLE outbox RESET (fillfactor);
