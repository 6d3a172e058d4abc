-- The SQLite store's schema as a new store gets it: version 1 (0001) plus every migration
-- since, which must end exactly here (tests/test_store_schema.py compares the two).
-- Wall-clock times are Unix seconds (REAL, UTC); lease times are on the lease clock
-- (CLOCK_MONOTONIC seconds of the boot named beside them).

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT    NOT NULL,
    delivery_key    TEXT    NOT NULL,
    shop            TEXT    NOT NULL DEFAULT '',
    topic           TEXT,
    status          TEXT    NOT NULL,
    received_at     REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    started_at      REAL    NOT NULL,  -- received, or last replayed: the retry budget's clock
    order_id        TEXT,
    order_name      TEXT,
    reason          TEXT,
    details         TEXT,              -- JSON list of {field, problem}
    invoice_id      INTEGER,
    duplicate_of    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    lease_owner     TEXT,              -- a label for people; generation fences
    lease_until     REAL,              -- lease clock
    headers         TEXT    NOT NULL,  -- JSON object, signatures removed
    body            BLOB,              -- NULL once purged
    generation      INTEGER NOT NULL DEFAULT 0,  -- one more for every claim
    lease_boot      TEXT,              -- the boot lease_until was measured in
    possible_duplicate TEXT,           -- why a send may have landed twice
    extra_invoice_ids  TEXT,           -- JSON list: more Luminous invoices for the order
    search_keys     TEXT,              -- one per line: how the event is found (store/search.py)
    sent_request    TEXT,              -- JSON: the invoice request as last sent, ids resolved
    UNIQUE (source, delivery_key)
);

CREATE INDEX IF NOT EXISTS events_due ON events (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_order ON events (source, shop, order_id);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);

CREATE TABLE IF NOT EXISTS attempts (
    event_id INTEGER NOT NULL REFERENCES events (id),
    number   INTEGER NOT NULL,
    at       REAL    NOT NULL,
    outcome  TEXT    NOT NULL,
    detail   TEXT,
    delay    REAL,
    PRIMARY KEY (event_id, number)
);

CREATE TABLE IF NOT EXISTS orders (
    source      TEXT    NOT NULL,
    shop        TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    invoice_id  INTEGER,
    event_id    INTEGER NOT NULL,      -- the claim holder, then the event that created it
    lease_until REAL,                  -- lease clock
    sent        INTEGER NOT NULL DEFAULT 0,  -- a send of unknown outcome happened
    created_at  REAL    NOT NULL,
    lease_boot  TEXT,                  -- the boot lease_until was measured in
    sent_at     REAL,                  -- lease clock: when the unknown send was marked
    sent_boot   TEXT,                  -- the boot sent_at was measured in
    total       TEXT,                  -- the order's total when it was invoiced
    PRIMARY KEY (source, shop, order_id)
);

CREATE TABLE IF NOT EXISTS sweep_cursors (
    source      TEXT NOT NULL,
    shop        TEXT NOT NULL,
    cursor      REAL,                  -- orders updated before this were swept
    swept_at    REAL,                  -- when the last sweep ended
    lease_owner TEXT,                  -- a label for people
    lease_until REAL,                  -- lease clock
    lease_boot  TEXT,                  -- the boot lease_until was measured in
    generation  INTEGER NOT NULL DEFAULT 0,  -- claims of the lease: fences each one's writes
    PRIMARY KEY (source, shop)
);
