-- Version 2 of the PostgreSQL store; it only adds columns.
-- * Every claim is a generation (events.generation) that fences the writes made under it.
-- * The lease clock stays the server's clock; lease_boot and sent_boot are always ''.
-- * An unknown send remembers when it was marked (orders.sent_at).
-- * Duplicate flags on events: possible_duplicate, extra_invoice_ids (a JSON list).
-- Release 1 reads every column of events into its records, so it cannot run on this schema:
-- stop its replicas before starting this release's. Later releases read only the columns
-- they know, so their upgrades may roll.

ALTER TABLE events ADD COLUMN IF NOT EXISTS generation integer NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN IF NOT EXISTS lease_boot text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS possible_duplicate text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS extra_invoice_ids json;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS lease_boot text;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS sent_at double precision;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS sent_boot text;
