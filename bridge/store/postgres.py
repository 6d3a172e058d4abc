"""The scale-out store: one PostgreSQL database shared by every replica.

Replicas claim events with `FOR UPDATE SKIP LOCKED`, so a due event goes to one of them, and
read every time (leases included) from the database server's clock, one clock for all of
them, so hosts with skewed or stepped clocks agree on when a lease lapses. Connections come
from a small pool opened on first use.

Writes that arrive while the connector's groups are busy commit together (group commit): each
rule in its own savepoint, so one rule's failure undoes only its own writes, under one COMMIT,
so one WAL flush and a few round trips serve many. No write is answered before its commit. A
rule that PostgreSQL picks as a deadlock victim (two replicas' groups can wait on each other's
row locks) is undone to its savepoint, and run again alone once its group has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import select
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.rows import DictRow, dict_row
from psycopg.types.string import TextLoader

from bridge.errors import StoreError
from bridge.resolver import LocalLocks
from bridge.store.clock import Now
from bridge.store.connector import (
    Clock,
    Connector,
    LockSchema,
    PendingWrite,
    Query,
    Request,
    Rerunnable,
    Rule,
    Script,
    Steps,
    TableExists,
    Wake,
)
from bridge.store.listener import CHANNEL, Listener
from bridge.store.sql import SQLStore

T = TypeVar("T")
Connection = psycopg.AsyncConnection[DictRow]
Pool = psycopg_pool.AsyncConnectionPool[Connection]

_SERVER_NOW = "extract(epoch FROM clock_timestamp())::double precision"
_CLOCK = f"SELECT {_SERVER_NOW} AS now"
_TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL AS present"
_MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('bridge.migrate ' || current_schema()))"
_KEY_LOCK = "SELECT pg_advisory_lock(hashtext('bridge.resolver'), hashtext(%s))"
_WAKE = f"NOTIFY {CHANNEL}"
_KEY_UNLOCK = "SELECT pg_advisory_unlock(hashtext('bridge.resolver'), hashtext(%s))"
# A group's statements around its rules: each rule between SAVEPOINT and RELEASE, the next
# rule's SAVEPOINT sent with the last one's RELEASE, in one round trip.
_FIRST = "BEGIN; SAVEPOINT rule"
_NEXT = "RELEASE rule; SAVEPOINT rule"
_UNDO = "ROLLBACK TO rule"
_LAST = "RELEASE rule; COMMIT"
# Errors that say "this transaction lost a race", not "this rule is wrong": run it again.
_LOST_RACE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_ALONE_TRIES = 3
# Groups committing at once, each on its own connection. A group waits a round trip per
# statement, so with one in flight every write queues behind it (full path, 32 senders:
# 141-153 invoices/s with one, 188-255/s with four); the pool's other connections serve reads.
GROUPS_IN_FLIGHT = 4


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


async def _json_as_text(conn: Connection) -> None:
    # JSON columns come back as the text that was stored, as SQLite gives them.
    conn.adapters.register_loader("json", TextLoader)


@functools.lru_cache(maxsize=64)
def _clocked(sql: str) -> str:
    """A clocked query reading the server's clock itself, as `_CLOCK` and `_now` would."""
    for name in ("now", "lease_now"):
        sql = sql.replace(f"%({name})s", _SERVER_NOW)
    return sql.replace("%(boot)s", "''")


def _now(row: DictRow | None) -> Now:
    assert row is not None
    return Now(wall=row["now"], lease=row["now"], boot="")


def _readable(fd: int) -> bool:
    # poll, not select: a busy process's descriptors can pass select's limit of 1024.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def _check(conn: Connection) -> None:
    """Check a pooled connection only when the server may have closed it.

    An idle connection's socket turns readable only when the server wrote to it unasked: its
    goodbye before a restart or failover, or the end of the stream. A round trip per
    checkout to find that out would cost as much as the query it precedes.
    """
    if conn.closed or _readable(conn.pgconn.socket):
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)


class PostgresConnector(Connector):
    """Runs rules on pooled connections; writes in groups that share one transaction."""

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 10,
        timeout: float = 5.0,
        groups: int = GROUPS_IN_FLIGHT,
        group_size: int = 64,
    ) -> None:
        self.url = url
        self.safe_url = redact(url)
        self._secret = _password(url)
        self._max_size = max_size
        self._timeout = timeout  # seconds to wait for a connection before StoreError
        self._pool: Pool | None = None
        self._lock_pool: Pool | None = None
        self._groups = groups  # groups committing at once, each on its own connection
        self._group_size = group_size  # rules per transaction: bounds how long locks are held
        self._waiting: list[PendingWrite[Any]] = []
        self._committers: set[asyncio.Task[None]] = set()
        # Committers still taking groups; a finished task leaves the set only a hop later.
        self._committing = 0

    def _new_pool(self, name: str, min_size: int, **hooks: Any) -> Pool:
        return psycopg_pool.AsyncConnectionPool(
            self.url,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            # A connection the server dropped (a restart, a failover) is replaced, not used.
            check=_check,
            name=name,
            open=False,
            **hooks,
        )

    def hide(self, text: str) -> str:
        """`text` with the connection's password hidden."""
        return text.replace(self._secret, "***") if self._secret else text

    def _error(self, exc: psycopg.Error, cause: str | None = None) -> StoreError:
        message = f"PostgreSQL store {self.safe_url}: {exc}"
        if cause:
            message += f" ({cause})"
        return StoreError(self.hide(message))

    async def _opened(self, pool: Pool) -> Pool:
        try:
            await pool.open()
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        if self._pool is None:
            self._pool = self._new_pool("bridge-store", min_size=1, configure=_json_as_text)
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
    async def lock_connection(self) -> AsyncIterator[Connection]:
        """A connection of its own for session locks, which must not leak to the next user."""
        if self._lock_pool is None:
            self._lock_pool = self._new_pool("bridge-locks", min_size=0, reset=_unlock_all)
        pool = await self._opened(self._lock_pool)
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    async def _drive(self, conn: Connection, rule: Rule[T], opening: str | None = None) -> T:
        steps = Steps(rule)
        request = steps.send(None) if opening is None else await self._open(conn, steps, opening)
        while request is not None:
            request = steps.send(await self._answer(conn, request))
        result: T = steps.result
        return result

    async def _open(self, conn: Connection, steps: Steps, opening: str) -> Request | None:
        """The rule's first request, `opening` (its savepoint) sent before it.

        Nearly every write starts by asking the clock: that goes out with the savepoint, in
        one round trip.
        """
        try:
            request = steps.send(None)
        except Exception:
            await conn.execute(opening, prepare=False)  # so that the savepoint can be undone
            raise
        if not isinstance(request, Clock):
            await conn.execute(opening, prepare=False)
            return request
        cursor = await conn.execute(f"{opening}; {_CLOCK}", prepare=False)
        while cursor.nextset():
            pass
        return steps.send(_now(await cursor.fetchone()))

    async def _answer(self, conn: Connection, request: Request) -> object:
        if isinstance(request, Query):
            sql = _clocked(request.sql) if request.clocked else request.sql
            cursor = await conn.execute(sql, request.params)
            return await cursor.fetchall() if request.fetch == "rows" else cursor.rowcount
        if isinstance(request, Script):
            await conn.execute(request.sql)  # our own file; several statements, no parameters
            return None
        if isinstance(request, Clock):
            cursor = await conn.execute(_CLOCK)
            return _now(await cursor.fetchone())
        if isinstance(request, LockSchema):
            await conn.execute(_MIGRATE_LOCK)
            return None
        if isinstance(request, TableExists):
            cursor = await conn.execute(_TABLE_EXISTS, (request.name,))
            row = await cursor.fetchone()
            return bool(row and row["present"])
        if isinstance(request, Wake):
            await conn.execute(_WAKE)  # delivered at commit, and only if it commits
            return None
        raise TypeError(f"unknown store request {request!r}")

    async def write(self, rule: Rule[T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(PendingWrite(rule, future))
        if self._committing < self._groups:
            self._committing += 1
            committer = asyncio.create_task(self._commit_groups())
            self._committers.add(committer)
            committer.add_done_callback(self._committers.discard)
        return await future

    async def _commit_groups(self) -> None:
        """Commit what is waiting, a group at a time, until nothing is."""
        try:
            await self._commit_waiting()
        finally:
            self._committing -= 1

    async def _commit_waiting(self) -> None:
        while self._waiting:
            group = self._waiting[: self._group_size]
            del self._waiting[: self._group_size]
            try:
                await self._commit_group(group)
            except BaseException:
                # Cancelled: no writer is left waiting on a group that is gone.
                cut = StoreError(f"PostgreSQL store {self.safe_url}: write cut short")
                for write in (*group, *self._waiting):
                    write.error = cut
                    write.settle()
                self._waiting.clear()
                raise

    async def _commit_group(self, group: list[PendingWrite[Any]]) -> None:
        try:
            async with self._connection() as conn:
                await self._run_group(conn, group)
        except StoreError as exc:
            for write in group:
                write.error, write.again = exc, False
        for write in group:
            if not write.again:
                write.settle()
        for write in group:
            if write.again:
                await self._write_alone(write)
                write.settle()

    async def _run_group(self, conn: Connection, group: list[PendingWrite[Any]]) -> None:
        """One transaction, a savepoint per rule; raises what fails the whole group."""
        control = _FIRST
        for write in group:
            try:
                write.result = await self._drive(conn, write.rule, opening=control)
            except _LOST_RACE as exc:
                write.again = isinstance(write.rule, Rerunnable)
                write.error = None if write.again else self._error(exc)
                await conn.execute(_UNDO, prepare=False)
            except psycopg.Error as exc:
                if conn.broken:
                    raise  # the connection is gone, and the transaction with it
                write.error = self._error(exc)
                await conn.execute(_UNDO, prepare=False)
            except Exception as exc:
                write.error = exc
                await conn.execute(_UNDO, prepare=False)
            control = _NEXT
        try:
            await conn.execute(_LAST, prepare=False)
        except _LOST_RACE as exc:
            await conn.execute("ROLLBACK", prepare=False)
            for write in group:
                write.again = isinstance(write.rule, Rerunnable)
                write.result, write.error = None, None if write.again else self._error(exc)

    async def _write_alone(self, write: PendingWrite[Any]) -> None:
        """Run a rule that lost a race in its group again, in a transaction of its own."""
        assert isinstance(write.rule, Rerunnable)
        for attempt in range(_ALONE_TRIES):
            write.rule = write.rule.again()
            try:
                async with self._connection() as conn, conn.transaction():
                    write.result = await self._drive(conn, write.rule)
                write.error = None
                return
            except StoreError as exc:
                write.error = exc
                if not isinstance(exc.__cause__, _LOST_RACE) or attempt == _ALONE_TRIES - 1:
                    return
            except Exception as exc:
                write.error = exc
                return

    async def read(self, rule: Rule[T]) -> T:
        async with self._connection() as conn:
            return await self._drive(conn, rule)

    async def close(self) -> None:
        # Groups in flight commit and answer their writers before the pool goes.
        while self._committers:
            await asyncio.wait(set(self._committers))
        for pool in (self._pool, self._lock_pool):
            if pool is not None:
                await pool.close()


class PostgresStore(SQLStore):
    """The `postgresql://user@host/db` store, safe to share between replicas."""

    connector: PostgresConnector

    def __init__(self, url: str, *, max_size: int = 10, timeout: float = 5.0) -> None:
        super().__init__(PostgresConnector(url, max_size=max_size, timeout=timeout))
        self._key_locks: AdvisoryLocks | None = None

    def listener(self, wake: Callable[[], None], check_every: float) -> Listener:
        return Listener(self.connector.url, wake, check_every=check_every, hide=self.connector.hide)

    def key_locks(self) -> AdvisoryLocks:
        """Per-key locks shared by every replica on this database (the resolver's single flight)."""
        if self._key_locks is None:
            self._key_locks = AdvisoryLocks(self.connector.lock_connection)
        return self._key_locks


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
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        ordered = sorted(set(keys))  # the order every holder takes them in
        async with self._local.hold(*ordered), self._connection() as conn:
            # Also released by the pool's reset, should this be cut short.
            for key in ordered:
                await conn.execute(_KEY_LOCK, (key,))
            try:
                yield
            finally:
                for key in reversed(ordered):
                    await conn.execute(_KEY_UNLOCK, (key,))


async def _unlock_all(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock_all()")
