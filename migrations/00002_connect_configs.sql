-- +goose Up
-- The embedded CDC engine's connectors, as Kafka Connect keeps them in its
-- config topic: the configuration as submitted (${env:...} placeholders kept,
-- never the resolved secrets) and the target state the worker restores on
-- start-up.
CREATE TABLE connect_connectors (
    name         text        PRIMARY KEY CHECK (name <> ''),
    config       jsonb       NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    target_state text        NOT NULL CHECK (target_state IN ('STARTED', 'PAUSED', 'STOPPED')),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE connect_connectors;
