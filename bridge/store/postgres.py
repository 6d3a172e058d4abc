"""The scale-out store: one PostgreSQL database shared by every replica.

Replicas claim events with `FOR UPDATE SKIP LOCKED`, so a due event goes to one of them, and
compare leases against the database's clock, so hosts with skewed clocks agree on when a
lease lapses. Connections come from a small pool opened on first use.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, LiteralString
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Json

from bridge.errors import StoreError
from bridge.resolver import LocalLocks
from bridge.store.base import (
    CREATED,
    FINISHED,
    PROCESSING,
    RECEIVED,
    REPLAYABLE,
    RETRYING,
    SCHEMA_VERSION,
    SKIPPED,
    TAGGED,
    Attempt,
    Event,
    NewDelivery,
    OrderClaim,
    OrderKey,
    Store,
    list_query,
)

Connection = psycopg.AsyncConnection[DictRow]
Pool = psycopg_pool.AsyncConnectionPool[Connection]

_CLOCK = "SELECT extract(epoch FROM clock_timestamp())::double precision AS now"
_DUE = (
    f"((status IN ('{RECEIVED}', '{RETRYING}')"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= %s))"
    f" OR (status = '{PROCESSING}' AND lease_until < %s))"
)
# Appended to every update that ends a claim: only the lease holder may settle its event.
_SETTLED = (
    ", lease_owner = NULL, lease_until = NULL, updated_at = %s"
    f" WHERE id = %s AND lease_owner = %s AND status = '{PROCESSING}'"
)
_ORDER = "source = %s AND shop = %s AND order_id = %s"
_MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('bridge.migrate ' || current_schema()))"
_KEY_LOCK = "SELECT pg_advisory_lock(hashtext('bridge.resolver'), hashtext(%s))"
_KEY_UNLOCK = "SELECT pg_advisory_unlock(hashtext('bridge.resolver'), hashtext(%s))"


def redact(url: str) -> str:
    """The connection URL with its password hidden, fit for messages and logs."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = [
        (name, "***" if name == "password" else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))


def _password(url: str) -> str | None:
    if "://" not in url:
        found = re.search(r"password\s*=\s*(\S+)", url)
        return found.group(1) if found else None
    parts = urlsplit(url)
    from_query = dict(parse_qsl(parts.query)).get("password")
    return parts.password or from_query


def _event(row: DictRow) -> Event:
    # The events table's columns are the Event's fields, by name.
    return Event(**{**row, "details": row["details"] or []})


async def _one(
    conn: Connection, query: LiteralString, params: tuple[Any, ...] = ()
) -> DictRow | None:
    cursor = await conn.execute(query, params)
    return await cursor.fetchone()


async def _changed(conn: Connection, query: LiteralString, params: tuple[Any, ...]) -> int:
    cursor = await conn.execute(query, params)
    return cursor.rowcount


class PostgresStore(Store):
    """The `postgresql://user@host/db` store, safe to share between replicas."""

    def __init__(self, url: str, *, max_size: int = 10, timeout: float = 5.0) -> None:
        self.url = url
        self.safe_url = redact(url)
        self._secret = _password(url)
        self._max_size = max_size
        self._timeout = timeout  # seconds to wait for a connection before StoreError
        self._pool: Pool | None = None
        self._lock_pool: Pool | None = None
        self._key_locks: AdvisoryLocks | None = None

    # -- plumbing ---------------------------------------------------------------

    def _new_pool(self, name: str, min_size: int, **hooks: Any) -> Pool:
        return psycopg_pool.AsyncConnectionPool(
            self.url,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            # A connection the server dropped (a restart, a failover) is replaced, not used.
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            name=name,
            open=False,
            **hooks,
        )

    def _error(self, exc: psycopg.Error, cause: str | None = None) -> StoreError:
        message = f"PostgreSQL store {self.safe_url}: {exc}"
        if cause:
            message += f" ({cause})"
        if self._secret:
            message = message.replace(self._secret, "***")
        return StoreError(message)

    async def _opened(self, pool: Pool) -> Pool:
        try:
            await pool.open()
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        if self._pool is None:
            self._pool = self._new_pool("bridge-store", min_size=1)
        pool = await self._opened(self._pool)
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg_pool.PoolTimeout as exc:
            raise self._error(exc, await self._why_unreachable()) from exc
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    async def _why_unreachable(self) -> str | None:
        """The pool only says it waited; one direct attempt says why (refused, auth, …)."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=max(1, round(self._timeout))
            )
        except psycopg.Error as exc:
            return str(exc).splitlines()[0]
        await conn.close()
        return None

    @contextlib.asynccontextmanager
    async def _lock_connection(self) -> AsyncIterator[Connection]:
        """A connection of its own for session locks, which must not leak to the next user."""
        if self._lock_pool is None:
            self._lock_pool = self._new_pool("bridge-locks", min_size=0, reset=_unlock_all)
        pool = await self._opened(self._lock_pool)
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[tuple[Connection, float]]:
        """A transaction and the database's time at its start, in Unix seconds."""
        async with self._connection() as conn, conn.transaction():
            row = await _one(conn, _CLOCK)
            assert row is not None
            yield conn, row["now"]

    def key_locks(self) -> AdvisoryLocks:
        """Per-key locks shared by every replica on this database (the resolver's single flight)."""
        if self._key_locks is None:
            self._key_locks = AdvisoryLocks(self._lock_connection)
        return self._key_locks

    # -- schema -----------------------------------------------------------------

    async def migrate(self) -> None:
        schema = resources.files("bridge.store").joinpath("postgres_schema.sql").read_text()
        async with self._transaction() as (conn, _):
            # Replicas starting together would race each other's CREATE TABLE otherwise.
            await conn.execute(_MIGRATE_LOCK)
            current = await _version(conn)
            if current is not None and current > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema version {current} is newer than this release "
                    f"({SCHEMA_VERSION}); upgrade the bridge"
                )
            await conn.execute(schema)  # our own file; several statements, no parameters
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    async def schema_version(self) -> int | None:
        async with self._connection() as conn:
            return await _version(conn)

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        for pool in (self._pool, self._lock_pool):
            if pool is not None:
                await pool.close()

    # -- events -----------------------------------------------------------------

    async def record(self, delivery: NewDelivery) -> tuple[Event, bool]:
        key = (delivery.source, delivery.delivery_key)
        headers, body = Json(delivery.headers), delivery.body
        async with self._transaction() as (conn, now):
            # A concurrent insert of the same key waits for the other to commit, then yields.
            row = await _one(
                conn,
                "INSERT INTO events (source, delivery_key, shop, topic, status, received_at,"
                " updated_at, started_at, headers, body)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source, delivery_key) DO NOTHING RETURNING *",
                (*key, delivery.shop, delivery.topic, RECEIVED, now, now, now, headers, body),
            )
            if row is not None:
                return _event(row), True
            row = await _one(
                conn, "SELECT * FROM events WHERE source = %s AND delivery_key = %s", key
            )
            if row is None:
                raise StoreError(f"delivery {delivery.delivery_key} vanished while recorded")
            return _event(row), False

    async def get(self, event_id: int) -> Event | None:
        async with self._connection() as conn:
            row = await _one(conn, "SELECT * FROM events WHERE id = %s", (event_id,))
            return _event(row) if row else None

    async def history(self, event_id: int) -> list[Attempt]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM attempts WHERE event_id = %s ORDER BY number", (event_id,)
            )
            return [Attempt(**row) for row in await cursor.fetchall()]

    async def list_events(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        order: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[Event]:
        query, params = list_query(
            status=status, source=source, order=order, since=since, limit=limit, mark="%s"
        )
        async with self._connection() as conn:
            cursor = await conn.execute(query, params)
            return [_event(row) for row in await cursor.fetchall()]

    async def claim(self, event_id: int, owner: str, lease: float) -> Event | None:
        async with self._transaction() as (conn, now):
            row = await _one(
                conn,
                "UPDATE events SET status = %s, lease_owner = %s, lease_until = %s,"
                " updated_at = %s WHERE id = (SELECT id FROM events"
                f" WHERE id = %s AND {_DUE} FOR UPDATE SKIP LOCKED) RETURNING *",
                (PROCESSING, owner, now + lease, now, event_id, now, now),
            )
            return _event(row) if row else None

    async def claim_next(self, owner: str, lease: float) -> Event | None:
        async with self._transaction() as (conn, now):
            # SKIP LOCKED: replicas polling together each take a different event, none waits.
            row = await _one(
                conn,
                "UPDATE events SET status = %s, lease_owner = %s, lease_until = %s,"
                f" updated_at = %s WHERE id = (SELECT id FROM events WHERE {_DUE}"
                " ORDER BY COALESCE(next_attempt_at, 0), id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING *",
                (PROCESSING, owner, now + lease, now, now, now),
            )
            return _event(row) if row else None

    async def renew(self, event_id: int, owner: str, lease: float) -> bool:
        async with self._transaction() as (conn, now):
            renewed = await _changed(
                conn,
                "UPDATE events SET lease_until = %s"
                " WHERE id = %s AND lease_owner = %s AND status = %s",
                (now + lease, event_id, owner, PROCESSING),
            )
            await conn.execute(
                "UPDATE orders SET lease_until = %s WHERE event_id = %s AND invoice_id IS NULL",
                (now + lease, event_id),
            )
            return renewed == 1

    async def note(
        self, event_id: int, outcome: str, detail: str | None = None, delay: float | None = None
    ) -> None:
        async with self._transaction() as (conn, now):
            await _append(conn, event_id, now, outcome, detail, delay)

    async def finish(
        self,
        event_id: int,
        owner: str,
        status: str,
        *,
        reason: str | None = None,
        details: list[dict[str, str]] | None = None,
        invoice_id: int | None = None,
    ) -> bool:
        if status not in FINISHED - {CREATED}:
            raise ValueError(
                f"finish() ends events skipped, dead, rejected or tagged, not {status}"
            )
        problems = Json(details) if details else None
        async with self._transaction() as (conn, now):
            done = await _changed(
                conn,
                "UPDATE events SET status = %s, reason = %s, details = %s, invoice_id = %s,"
                f" next_attempt_at = NULL{_SETTLED}",
                (status, reason, problems, invoice_id, now, event_id, owner),
            )
            if done:
                await _append(conn, event_id, now, status, reason)
            return done == 1

    async def defer(
        self, event_id: int, owner: str, *, delay: float, reason: str, counted: bool = True
    ) -> bool:
        async with self._transaction() as (conn, now):
            deferred = await _changed(
                conn,
                "UPDATE events SET status = %s, reason = %s, attempts = attempts + %s,"
                f" next_attempt_at = %s{_SETTLED}",
                (RETRYING, reason, int(counted), now + delay, now, event_id, owner),
            )
            return deferred == 1

    async def release(self, event_id: int, owner: str) -> bool:
        async with self._transaction() as (conn, now):
            released = await _changed(
                conn,
                "UPDATE events SET status = CASE WHEN attempts > 0 THEN %s ELSE %s END,"
                f" next_attempt_at = NULL{_SETTLED}",
                (RETRYING, RECEIVED, now, event_id, owner),
            )
            return released == 1

    # -- orders -----------------------------------------------------------------

    async def claim_order(
        self, key: OrderKey, event_id: int, lease: float, order_name: str | None = None
    ) -> OrderClaim:
        order = (key.source, key.shop, key.order_id)
        async with self._transaction() as (conn, now):
            await conn.execute(
                "UPDATE events SET order_id = %s, order_name = %s WHERE id = %s",
                (key.order_id, order_name, event_id),
            )
            # Insert or lock the existing row: of two replicas, the second waits for the first
            # to commit and then sees its claim. A row released in between means: insert again.
            for _ in range(3):
                inserted = await _one(
                    conn,
                    "INSERT INTO orders (source, shop, order_id, event_id, lease_until,"
                    " created_at) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (source, shop, order_id) DO NOTHING RETURNING event_id",
                    (*order, event_id, now + lease, now),
                )
                if inserted is not None:
                    return OrderClaim(acquired=True)
                row = await _one(conn, f"SELECT * FROM orders WHERE {_ORDER} FOR UPDATE", order)
                if row is not None:
                    break
            else:
                raise StoreError(f"order {key.order_id} keeps changing hands; try again")
            if row["invoice_id"] is not None:
                return OrderClaim(
                    acquired=False, invoice_id=row["invoice_id"], event_id=row["event_id"]
                )
            holder_lapsed = row["lease_until"] is None or row["lease_until"] < now
            if row["event_id"] != event_id and not holder_lapsed:
                return OrderClaim(acquired=False, event_id=row["event_id"])
            await conn.execute(
                f"UPDATE orders SET event_id = %s, lease_until = %s WHERE {_ORDER}",
                (event_id, now + lease, *order),
            )
            return OrderClaim(acquired=True, sent=row["sent"])

    async def mark_sent(self, key: OrderKey, event_id: int, owner: str, sent: bool = True) -> bool:
        async with self._transaction() as (conn, now):
            cursor = await conn.execute(
                f"UPDATE orders SET sent = %s WHERE {_ORDER}"
                " AND event_id = %s AND invoice_id IS NULL AND EXISTS (SELECT 1 FROM events"
                f" WHERE id = %s AND lease_owner = %s AND status = '{PROCESSING}'"
                " AND lease_until >= %s)",
                (sent, key.source, key.shop, key.order_id, event_id, event_id, owner, now),
            )
            return cursor.rowcount == 1

    async def complete(
        self, event_id: int, owner: str, key: OrderKey, invoice_id: int
    ) -> tuple[bool, int]:
        order = (key.source, key.shop, key.order_id)
        async with self._transaction() as (conn, now):
            # Rows are locked event first, then order, as in claim_order and renew (which the
            # lease keeper may run meanwhile): the other order could deadlock.
            await conn.execute("SELECT 1 FROM events WHERE id = %s FOR UPDATE", (event_id,))
            # One statement decides who owns the order's invoice: an invoice already recorded
            # is never overwritten, whatever another replica commits at the same moment.
            row = await _one(
                conn,
                "INSERT INTO orders (source, shop, order_id, invoice_id, event_id, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source, shop, order_id)"
                " DO UPDATE SET invoice_id = excluded.invoice_id, event_id = excluded.event_id,"
                " lease_until = NULL, sent = false WHERE orders.invoice_id IS NULL"
                " RETURNING invoice_id, event_id",
                (*order, invoice_id, event_id, now),
            )
            if row is None:
                row = await _one(
                    conn, f"SELECT invoice_id, event_id FROM orders WHERE {_ORDER}", order
                )
                assert row is not None  # the conflict that refused us is this row, now locked
            final_invoice, original = row["invoice_id"], row["event_id"]
            duplicate_of = original if original != event_id else None
            settled = await _changed(
                conn,
                "UPDATE events SET status = %s, invoice_id = %s, duplicate_of = %s,"
                f" reason = NULL, next_attempt_at = NULL{_SETTLED}",
                (CREATED, final_invoice, duplicate_of, now, event_id, owner),
            )
            if settled:
                outcome = CREATED if original == event_id else "duplicate"
                await _append(conn, event_id, now, outcome, f"invoice {final_invoice}")
            return settled == 1, original

    async def set_order(self, event_id: int, order_id: str, order_name: str | None) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE events SET order_id = %s, order_name = %s WHERE id = %s",
                (order_id, order_name, event_id),
            )

    async def invoice_for(self, key: OrderKey) -> int | None:
        async with self._connection() as conn:
            row = await _one(
                conn,
                f"SELECT invoice_id FROM orders WHERE {_ORDER}",
                (key.source, key.shop, key.order_id),
            )
            return row["invoice_id"] if row else None

    async def release_order(self, key: OrderKey, event_id: int) -> None:
        async with self._connection() as conn:
            await conn.execute(
                f"DELETE FROM orders WHERE {_ORDER} AND event_id = %s AND invoice_id IS NULL",
                (key.source, key.shop, key.order_id, event_id),
            )

    # -- operations -------------------------------------------------------------

    async def replay(self, event_id: int) -> Event:
        async with self._transaction() as (conn, now):
            row = await _one(
                conn, "SELECT status FROM events WHERE id = %s FOR UPDATE", (event_id,)
            )
            if row is None:
                raise StoreError(f"event {event_id} does not exist")
            if row["status"] not in REPLAYABLE:
                raise StoreError(
                    f"event {event_id} is {row['status']}; only dead or rejected events replay"
                )
            updated = await _one(
                conn,
                "UPDATE events SET status = %s, attempts = 0, next_attempt_at = NULL,"
                " started_at = %s, updated_at = %s WHERE id = %s RETURNING *",
                (RECEIVED, now, now, event_id),
            )
            assert updated is not None  # locked above
            await _append(conn, event_id, now, "replayed", f"was {row['status']}")
            return _event(updated)

    async def purge_payloads(self, older_than: float) -> int:
        async with self._connection() as conn:
            return await _changed(
                conn,
                "UPDATE events SET body = NULL WHERE body IS NOT NULL"
                " AND status IN (%s, %s, %s) AND updated_at < %s",
                (CREATED, SKIPPED, TAGGED, older_than),
            )

    async def counts(self) -> dict[str, int]:
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT status, COUNT(*) AS n FROM events GROUP BY status")
            return {row["status"]: row["n"] for row in await cursor.fetchall()}


class AdvisoryLocks:
    """One holder per key across every replica: a PostgreSQL advisory lock per held key.

    Tasks of one process queue on an in-process lock first, so a key takes at most one
    connection per replica however many tasks want it.
    """

    def __init__(
        self, connection: Callable[[], contextlib.AbstractAsyncContextManager[Connection]]
    ) -> None:
        self._connection = connection
        self._local = LocalLocks()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._local.hold(key), self._connection() as conn:
            await conn.execute(_KEY_LOCK, (key,))
            try:
                yield
            finally:
                # Also released by the pool's reset, should this be cut short.
                await conn.execute(_KEY_UNLOCK, (key,))


async def _unlock_all(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock_all()")


async def _version(conn: Connection) -> int | None:
    row = await _one(conn, "SELECT to_regclass('meta') IS NOT NULL AS present")
    if row is None or not row["present"]:
        return None
    row = await _one(conn, "SELECT value FROM meta WHERE key = 'schema_version'")
    return int(row["value"]) if row else None


async def _append(
    conn: Connection,
    event_id: int,
    now: float,
    outcome: str,
    detail: str | None,
    delay: float | None = None,
) -> None:
    # Numbering reads MAX(number): the event's row lock keeps two writers from sharing one.
    await conn.execute("SELECT 1 FROM events WHERE id = %s FOR UPDATE", (event_id,))
    await conn.execute(
        "INSERT INTO attempts (event_id, number, at, outcome, detail, delay)"
        " SELECT %s, COALESCE(MAX(number), 0) + 1, %s, %s, %s, %s"
        " FROM attempts WHERE event_id = %s",
        (event_id, now, outcome, detail, delay, event_id),
    )
