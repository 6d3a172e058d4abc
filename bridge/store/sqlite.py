"""The embedded store: one SQLite file in WAL mode, no server, right for one instance.

Every call runs on one dedicated thread that owns the connection, so the event loop never
blocks on disk and writes are serialised the way SQLite wants them. With
`durability = "full"` each commit is fsynced before the delivery is answered.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from bridge.errors import StoreError
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

T = TypeVar("T")

_DUE = (
    f"((status IN ('{RECEIVED}', '{RETRYING}')"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= ?))"
    f" OR (status = '{PROCESSING}' AND lease_until < ?))"
)


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        source=row["source"],
        delivery_key=row["delivery_key"],
        shop=row["shop"],
        topic=row["topic"],
        status=row["status"],
        received_at=row["received_at"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        order_id=row["order_id"],
        order_name=row["order_name"],
        reason=row["reason"],
        details=json.loads(row["details"]) if row["details"] else [],
        invoice_id=row["invoice_id"],
        duplicate_of=row["duplicate_of"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        headers=json.loads(row["headers"]),
        body=row["body"],
    )


class SQLiteStore(Store):
    """The `sqlite:///path` store."""

    def __init__(self, path: str | Path, *, durability: str = "full") -> None:
        self.path = str(path)
        self._durability = durability
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-sqlite")
        self._db: sqlite3.Connection | None = None

    # -- plumbing ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            try:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self._durability.upper()}")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                if db.in_transaction:  # a failed COMMIT leaves the transaction open
                    db.execute("ROLLBACK")
                raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            db = self._connect()
            try:
                return work(db)
            except sqlite3.Error as exc:
                if db.in_transaction:  # a failed COMMIT leaves the transaction open
                    db.execute("ROLLBACK")
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _write(self, work: Callable[[sqlite3.Connection, float], T]) -> T:
        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db, time.time())
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._run(transaction)

    # -- schema -----------------------------------------------------------------

    async def migrate(self) -> None:
        schema = resources.files("bridge.store").joinpath("sqlite_schema.sql").read_text()

        def apply(db: sqlite3.Connection) -> None:
            current = _version(db)
            if current is not None and current > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema version {current} is newer than this release "
                    f"({SCHEMA_VERSION}); upgrade the bridge"
                )
            db.executescript(schema)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

        await self._run(apply)

    async def schema_version(self) -> int | None:
        return await self._run(_version)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(shut)
        self._executor.shutdown(wait=True)

    # -- events -----------------------------------------------------------------

    async def record(self, delivery: NewDelivery) -> tuple[Event, bool]:
        def insert(db: sqlite3.Connection, now: float) -> tuple[Event, bool]:
            cursor = db.execute(
                "INSERT INTO events (source, delivery_key, shop, topic, status, received_at,"
                " updated_at, started_at, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source, delivery_key) DO NOTHING",
                (
                    delivery.source,
                    delivery.delivery_key,
                    delivery.shop,
                    delivery.topic,
                    RECEIVED,
                    now,
                    now,
                    now,
                    json.dumps(delivery.headers),
                    delivery.body,
                ),
            )
            created = cursor.rowcount == 1
            row = db.execute(
                "SELECT * FROM events WHERE source = ? AND delivery_key = ?",
                (delivery.source, delivery.delivery_key),
            ).fetchone()
            return _event(row), created

        return await self._write(insert)

    async def get(self, event_id: int) -> Event | None:
        def select(db: sqlite3.Connection) -> Event | None:
            row = db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
            return _event(row) if row else None

        return await self._run(select)

    async def history(self, event_id: int) -> list[Attempt]:
        def select(db: sqlite3.Connection) -> list[Attempt]:
            rows = db.execute(
                "SELECT * FROM attempts WHERE event_id = ? ORDER BY number", (event_id,)
            ).fetchall()
            return [Attempt(**dict(row)) for row in rows]

        return await self._run(select)

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
            status=status, source=source, order=order, since=since, limit=limit, mark="?"
        )

        def select(db: sqlite3.Connection) -> list[Event]:
            return [_event(row) for row in db.execute(query, params).fetchall()]

        return await self._run(select)

    async def claim(self, event_id: int, owner: str, lease: float) -> Event | None:
        def take(db: sqlite3.Connection, now: float) -> Event | None:
            row = db.execute(
                f"UPDATE events SET status = ?, lease_owner = ?, lease_until = ?, updated_at = ?"
                f" WHERE id = ? AND {_DUE} RETURNING *",
                (PROCESSING, owner, now + lease, now, event_id, now, now),
            ).fetchone()
            return _event(row) if row else None

        return await self._write(take)

    async def claim_next(self, owner: str, lease: float) -> Event | None:
        def take(db: sqlite3.Connection, now: float) -> Event | None:
            row = db.execute(
                f"SELECT id FROM events WHERE {_DUE} ORDER BY COALESCE(next_attempt_at, 0), id"
                " LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            claimed = db.execute(
                "UPDATE events SET status = ?, lease_owner = ?, lease_until = ?, updated_at = ?"
                " WHERE id = ? RETURNING *",
                (PROCESSING, owner, now + lease, now, row["id"]),
            ).fetchone()
            return _event(claimed)

        return await self._write(take)

    async def renew(self, event_id: int, owner: str, lease: float) -> bool:
        def extend(db: sqlite3.Connection, now: float) -> bool:
            cursor = db.execute(
                "UPDATE events SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = ?",
                (now + lease, event_id, owner, PROCESSING),
            )
            db.execute(
                "UPDATE orders SET lease_until = ? WHERE event_id = ? AND invoice_id IS NULL",
                (now + lease, event_id),
            )
            return cursor.rowcount == 1

        return await self._write(extend)

    async def note(
        self, event_id: int, outcome: str, detail: str | None = None, delay: float | None = None
    ) -> None:
        def append(db: sqlite3.Connection, now: float) -> None:
            _append(db, event_id, now, outcome, detail, delay)

        await self._write(append)

    def _settle(
        self, db: sqlite3.Connection, event_id: int, owner: str, now: float, **fields: Any
    ) -> bool:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        cursor = db.execute(
            f"UPDATE events SET {assignments}, lease_owner = NULL, lease_until = NULL,"
            " updated_at = ? WHERE id = ? AND lease_owner = ? AND status = ?",
            (*fields.values(), now, event_id, owner, PROCESSING),
        )
        return cursor.rowcount == 1

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

        def end(db: sqlite3.Connection, now: float) -> bool:
            done = self._settle(
                db,
                event_id,
                owner,
                now,
                status=status,
                reason=reason,
                details=json.dumps(details) if details else None,
                invoice_id=invoice_id,
                next_attempt_at=None,
            )
            if done:
                _append(db, event_id, now, status, reason)
            return done

        return await self._write(end)

    async def defer(
        self, event_id: int, owner: str, *, delay: float, reason: str, counted: bool = True
    ) -> bool:
        def later(db: sqlite3.Connection, now: float) -> bool:
            row = db.execute("SELECT attempts FROM events WHERE id = ?", (event_id,)).fetchone()
            attempts = (row["attempts"] if row else 0) + (1 if counted else 0)
            return self._settle(
                db,
                event_id,
                owner,
                now,
                status=RETRYING,
                reason=reason,
                attempts=attempts,
                next_attempt_at=now + delay,
            )

        return await self._write(later)

    async def release(self, event_id: int, owner: str) -> bool:
        def give_back(db: sqlite3.Connection, now: float) -> bool:
            row = db.execute("SELECT attempts FROM events WHERE id = ?", (event_id,)).fetchone()
            status = RETRYING if row and row["attempts"] else RECEIVED
            return self._settle(db, event_id, owner, now, status=status, next_attempt_at=None)

        return await self._write(give_back)

    # -- orders -----------------------------------------------------------------

    async def claim_order(
        self, key: OrderKey, event_id: int, lease: float, order_name: str | None = None
    ) -> OrderClaim:
        def take(db: sqlite3.Connection, now: float) -> OrderClaim:
            db.execute(
                "UPDATE events SET order_id = ?, order_name = ? WHERE id = ?",
                (key.order_id, order_name, event_id),
            )
            row = db.execute(
                "SELECT * FROM orders WHERE source = ? AND shop = ? AND order_id = ?",
                (key.source, key.shop, key.order_id),
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO orders (source, shop, order_id, event_id, lease_until,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (key.source, key.shop, key.order_id, event_id, now + lease, now),
                )
                return OrderClaim(acquired=True)
            if row["invoice_id"] is not None:
                return OrderClaim(
                    acquired=False, invoice_id=row["invoice_id"], event_id=row["event_id"]
                )
            holder_lapsed = row["lease_until"] is None or row["lease_until"] < now
            if row["event_id"] != event_id and not holder_lapsed:
                return OrderClaim(acquired=False, event_id=row["event_id"])
            db.execute(
                "UPDATE orders SET event_id = ?, lease_until = ?"
                " WHERE source = ? AND shop = ? AND order_id = ?",
                (event_id, now + lease, key.source, key.shop, key.order_id),
            )
            return OrderClaim(acquired=True, sent=bool(row["sent"]))

        return await self._write(take)

    async def mark_sent(self, key: OrderKey, event_id: int, owner: str, sent: bool = True) -> bool:
        def mark(db: sqlite3.Connection, now: float) -> bool:
            cursor = db.execute(
                "UPDATE orders SET sent = ? WHERE source = ? AND shop = ? AND order_id = ?"
                " AND event_id = ? AND invoice_id IS NULL AND EXISTS (SELECT 1 FROM events"
                " WHERE id = ? AND lease_owner = ? AND status = ? AND lease_until >= ?)",
                (
                    int(sent),
                    key.source,
                    key.shop,
                    key.order_id,
                    event_id,
                    event_id,
                    owner,
                    PROCESSING,
                    now,
                ),
            )
            return cursor.rowcount == 1

        return await self._write(mark)

    async def complete(
        self, event_id: int, owner: str, key: OrderKey, invoice_id: int
    ) -> tuple[bool, int]:
        def done(db: sqlite3.Connection, now: float) -> tuple[bool, int]:
            row = db.execute(
                "SELECT invoice_id, event_id FROM orders"
                " WHERE source = ? AND shop = ? AND order_id = ?",
                (key.source, key.shop, key.order_id),
            ).fetchone()
            if row is not None and row["invoice_id"] is not None:
                final_invoice, original = row["invoice_id"], row["event_id"]
            else:
                final_invoice, original = invoice_id, event_id
                db.execute(
                    "INSERT INTO orders (source, shop, order_id, invoice_id, event_id,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, shop, order_id)"
                    " DO UPDATE SET invoice_id = excluded.invoice_id,"
                    " event_id = excluded.event_id, lease_until = NULL, sent = 0",
                    (key.source, key.shop, key.order_id, invoice_id, event_id, now),
                )
            settled = self._settle(
                db,
                event_id,
                owner,
                now,
                status=CREATED,
                invoice_id=final_invoice,
                duplicate_of=original if original != event_id else None,
                reason=None,
                next_attempt_at=None,
            )
            if settled:
                outcome = CREATED if original == event_id else "duplicate"
                _append(db, event_id, now, outcome, f"invoice {final_invoice}")
            return settled, original

        return await self._write(done)

    async def set_order(self, event_id: int, order_id: str, order_name: str | None) -> None:
        def update(db: sqlite3.Connection, now: float) -> None:
            db.execute(
                "UPDATE events SET order_id = ?, order_name = ? WHERE id = ?",
                (order_id, order_name, event_id),
            )

        await self._write(update)

    async def invoice_for(self, key: OrderKey) -> int | None:
        def select(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT invoice_id FROM orders WHERE source = ? AND shop = ? AND order_id = ?",
                (key.source, key.shop, key.order_id),
            ).fetchone()
            return row["invoice_id"] if row else None

        return await self._run(select)

    async def release_order(self, key: OrderKey, event_id: int) -> None:
        def drop(db: sqlite3.Connection, now: float) -> None:
            db.execute(
                "DELETE FROM orders WHERE source = ? AND shop = ? AND order_id = ?"
                " AND event_id = ? AND invoice_id IS NULL",
                (key.source, key.shop, key.order_id, event_id),
            )

        await self._write(drop)

    # -- operations -------------------------------------------------------------

    async def replay(self, event_id: int) -> Event:
        def reset(db: sqlite3.Connection, now: float) -> Event:
            row = db.execute("SELECT status FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise StoreError(f"event {event_id} does not exist")
            if row["status"] not in REPLAYABLE:
                raise StoreError(
                    f"event {event_id} is {row['status']}; only dead or rejected events replay"
                )
            updated = db.execute(
                "UPDATE events SET status = ?, attempts = 0, next_attempt_at = NULL,"
                " started_at = ?, updated_at = ? WHERE id = ? RETURNING *",
                (RECEIVED, now, now, event_id),
            ).fetchone()
            _append(db, event_id, now, "replayed", f"was {row['status']}")
            return _event(updated)

        return await self._write(reset)

    async def purge_payloads(self, older_than: float) -> int:
        def purge(db: sqlite3.Connection, now: float) -> int:
            cursor = db.execute(
                "UPDATE events SET body = NULL WHERE body IS NOT NULL"
                " AND status IN (?, ?, ?) AND updated_at < ?",
                (CREATED, SKIPPED, TAGGED, older_than),
            )
            return cursor.rowcount

        return await self._write(purge)

    async def counts(self) -> dict[str, int]:
        def count(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM events GROUP BY status")
            return {row["status"]: row["n"] for row in rows}

        return await self._run(count)


def _version(db: sqlite3.Connection) -> int | None:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not exists:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row["value"]) if row else None


def _append(
    db: sqlite3.Connection,
    event_id: int,
    now: float,
    outcome: str,
    detail: str | None,
    delay: float | None = None,
) -> None:
    db.execute(
        "INSERT INTO attempts (event_id, number, at, outcome, detail, delay)"
        " SELECT ?, COALESCE(MAX(number), 0) + 1, ?, ?, ?, ? FROM attempts WHERE event_id = ?",
        (event_id, now, outcome, detail, delay, event_id),
    )
