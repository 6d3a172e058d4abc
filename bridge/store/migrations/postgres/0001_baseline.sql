-- Schema version 1 of the PostgreSQL store: the same tables as the SQLite store.
-- Times are Unix seconds (double precision, UTC), taken from the database's clock so that
-- replicas with skewed clocks agree on leases.

CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text    NOT NULL,
    delivery_key    text    NOT NULL,
    shop            text    NOT NULL DEFAULT '',
    topic           text,
    status          text    NOT NULL,
    received_at     double precision NOT NULL,
    updated_at      double precision NOT NULL,
    started_at      double precision NOT NULL,  -- received, or last replayed: the retry budget's clock
    order_id        text,
    order_name      text,
    reason          text,
    details         json,                       -- list of {field, problem}
    invoice_id      bigint,
    duplicate_of    bigint,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at double precision,
    lease_owner     text,
    lease_until     double precision,
    headers         json    NOT NULL,           -- signatures removed; json keeps their order
    body            bytea,                      -- NULL once purged
    UNIQUE (source, delivery_key)
);

CREATE INDEX IF NOT EXISTS events_due ON events (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_order_id ON events (order_id);
CREATE INDEX IF NOT EXISTS events_order_name ON events (order_name);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);

CREATE TABLE IF NOT EXISTS attempts (
    event_id bigint  NOT NULL REFERENCES events (id),
    number   integer NOT NULL,
    at       double precision NOT NULL,
    outcome  text    NOT NULL,
    detail   text,
    delay    double precision,
    PRIMARY KEY (event_id, number)
);

CREATE TABLE IF NOT EXISTS orders (
    source      text    NOT NULL,
    shop        text    NOT NULL,
    order_id    text    NOT NULL,
    invoice_id  bigint,
    event_id    bigint  NOT NULL,               -- the claim holder, then the event that created it
    lease_until double precision,
    sent        boolean NOT NULL DEFAULT false, -- a send of unknown outcome happened
    created_at  double precision NOT NULL,
    PRIMARY KEY (source, shop, order_id)
);
