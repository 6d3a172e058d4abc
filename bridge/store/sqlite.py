"""The embedded store: one SQLite file in WAL mode, no server, right for one instance.

The statements run on the event loop's own thread; only what waits on the disk or on another
process (COMMIT's fsync, a write lock another process holds, long reads) goes to a thread.
That is deliberate: Python's sqlite3 lets go of the GIL around every statement, and a store
thread that wants it back waits out the busy loop's switch interval each time (5 ms), so a
13 µs lookup took 0.5–13 ms under load. Writes that arrive while a commit is in flight
commit together (group commit): each in its own savepoint, so one rule's failure undoes only
its own writes, and all under one COMMIT, so one fsync serves many. No write is answered
before its commit. With `durability = "full"` each commit is fsynced. Reads use connections
of their own, which WAL lets read the last commit while the next one is written. Leases are
measured on this host's monotonic clock and boot id (bridge/store/clock.py).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bridge.errors import StoreError, StoreUnopenable
from bridge.store.clock import HostClock
from bridge.store.connector import (
    Clock,
    Connector,
    LockSchema,
    PendingWrite,
    Query,
    Request,
    Rule,
    Script,
    Steps,
    TableExists,
    Wake,
)
from bridge.store.sql import SQLStore

T = TypeVar("T")

_PARAM = re.compile(r"%\((\w+)\)s")
# One writer holds the whole database (BEGIN IMMEDIATE), so row locks have nothing to add.
_ROW_LOCK = re.compile(r"\s+FOR UPDATE(\s+SKIP LOCKED)?")
_GROUP_LIMIT = 256  # rules per commit: a burst is cut into groups the loop runs in turn


@functools.lru_cache(maxsize=256)
def _dialect(sql: str) -> str:
    return _PARAM.sub(r":\1", _ROW_LOCK.sub("", sql))


def _statements(script: str) -> Iterator[str]:
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


class SQLiteConnector(Connector):
    """Runs rules on the loop's thread; commits, lock waits and long reads on threads."""

    dialect = "sqlite"

    def __init__(
        self, path: str | Path, *, durability: str = "full", clock: HostClock | None = None
    ) -> None:
        self.path = str(path)
        self.clock = clock or HostClock()
        self._durability = durability
        # A private in-memory database has one connection and no disk: everything runs inline.
        self._memory = self.path == ":memory:"
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-sqlite")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-sqlite-read")
        self._db: sqlite3.Connection | None = None
        self._lookups: sqlite3.Connection | None = None  # the loop's reads
        self._reads: sqlite3.Connection | None = None  # the read thread's
        self._waiting: list[PendingWrite[Any]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._using = asyncio.Lock()  # one user of the write connection at a time

    def _open(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            if not self._memory:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
            db.row_factory = _dict_row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._durability.upper()}")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
        except (sqlite3.Error, OSError) as exc:  # OSError: its directory cannot be made
            if db is not None:
                db.close()
            raise StoreUnopenable(self.path, exc) from exc
        return db

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _reader_db(self, name: str) -> sqlite3.Connection:
        """The read connection kept under `name` (the one connection, in memory)."""
        if self._memory:
            return self._connect()
        db: sqlite3.Connection | None = getattr(self, name)
        if db is None:
            db = self._open()
            setattr(self, name, db)
        return db

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        error = StoreError(f"SQLite store {self.path}: {exc}")
        error.__cause__ = exc
        return error

    def _call(self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(db)
        except sqlite3.Error as exc:
            if db.in_transaction:  # a failed COMMIT leaves the transaction open
                db.execute("ROLLBACK")
            raise self._failed(exc) from exc

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on the write connection, on its thread, between groups."""
        async with self._using:
            return await asyncio.get_running_loop().run_in_executor(
                self._writer, lambda: self._call(self._connect(), work)
            )

    def _drive(self, db: sqlite3.Connection, rule: Rule[T]) -> T:
        steps = Steps(rule)
        request = steps.send(None)
        while request is not None:
            request = steps.send(self._answer(db, request))
        result: T = steps.result
        return result

    def _answer(self, db: sqlite3.Connection, request: Request) -> object:
        if isinstance(request, Query):
            params = request.params
            if request.clocked:
                params = {**params, **self.clock.now().params()}
            cursor = db.execute(_dialect(request.sql), params)
            return cursor.fetchall() if request.fetch == "rows" else cursor.rowcount
        if isinstance(request, Script):
            for statement in _statements(request.sql):
                db.execute(statement)
            return None
        if isinstance(request, Clock):
            return self.clock.now()
        if isinstance(request, LockSchema):
            return None  # BEGIN IMMEDIATE already keeps every other writer out
        if isinstance(request, TableExists):
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (request.name,)
            )
            return found.fetchone() is not None
        if isinstance(request, Wake):
            return None  # one instance per file: its own worker is woken in process
        raise TypeError(f"unknown store request {request!r}")

    # -- writes -------------------------------------------------------------------

    async def write(self, rule: Rule[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append(PendingWrite(rule, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush(), name="bridge-sqlite-commit")
        return await future

    async def _flush(self) -> None:
        """Commit what waits, group after group; what arrives meanwhile joins the next."""
        try:
            while self._waiting:
                group = self._waiting[:_GROUP_LIMIT]
                del self._waiting[:_GROUP_LIMIT]
                async with self._using:
                    await self._commit(group)
        finally:
            self._flushing = None

    async def _commit(self, group: list[PendingWrite[Any]]) -> None:
        try:
            db = self._connect()
            began = self._begin_here(db)
        except StoreError as exc:
            self._settle(group, exc)
            return
        except sqlite3.Error as exc:
            self._settle(group, self._failed(exc))
            return
        loop = asyncio.get_running_loop()
        if not began:  # another process holds the write lock: wait for it on the thread
            failure = await loop.run_in_executor(self._writer, self._group_on_thread, db, group)
            self._settle(group, failure)
            return
        self._run_rules(db, group)
        if self._memory:
            failure = self._end(db)
        else:
            failure = await loop.run_in_executor(self._writer, self._end, db)
        self._settle(group, failure)

    def _begin_here(self, db: sqlite3.Connection) -> bool:
        """BEGIN IMMEDIATE without waiting; False if another connection holds the lock."""
        timeout = db.execute("PRAGMA busy_timeout").fetchone()["timeout"]
        db.execute("PRAGMA busy_timeout=0")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            return False
        finally:
            db.execute(f"PRAGMA busy_timeout={int(timeout)}")
        return True

    def _group_on_thread(
        self, db: sqlite3.Connection, group: list[PendingWrite[Any]]
    ) -> StoreError | None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return self._failed(exc)
        self._run_rules(db, group)
        return self._end(db)

    def _run_rules(self, db: sqlite3.Connection, group: list[PendingWrite[Any]]) -> None:
        for write in group:
            try:
                db.execute("SAVEPOINT rule")
                write.result = self._drive(db, write.rule)
                db.execute("RELEASE rule")
            except BaseException as exc:
                write.error = self._failed(exc) if isinstance(exc, sqlite3.Error) else exc
                try:
                    db.execute("ROLLBACK TO rule")
                    db.execute("RELEASE rule")
                except sqlite3.Error:
                    pass  # the transaction is gone; COMMIT below says so to everyone

    def _end(self, db: sqlite3.Connection) -> StoreError | None:
        """COMMIT (the fsync), or the error that undid the whole group."""
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:  # a failed COMMIT leaves the transaction open
                db.execute("ROLLBACK")
            return self._failed(exc)
        return None

    @staticmethod
    def _settle(group: list[PendingWrite[Any]], failure: StoreError | None) -> None:
        for write in group:
            if failure is not None:
                write.error, write.result = failure, None
            write.settle()

    # -- reads --------------------------------------------------------------------

    async def look(self, rule: Rule[T]) -> T:
        """A read of a few rows by key, run at once on the loop's thread."""
        return self._call(self._reader_db("_lookups"), lambda db: self._drive(db, rule))

    async def read(self, rule: Rule[T]) -> T:
        if self._memory:
            return await self.look(rule)
        return await asyncio.get_running_loop().run_in_executor(
            self._reader,
            lambda: self._call(self._reader_db("_reads"), lambda db: self._drive(db, rule)),
        )

    async def close(self) -> None:
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
        async with self._using:
            loop = asyncio.get_running_loop()
            for executor, name in ((self._writer, "_db"), (self._reader, "_reads")):
                db = getattr(self, name)
                if db is not None:
                    await loop.run_in_executor(executor, db.close)
                    setattr(self, name, None)
            if self._lookups is not None:
                self._lookups.close()
                self._lookups = None
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)


class SQLiteStore(SQLStore):
    """The `sqlite:///path` store (and `memory://`, a private in-memory database)."""

    def __init__(
        self, path: str | Path, *, durability: str = "full", clock: HostClock | None = None
    ) -> None:
        super().__init__(SQLiteConnector(path, durability=durability, clock=clock))
