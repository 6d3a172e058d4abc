-- Every query the store runs, written once for SQLite and PostgreSQL.
--
-- `-- name: x` starts query x; `{x}` inside a query includes x (a fragment). Parameters are
-- %(name)s; the connector rewrites them, and the row locks SQLite has no use for, into its
-- dialect. Two clocks: %(now)s is the wall clock (schedules, history), %(lease_now)s and
-- %(boot)s the lease clock (bridge/store/clock.py). A claim's %(generation)s fences every
-- write made under it: once the event is claimed again, the old claim's writes change nothing.

-- name: event_columns
-- By name, never *: a column a later release adds must not change what this one reads
-- (PostgreSQL refuses to run a prepared `SELECT *` whose row type changed under it).
id, source, delivery_key, shop, topic, status, received_at, updated_at, started_at, order_id,
order_name, reason, details, invoice_id, duplicate_of, attempts, next_attempt_at, generation,
lease_owner, lease_until, possible_duplicate, extra_invoice_ids, sent_request, headers, body

-- name: lease_lapsed
-- Once the lease clock has passed it, or when it was taken in another boot.
(lease_until IS NULL OR lease_until < %(lease_now)s OR COALESCE(lease_boot, '') <> %(boot)s)

-- name: due
-- What a worker may take: waiting and due by the wall clock, or held under a lapsed lease.
((status IN ('received', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s))
 OR (status = 'processing' AND {lease_lapsed}))

-- name: holds
-- The claim of this generation still stands (its lease may have lapsed unseen).
id = %(event_id)s AND generation = %(generation)s AND status = 'processing'

-- name: order_key
source = %(source)s AND shop = %(shop)s AND order_id = %(order_id)s

-- name: claimed
-- Every claim is a new generation.
SET status = 'processing', generation = generation + 1, lease_owner = %(owner)s,
    lease_until = %(lease_until)s, lease_boot = %(boot)s, updated_at = %(now)s

-- name: settle
-- The end of a claim: only the claim's own generation may.
lease_owner = NULL, lease_until = NULL, lease_boot = NULL, updated_at = %(now)s WHERE {holds}

-- name: holding
-- The claim holds, its lease too.
SELECT search_keys FROM events WHERE {holds} AND NOT {lease_lapsed}

-- name: record
-- Received, or claimed as it is written: 'processing', generation 1 and its lease, the row
-- `claimed` would make of it (a new row is due, and locked by nobody else).
INSERT INTO events (source, delivery_key, shop, topic, order_id, order_name, search_keys,
                    status, generation, lease_owner, lease_until, lease_boot,
                    received_at, updated_at, started_at, headers, body)
VALUES (%(source)s, %(delivery_key)s, %(shop)s, %(topic)s, %(order_id)s, %(order_name)s,
        %(search_keys)s, %(status)s, %(generation)s, %(owner)s, %(lease_until)s, %(lease_boot)s,
        %(now)s, %(now)s, %(now)s, %(headers)s, %(body)s)
ON CONFLICT (source, delivery_key) DO NOTHING
RETURNING {event_columns}

-- name: event_by_key
SELECT {event_columns} FROM events WHERE source = %(source)s AND delivery_key = %(delivery_key)s

-- name: event
SELECT {event_columns} FROM events WHERE id = %(event_id)s

-- name: lock_event
-- Writers lock an event's row before its order's (claim_order, renew, complete), never the
-- other way round, so two of them cannot deadlock.
SELECT status, reason, search_keys FROM events WHERE id = %(event_id)s FOR UPDATE

-- name: history
SELECT event_id, number, at, outcome, detail, delay FROM attempts
WHERE event_id = %(event_id)s ORDER BY number

-- name: append
-- Numbering reads MAX(number): the event's row lock keeps two writers from sharing one.
INSERT INTO attempts (event_id, number, at, outcome, detail, delay)
SELECT %(event_id)s, COALESCE(MAX(number), 0) + 1, %(now)s, %(outcome)s, %(detail)s, %(delay)s
FROM attempts WHERE event_id = %(event_id)s

-- name: claim
UPDATE events {claimed}
WHERE id = (SELECT id FROM events WHERE id = %(event_id)s AND {due} FOR UPDATE SKIP LOCKED)
RETURNING {event_columns}

-- name: claim_next
-- SKIP LOCKED: replicas polling together each take a different event, and none waits.
UPDATE events {claimed}
WHERE id = (SELECT id FROM events WHERE {due} AND id NOT IN %(skip)s
            ORDER BY COALESCE(next_attempt_at, 0), id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING {event_columns}

-- name: next_due
-- Seconds until something may be due: a retry's time, or a lease running out.
SELECT MIN(CASE WHEN status = 'processing' THEN lease_until - %(lease_now)s
                ELSE COALESCE(next_attempt_at, %(now)s) - %(now)s END) AS wait
FROM events WHERE status IN ('received', 'processing', 'retrying')

-- name: renew
UPDATE events SET lease_until = %(lease_until)s, lease_boot = %(boot)s WHERE {holds}

-- name: renew_order
UPDATE orders SET lease_until = %(lease_until)s, lease_boot = %(boot)s
WHERE event_id = %(event_id)s AND invoice_id IS NULL

-- name: finish
UPDATE events SET status = %(status)s, reason = %(reason)s, details = %(details)s,
    invoice_id = %(invoice_id)s, next_attempt_at = NULL, search_keys = %(search_keys)s,
    order_id = COALESCE(order_id, %(order_id)s), order_name = COALESCE(order_name, %(order_name)s),
    {settle}

-- name: defer
UPDATE events SET status = 'retrying', reason = %(reason)s, attempts = attempts + %(counted)s,
    next_attempt_at = %(next_attempt_at)s, {settle}

-- name: release
UPDATE events SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'received' END,
    next_attempt_at = NULL, {settle}

-- name: created
UPDATE events SET status = 'created', invoice_id = %(invoice_id)s,
    duplicate_of = %(duplicate_of)s, reason = NULL, next_attempt_at = NULL,
    search_keys = %(search_keys)s, {settle}
RETURNING {event_columns}

-- name: set_order
UPDATE events SET order_id = %(order_id)s, order_name = %(order_name)s,
    search_keys = %(search_keys)s
WHERE id = %(event_id)s

-- name: flag
UPDATE events SET possible_duplicate = %(possible_duplicate)s,
    extra_invoice_ids = %(extra_invoice_ids)s
WHERE id = %(event_id)s

-- name: bind_order
-- Under the claim only; its row lock comes before the order's (see lock_event).
UPDATE events SET order_id = %(order_id)s, order_name = %(order_name)s,
    search_keys = %(search_keys)s
WHERE {holds}

-- name: lock_lease
-- The row locked, with the keys a writer merges into (as lock_event).
{holding} FOR UPDATE

-- name: take_order
-- One statement inserts the order's claim or takes it over: from the event that holds it
-- (again), or from a holder whose lease lapsed, never from an invoiced order. Of two
-- replicas racing, the second waits for the first to commit, then sees its claim.
INSERT INTO orders (source, shop, order_id, event_id, lease_until, lease_boot, created_at)
VALUES (%(source)s, %(shop)s, %(order_id)s, %(event_id)s, %(lease_until)s, %(boot)s, %(now)s)
ON CONFLICT (source, shop, order_id) DO UPDATE
SET event_id = excluded.event_id, lease_until = excluded.lease_until,
    lease_boot = excluded.lease_boot
WHERE orders.invoice_id IS NULL
  AND (orders.event_id = excluded.event_id
       OR orders.lease_until IS NULL OR orders.lease_until < %(lease_now)s
       OR COALESCE(orders.lease_boot, '') <> %(boot)s)
RETURNING sent, sent_at, sent_boot

-- name: order
SELECT invoice_id, event_id FROM orders WHERE {order_key}

-- name: mark_sent
UPDATE orders SET sent = %(sent)s, sent_at = %(sent_at)s, sent_boot = %(sent_boot)s
WHERE {order_key} AND event_id = %(event_id)s AND invoice_id IS NULL

-- name: keep_request
UPDATE events SET sent_request = %(request)s WHERE {holds}

-- name: record_invoice
-- An invoice already recorded is never overwritten, whatever another replica commits at
-- the same moment. `total` is the order's total as invoiced, for reconcile.
INSERT INTO orders (source, shop, order_id, invoice_id, event_id, created_at, total)
VALUES (%(source)s, %(shop)s, %(order_id)s, %(invoice_id)s, %(event_id)s, %(now)s, %(total)s)
ON CONFLICT (source, shop, order_id) DO UPDATE
SET invoice_id = excluded.invoice_id, event_id = excluded.event_id, lease_until = NULL,
    lease_boot = NULL, sent = false, sent_at = NULL, sent_boot = NULL, total = excluded.total
WHERE orders.invoice_id IS NULL
RETURNING invoice_id, event_id

-- name: release_order
DELETE FROM orders WHERE {order_key} AND event_id = %(event_id)s AND invoice_id IS NULL

-- name: replay
UPDATE events SET status = 'received', attempts = 0, next_attempt_at = NULL,
    started_at = %(now)s, updated_at = %(now)s
WHERE id = %(event_id)s
RETURNING {event_columns}

-- name: dismiss
-- The reason it failed stays in the history; the event now says why it was let go.
UPDATE events SET status = 'dismissed', reason = %(reason)s, next_attempt_at = NULL,
    updated_at = %(now)s, search_keys = %(search_keys)s
WHERE id = %(event_id)s
RETURNING {event_columns}

-- name: purge_payloads
UPDATE events SET body = NULL
WHERE body IS NOT NULL AND status IN %(statuses)s AND updated_at < %(older_than)s

-- name: counts
SELECT status, COUNT(*) AS n FROM events GROUP BY status

-- name: backlog
-- On the events_due index: only unfinished rows are read.
SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM events
WHERE status IN ('received', 'processing', 'retrying')

-- name: oldest_unfinished
SELECT {event_columns} FROM events
WHERE status IN ('received', 'processing', 'retrying')
ORDER BY received_at, id LIMIT 1

-- name: received_by_hour
-- Whole hours since %(since)s. A CAST truncates in SQLite but rounds in PostgreSQL; taking
-- one off where it rounded up is the floor in both, without SQLite's optional floor().
SELECT CAST(hours AS INTEGER) - CASE WHEN CAST(hours AS INTEGER) > hours THEN 1 ELSE 0 END
       AS hour, status, COUNT(*) AS n
FROM (SELECT (received_at - %(since)s) / 3600.0 AS hours, status FROM events
      WHERE received_at >= %(since)s) AS recent
GROUP BY 1, status

-- name: known_source
SELECT 1 AS found FROM events WHERE source = %(source)s LIMIT 1

-- name: matching
-- The filters of list_events and count_events; a filter given as NULL matches every event
-- (the casts tell PostgreSQL a NULL's type). Search patterns are lower-cased by the caller
-- (bridge/store/search.py); reasons are lower-cased here, which SQLite does for ASCII only.
WHERE (CAST(%(status)s AS TEXT) IS NULL OR status = %(status)s)
  AND (CAST(%(source)s AS TEXT) IS NULL OR source = %(source)s)
  AND (CAST(%(shop)s AS TEXT) IS NULL OR shop = %(shop)s)
  AND (CAST(%(order)s AS TEXT) IS NULL OR search_keys LIKE %(order)s ESCAPE '\')
  AND (CAST(%(text)s AS TEXT) IS NULL OR search_keys LIKE %(text)s ESCAPE '\'
       OR lower(reason) LIKE %(text)s ESCAPE '\')
  AND (CAST(%(since)s AS DOUBLE PRECISION) IS NULL OR received_at >= %(since)s)
  AND (CAST(%(until)s AS DOUBLE PRECISION) IS NULL OR received_at < %(until)s)
  AND (CAST(%(before)s AS BIGINT) IS NULL OR id < %(before)s)
  AND (%(flagged)s = 0 OR possible_duplicate IS NOT NULL OR extra_invoice_ids IS NOT NULL)

-- name: list_events
SELECT {event_columns} FROM events {matching} ORDER BY id DESC LIMIT %(limit)s

-- name: count_events
SELECT status, COUNT(*) AS n FROM events {matching} GROUP BY status

-- name: meta_value
SELECT value FROM meta WHERE key = %(key)s

-- name: add_meta
INSERT INTO meta (key, value) VALUES (%(key)s, %(value)s) ON CONFLICT (key) DO NOTHING

-- name: schema_version
SELECT value FROM meta WHERE key = 'schema_version'

-- name: set_schema_version
INSERT INTO meta (key, value) VALUES ('schema_version', %(version)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: order_shops
SELECT DISTINCT shop FROM orders WHERE source = %(source)s

-- name: rescope_orders
-- An order already recorded under the new key keeps that record; its old one stays for
-- reconcile to report (the order was invoiced under two keys).
UPDATE orders SET shop = %(new_shop)s
WHERE source = %(source)s AND shop = %(old_shop)s
  AND NOT EXISTS (SELECT 1 FROM orders AS kept
                  WHERE kept.source = %(source)s AND kept.shop = %(new_shop)s
                    AND kept.order_id = orders.order_id)

-- name: orders_of_shop
SELECT COUNT(*) AS n FROM orders WHERE source = %(source)s AND shop = %(old_shop)s

-- name: order_events
-- Every event about these orders, without payloads: what backfill and reconcile know of them.
-- An empty %(shop)s matches every shop (a source whose order ids are unique across shops).
SELECT id, source, delivery_key, shop, topic, status, received_at, updated_at, started_at,
       order_id, order_name, reason, details, invoice_id, duplicate_of, attempts,
       next_attempt_at, generation, lease_owner, lease_until, possible_duplicate,
       extra_invoice_ids, sent_request, headers, NULL AS body
FROM events
WHERE source = %(source)s AND order_id IN %(order_ids)s
  AND (CAST(%(shop)s AS TEXT) = '' OR shop = %(shop)s)
ORDER BY id

-- name: order_records
SELECT order_id, invoice_id, event_id, total FROM orders
WHERE source = %(source)s AND shop = %(shop)s AND order_id IN %(order_ids)s

-- name: heartbeat
-- A running worker's sign of life, for commands that need one (backfill --wait).
INSERT INTO meta (key, value) VALUES (%(key)s, %(beat)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: sweep_key
source = %(source)s AND shop = %(shop)s

-- name: sweep_holds
-- The sweep lease of this generation still stands (it may have lapsed unseen): only its
-- holder may renew it or end it, so a paused sweeper that lost it writes nothing.
{sweep_key} AND generation = %(generation)s AND lease_owner IS NOT NULL

-- name: add_sweep
INSERT INTO sweep_cursors (source, shop) VALUES (%(source)s, %(shop)s)
ON CONFLICT (source, shop) DO NOTHING

-- name: claim_sweep
-- Free (never held, released, lapsed) and due: the last sweep ended %(every)s seconds ago
-- or more, by the wall clock every replica reads alike. Of two replicas racing, the second
-- waits for the first to commit, then finds the lease held.
UPDATE sweep_cursors
SET generation = generation + 1, lease_owner = %(owner)s, lease_until = %(lease_until)s,
    lease_boot = %(boot)s
WHERE {sweep_key} AND {lease_lapsed}
  AND (swept_at IS NULL OR swept_at <= %(now)s - %(every)s)
RETURNING generation, cursor, swept_at

-- name: sweep_cursor
SELECT cursor, swept_at, lease_owner FROM sweep_cursors WHERE {sweep_key}

-- name: renew_sweep
UPDATE sweep_cursors SET lease_until = %(lease_until)s, lease_boot = %(boot)s
WHERE {sweep_holds}

-- name: end_sweep
-- The cursor only moves forward; a sweep that failed passes none and leaves it.
UPDATE sweep_cursors
SET cursor = CASE WHEN cursor IS NULL OR cursor < %(cursor)s THEN %(cursor)s ELSE cursor END,
    swept_at = %(now)s, lease_owner = NULL, lease_until = NULL, lease_boot = NULL
WHERE {sweep_holds}

-- name: release_sweep
UPDATE sweep_cursors SET lease_owner = NULL, lease_until = NULL, lease_boot = NULL
WHERE {sweep_holds}
