-- +goose Up
-- Least-privilege roles, one per component. Roles belong to the cluster, the
-- grants to this database. The roles are created NOLOGIN and without a
-- password; SetRolePasswords (run by `outboxpay migrate` when DB_*_PASSWORD
-- are set, and by `dev`) gives them LOGIN and a password.
--
--   outboxpay_api     the HTTP API (internal/shop, api/):
--                     users SELECT, UPDATE (balance, updated_at);
--                     products, product_details SELECT;
--                     orders SELECT, INSERT, UPDATE (status, updated_at);
--                     order_items SELECT, INSERT; payments SELECT, INSERT;
--                     idempotency_keys SELECT, INSERT, UPDATE (status_code, response);
--                     outbox SELECT, INSERT;
--                     USAGE on orders_id_seq, payments_id_seq.
--   outboxpay_worker  the consumer groups, the reconciler, the lag exporter, replay
--                     (internal/outbox, internal/inbox, shop's fulfil/refund):
--                     users SELECT, UPDATE (balance, updated_at);
--                     products, order_items SELECT;
--                     product_details SELECT, UPDATE (stock, updated_at);
--                     orders SELECT, UPDATE (status, updated_at);
--                     payments SELECT, UPDATE (status, refunded_at);
--                     outbox SELECT, INSERT, DELETE (retention), UPDATE of the
--                     delivery columns only (never id, type, aggregate or payload);
--                     processed_events SELECT, INSERT.
--   outboxpay_cdc     the CDC connector (embedded engine or Debezium): REPLICATION,
--                     CONNECT on this database, outbox SELECT (pgoutput's initial
--                     checks), EXECUTE on pg_logical_emit_message (the heartbeat), connect_connectors SELECT, INSERT, UPDATE, DELETE
--                     (the embedded worker's config store). The publication is
--                     created here, so the connector needs no ownership
--                     (publication.autocreate.mode=disabled).
--
-- None is superuser, none may create roles or databases, none gets TRUNCATE,
-- REFERENCES, TRIGGER, temporary tables or any DDL, and nobody but the owner
-- may create objects in schema public (PostgreSQL < 15 grants that to PUBLIC).

-- Several databases of one cluster may migrate at once: a concurrent CREATE
-- ROLE of the same name fails with duplicate_object or unique_violation.
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['outboxpay_api', 'outboxpay_worker', 'outboxpay_cdc'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS %s',
                r, CASE WHEN r = 'outboxpay_cdc' THEN 'REPLICATION' ELSE 'NOREPLICATION' END);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
    IF NOT (SELECT rolreplication FROM pg_roles WHERE rolname = 'outboxpay_cdc') THEN
        ALTER ROLE outboxpay_cdc REPLICATION;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO outboxpay_api, outboxpay_worker, outboxpay_cdc',
        current_database());
END
$$;
-- +goose StatementEnd

-- Nobody but the connector emits logical decoding messages (its heartbeat;
-- PostgreSQL lets PUBLIC call pg_logical_emit_message), and no role makes
-- temporary tables.
-- +goose StatementBegin
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname = 'pg_logical_emit_message' LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO outboxpay_cdc', f);
    END LOOP;
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
-- +goose StatementEnd

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO outboxpay_api, outboxpay_worker, outboxpay_cdc;

-- The API.
GRANT SELECT ON users, products, product_details, orders, order_items, payments, idempotency_keys, outbox
    TO outboxpay_api;
GRANT UPDATE (balance, updated_at) ON users TO outboxpay_api;
GRANT INSERT, UPDATE (status, updated_at) ON orders TO outboxpay_api;
GRANT INSERT ON order_items, payments, idempotency_keys, outbox TO outboxpay_api;
GRANT UPDATE (status_code, response) ON idempotency_keys TO outboxpay_api;
GRANT USAGE ON SEQUENCE orders_id_seq, payments_id_seq TO outboxpay_api;

-- The consumers, the reconciler, the lag exporter and replay.
GRANT SELECT ON users, products, product_details, orders, order_items, payments, outbox, processed_events
    TO outboxpay_worker;
GRANT UPDATE (balance, updated_at) ON users TO outboxpay_worker;
GRANT UPDATE (stock, updated_at) ON product_details TO outboxpay_worker;
GRANT UPDATE (status, updated_at) ON orders TO outboxpay_worker;
GRANT UPDATE (status, refunded_at) ON payments TO outboxpay_worker;
GRANT INSERT, DELETE,
      UPDATE (status, attempts, handled_by, published_at, completed_at, failed_at, last_error, updated_at)
    ON outbox TO outboxpay_worker;
GRANT INSERT ON processed_events TO outboxpay_worker;

-- The CDC connector.
GRANT SELECT ON outbox TO outboxpay_cdc;
GRANT SELECT, INSERT, UPDATE, DELETE ON connect_connectors TO outboxpay_cdc;

-- +goose Down
-- The roles stay: they belong to the cluster, and other databases may use them.
REVOKE ALL ON users, products, product_details, orders, order_items, payments, idempotency_keys,
    outbox, processed_events, connect_connectors FROM outboxpay_api, outboxpay_worker, outboxpay_cdc;
REVOKE ALL ON SEQUENCE orders_id_seq, payments_id_seq FROM outboxpay_api;
REVOKE USAGE ON SCHEMA public FROM outboxpay_api, outboxpay_worker, outboxpay_cdc;
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM outboxpay_api, outboxpay_worker, outboxpay_cdc',
        current_database());
END
$$;
-- +goose StatementEnd
