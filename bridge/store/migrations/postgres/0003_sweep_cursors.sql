-- Version 3 of the PostgreSQL store; it only adds.
-- * orders.total: the order's total when it was invoiced (decimal text), so reconcile
--   compares an invoice with that and a later refund is not a mismatch.
-- * sweep_cursors: per (source, shop), how far the sweep has looked (cursor, wall clock)
--   and the lease that lets one replica at a time sweep that shop.

ALTER TABLE orders ADD COLUMN IF NOT EXISTS total text;

CREATE TABLE IF NOT EXISTS sweep_cursors (
    source      text NOT NULL,
    shop        text NOT NULL,
    cursor      double precision,
    swept_at    double precision,
    lease_owner text,
    lease_until double precision,
    lease_boot  text,
    PRIMARY KEY (source, shop)
);
