-- +goose Up
-- Users and their balance, in the smallest currency unit.
CREATE TABLE users (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL CHECK (name <> ''),
    balance    bigint      NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A product detail is one purchasable option of a product, with its own price and stock.
CREATE TABLE product_details (
    id         bigserial   PRIMARY KEY,
    product_id bigint      NOT NULL REFERENCES products (id),
    option     text        NOT NULL CHECK (option <> ''),
    price      bigint      NOT NULL CHECK (price > 0),
    stock      integer     NOT NULL CHECK (stock >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_id, option)
);

CREATE TABLE orders (
    id          bigserial   PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    status      text        NOT NULL CHECK (status IN ('ORDERED', 'PAID', 'CANCELLED')),
    total_price bigint      NOT NULL CHECK (total_price > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_id_idx ON orders (user_id);

CREATE TABLE order_items (
    order_id          bigint  NOT NULL REFERENCES orders (id),
    product_detail_id bigint  NOT NULL REFERENCES product_details (id),
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price        bigint  NOT NULL CHECK (unit_price > 0),
    PRIMARY KEY (order_id, product_detail_id)
);

-- One payment per order; a refund flips it to REFUNDED.
CREATE TABLE payments (
    id          bigserial   PRIMARY KEY,
    order_id    bigint      NOT NULL UNIQUE REFERENCES orders (id),
    user_id     bigint      NOT NULL REFERENCES users (id),
    amount      bigint      NOT NULL CHECK (amount > 0),
    status      text        NOT NULL CHECK (status IN ('PAID', 'REFUNDED')),
    paid_at     timestamptz NOT NULL DEFAULT now(),
    refunded_at timestamptz,
    CHECK ((status = 'REFUNDED') = (refunded_at IS NOT NULL))
);
CREATE INDEX payments_user_id_idx ON payments (user_id);

-- Idempotency keys of payment requests: the first response is stored in the
-- same transaction as the payment, so a replay returns it and charges nothing.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    user_id      bigint      NOT NULL,
    order_id     bigint      NOT NULL,
    status_code  integer     NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The transactional outbox. The first six columns are Debezium's defaults
-- (Outbox Event Router); the rest track delivery and never leave through CDC,
-- because the publication below carries inserts only.
CREATE TABLE outbox (
    id            uuid        PRIMARY KEY,
    aggregatetype text        NOT NULL CHECK (aggregatetype <> ''),
    aggregateid   text        NOT NULL CHECK (aggregateid <> ''),
    type          text        NOT NULL CHECK (type <> ''),
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    status        text        NOT NULL DEFAULT 'INIT'
                              CHECK (status IN ('INIT', 'PUBLISHED', 'COMPLETE', 'FAILED')),
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    handled_by    text[]      NOT NULL DEFAULT '{}',
    published_at  timestamptz,
    completed_at  timestamptz,
    failed_at     timestamptz,
    last_error    text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_unfinished_idx ON outbox (status, created_at) WHERE status <> 'COMPLETE';
CREATE INDEX outbox_aggregate_idx ON outbox (aggregatetype, aggregateid);
-- Events carry their order in the payload; GET /orders/{id} lists them by it.
CREATE INDEX outbox_order_idx ON outbox ((payload ->> 'orderId'));

-- The inbox: one row per event a consumer group has fully handled, written in
-- the same transaction as the handler's effects, so a redelivery is a no-op.
CREATE TABLE processed_events (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

-- Change data capture reads the outbox through this publication: inserts only.
CREATE PUBLICATION outbox_publication FOR TABLE outbox WITH (publish = 'insert');

-- +goose Down
DROP PUBLICATION IF EXISTS outbox_publication;
DROP TABLE processed_events;
DROP TABLE outbox;
DROP TABLE idempotency_keys;
DROP TABLE payments;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE product_details;
DROP TABLE products;
DROP TABLE users;
