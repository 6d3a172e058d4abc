-- Version 3 of the SQLite store: what backfill, reconcile and the sweep need.
-- * orders.total: the order's total when it was invoiced (decimal text), so reconcile
--   compares an invoice with that and a later refund is not a mismatch.
-- * sweep_cursors: per (source, shop), how far the sweep has looked (cursor, wall clock)
--   and the lease that lets one process at a time sweep that shop.

ALTER TABLE orders ADD COLUMN total TEXT;

CREATE TABLE IF NOT EXISTS sweep_cursors (
    source      TEXT NOT NULL,
    shop        TEXT NOT NULL,
    cursor      REAL,                  -- orders updated before this were swept
    swept_at    REAL,                  -- when the last sweep ended
    lease_owner TEXT,                  -- a label for people
    lease_until REAL,                  -- lease clock
    lease_boot  TEXT,                  -- the boot lease_until was measured in
    PRIMARY KEY (source, shop)
);
