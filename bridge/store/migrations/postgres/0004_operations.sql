-- Version 4 of the PostgreSQL store; it only adds columns.
-- * search_keys: the keys an event is found by (order id, name with and without '#', PO
--   number, e-mail, invoice id, SKUs), lower-cased, one per line between line breaks
--   (bridge/store/search.py). Events recorded before get theirs from what they hold.
-- * sent_request: the invoice request as last sent, with company and product ids.
-- * Status 'dismissed' needs no column: dead or rejected events marked as handled by hand.

ALTER TABLE events ADD COLUMN IF NOT EXISTS search_keys text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS sent_request json;

UPDATE events SET search_keys = chr(10) || lower(order_id) || chr(10)
    || CASE WHEN order_name IS NULL THEN ''
            ELSE lower(order_name) || chr(10) || lower(ltrim(order_name, '#')) || chr(10) END
    || CASE WHEN invoice_id IS NULL THEN '' ELSE invoice_id::text || chr(10) END
WHERE order_id IS NOT NULL AND search_keys IS NULL;
