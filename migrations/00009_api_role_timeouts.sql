-- +goose Up
-- The API's role gets server-side bounds on its work: no statement runs
-- longer than 5 s, and no transaction stays idle (open, no statement
-- running) longer than 10 s. The API's own deadline (API_REQUEST_TIMEOUT,
-- default 10 s) cancels its work first in the normal case; these bound what
-- a stuck or overloaded client of the role could hold (locks, a pool
-- connection, a snapshot holding back vacuum). A statement cancelled by
-- them fails with SQLSTATE 57014 or 25P03, which the API answers with 503
-- /problems/timeout. The settings apply to new sessions of the role.
--
-- Roles belong to the cluster, so this is a setting of the role in every
-- database. Several databases of one cluster may migrate at once: a
-- concurrent ALTER ROLE ... SET of the same role fails with unique_violation
-- or "tuple concurrently updated" after the other one committed, so each
-- setting is checked again after such a failure.
-- +goose StatementBegin
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['statement_timeout=5s', 'idle_in_transaction_session_timeout=10s'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                       WHERE setdatabase = 0 AND setrole = 'outboxpay_api'::regrole
                         AND s = ANY (setconfig)) THEN
            BEGIN
                EXECUTE format('ALTER ROLE outboxpay_api SET %I = %L', split_part(s, '=', 1), split_part(s, '=', 2));
            EXCEPTION WHEN unique_violation OR internal_error THEN
                IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                               WHERE setdatabase = 0 AND setrole = 'outboxpay_api'::regrole
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
-- This resets the role's settings for every database of the cluster.
ALTER ROLE outboxpay_api RESET statement_timeout;
ALTER ROLE outboxpay_api RESET idle_in_transaction_session_timeout;
