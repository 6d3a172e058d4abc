-- Version 2 of the SQLite store.
-- * Every claim is a generation (events.generation) that fences the writes made under it.
-- * Leases are on the lease clock: CLOCK_MONOTONIC seconds, with the boot they were taken in
--   (lease_boot). A version 1 lease (wall-clock, no boot) therefore counts as lapsed.
-- * An unknown send remembers when it was marked (orders.sent_at, sent_boot).
-- * Duplicate flags on events: possible_duplicate, extra_invoice_ids (a JSON list).

ALTER TABLE events ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN lease_boot TEXT;
ALTER TABLE events ADD COLUMN possible_duplicate TEXT;
ALTER TABLE events ADD COLUMN extra_invoice_ids TEXT;
ALTER TABLE orders ADD COLUMN lease_boot TEXT;
ALTER TABLE orders ADD COLUMN sent_at REAL;
ALTER TABLE orders ADD COLUMN sent_boot TEXT;
