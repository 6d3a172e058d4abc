-- The PostgreSQL store's schema as a new store gets it: version 1 (0001) plus every
-- migration since, which must end exactly here (tests/test_store_schema.py compares the two).
-- Times are Unix seconds (double precision, UTC), all from the database server's clock, so
-- replicas with skewed clocks agree on leases; lease_boot and sent_boot are always ''.

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
    lease_owner     text,                       -- a label for people; generation fences
    lease_until     double precision,
    headers         json    NOT NULL,           -- signatures removed; json keeps their order
    body            bytea,                      -- NULL once purged
    generation      integer NOT NULL DEFAULT 0, -- one more for every claim
    lease_boot      text,
    possible_duplicate text,                    -- why a send may have landed twice
    extra_invoice_ids  json,                    -- list: more Luminous invoices for the order
    search_keys     text,                       -- one per line: how the event is found
    sent_request    json,                       -- the invoice request as last sent, ids resolved
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
    lease_boot  text,
    sent_at     double precision,               -- when the unknown send was marked
    sent_boot   text,
    total       text,                           -- the order's total when it was invoiced
    PRIMARY KEY (source, shop, order_id)
);

CREATE TABLE IF NOT EXISTS sweep_cursors (
    source      text NOT NULL,
    shop        text NOT NULL,
    cursor      double precision,               -- orders updated before this were swept
    swept_at    double precision,               -- when the last sweep ended
    lease_owner text,
    lease_until double precision,
    lease_boot  text,
    generation  bigint NOT NULL DEFAULT 0,      -- claims of the lease: fences each one's writes
    PRIMARY KEY (source, shop)
);
