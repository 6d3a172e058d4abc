-- Version 4 of the SQLite store.
-- * search_keys: the keys an event is found by (order id, name with and without '#', PO
--   number, e-mail, invoice id, SKUs), lower-cased, one per line between line breaks
--   (bridge/store/search.py). Events recorded before get theirs from what they hold.
-- * sent_request: the invoice request as last sent (JSON), with company and product ids.
-- * Status 'dismissed' needs no column: dead or rejected events marked as handled by hand.

ALTER TABLE events ADD COLUMN search_keys TEXT;
ALTER TABLE events ADD COLUMN sent_request TEXT;

UPDATE events SET search_keys = char(10) || lower(order_id) || char(10)
    || CASE WHEN order_name IS NULL THEN ''
            ELSE lower(order_name) || char(10) || lower(ltrim(order_name, '#')) || char(10) END
    || CASE WHEN invoice_id IS NULL THEN '' ELSE CAST(invoice_id AS TEXT) || char(10) END
WHERE order_id IS NOT NULL;
