-- Schema version 1 of the SQLite store. Times are Unix seconds (REAL, UTC).

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
    lease_owner     TEXT,
    lease_until     REAL,
    headers         TEXT    NOT NULL,  -- JSON object, signatures removed
    body            BLOB,              -- NULL once purged
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
    lease_until REAL,
    sent        INTEGER NOT NULL DEFAULT 0,  -- a send of unknown outcome happened
    created_at  REAL    NOT NULL,
    PRIMARY KEY (source, shop, order_id)
);
