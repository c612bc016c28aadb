-- +goose Up
-- The operator console (internal/ops, api/operator): operators park or
-- discard outbox rows, retry FAILED and PARKED ones, re-drive dead-lettered
-- records, and every such action leaves an audit row.
--
-- * outbox.status gains PARKED (set aside by an operator: the reconciler
--   neither republishes nor fails it; a retry resumes it) and DISCARDED
--   (given up on for good). Neither sets completed_at, so both stay in
--   outbox_unfinished_idx; a handler that completes every group's work on
--   such a row still makes it COMPLETE (MarkHandledAll). The reason of a
--   park or discard is kept in its audit row.
-- * operator_audit: who did what to which target, why, and whether it
--   changed anything (an action repeated on a target already in its state
--   is recorded with changed = false).
-- * dlq_redrives: the dead-lettered records already re-driven, so that a
--   re-drive never produces one twice.
-- * The role outboxpay_operator (the operator API, `outboxpay console` and
--   the console of `dev`) may read the outbox, processed_events and its own
--   two tables, change an outbox row's status and the delivery columns a
--   retry resets, and append to its own two tables; nothing else. Its
--   sessions get a 10 s statement timeout and a 10 s idle-in-transaction
--   timeout, like the API's (00009).
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('INIT', 'PUBLISHED', 'COMPLETE', 'FAILED', 'PARKED', 'DISCARDED'));

CREATE TABLE operator_audit (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL CHECK (actor <> ''),
    action  text        NOT NULL CHECK (action IN ('retry', 'park', 'discard', 'redrive',
                                                   'connector-pause', 'connector-resume', 'connector-restart')),
    target  text        NOT NULL,
    reason  text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    changed boolean     NOT NULL,
    detail  text
);
CREATE INDEX operator_audit_target_idx ON operator_audit (target, at);

CREATE TABLE dlq_redrives (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    redriven_at timestamptz NOT NULL DEFAULT now(),
    audit_id    bigint      REFERENCES operator_audit (id),
    PRIMARY KEY (topic, partition, "offset")
);

-- Several databases of one cluster may migrate at once (see 00004).
-- +goose StatementBegin
DO $$
BEGIN
    BEGIN
        CREATE ROLE outboxpay_operator NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO outboxpay_operator', current_database());
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO outboxpay_operator;
GRANT SELECT ON outbox, processed_events, operator_audit, dlq_redrives TO outboxpay_operator;
GRANT UPDATE (status, attempts, failed_at, last_error, updated_at) ON outbox TO outboxpay_operator;
GRANT INSERT ON operator_audit, dlq_redrives TO outboxpay_operator;
GRANT USAGE ON SEQUENCE operator_audit_id_seq TO outboxpay_operator;

-- The settings apply to new sessions of the role, in every database; see
-- 00009 for why each is checked again after a failure.
-- +goose StatementBegin
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['statement_timeout=10s', 'idle_in_transaction_session_timeout=10s'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                       WHERE setdatabase = 0 AND setrole = 'outboxpay_operator'::regrole
                         AND s = ANY (setconfig)) THEN
            BEGIN
                EXECUTE format('ALTER ROLE outboxpay_operator SET %I = %L', split_part(s, '=', 1), split_part(s, '=', 2));
            EXCEPTION WHEN unique_violation OR internal_error THEN
                IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                               WHERE setdatabase = 0 AND setrole = 'outboxpay_operator'::regrole
                                 AND s = ANY (setconfig)) THEN
                    RAISE;
                END IF;
            END;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The role stays (it belongs to the cluster), without its grants here.
-- Fails while rows are PARKED or DISCARDED: decide about them first.
REVOKE ALL ON outbox, processed_events FROM outboxpay_operator;
REVOKE USAGE ON SCHEMA public FROM outboxpay_operator;
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM outboxpay_operator', current_database());
END
$$;
-- +goose StatementEnd
DROP TABLE dlq_redrives;
DROP TABLE operator_audit;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('INIT', 'PUBLISHED', 'COMPLETE', 'FAILED'));
