"""The embedded store: one SQLite file in WAL mode, no server, right for one instance.

Every rule runs on one dedicated thread that owns the connection, in one hop, so the event
loop never blocks on disk and writes are serialised the way SQLite wants them. Writes that
arrive while the thread is busy commit together (group commit): each in its own savepoint, so
one rule's failure undoes only its own writes, and all under one COMMIT, so one fsync serves
many. No write is answered before its commit. With `durability = "full"` each commit is
fsynced. Leases are measured on this host's monotonic clock and boot id
(bridge/store/clock.py).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from bridge.errors import StoreError, StoreUnopenable
from bridge.store.clock import HostClock
from bridge.store.connector import (
    Clock,
    Connector,
    LockSchema,
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


@dataclass
class _Write(Generic[T]):
    """A write rule waiting for its group's commit, and the caller's future."""

    rule: Rule[T]
    future: asyncio.Future[T]
    result: T | None = None
    error: BaseException | None = None

    def settle(self) -> None:
        if self.future.done():  # the caller was cancelled; the write stands or fell anyway
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)  # type: ignore[arg-type]


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SQLiteConnector(Connector):
    """Runs rules on the one connection, on its one thread."""

    dialect = "sqlite"

    def __init__(
        self, path: str | Path, *, durability: str = "full", clock: HostClock | None = None
    ) -> None:
        self.path = str(path)
        self.clock = clock or HostClock()
        self._durability = durability
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-sqlite")
        self._db: sqlite3.Connection | None = None
        self._waiting: list[_Write[Any]] = []  # guarded by _queue_lock
        self._queue_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        db: sqlite3.Connection | None = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            db.row_factory = _dict_row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._durability.upper()}")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
        except (sqlite3.Error, OSError) as exc:  # OSError: its directory cannot be made
            if db is not None:
                db.close()
            raise StoreUnopenable(self.path, exc) from exc
        self._db = db
        return db

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

    def _drive(self, db: sqlite3.Connection, rule: Rule[T]) -> T:
        steps = Steps(rule)
        request = steps.send(None)
        while request is not None:
            request = steps.send(self._answer(db, request))
        result: T = steps.result
        return result

    def _answer(self, db: sqlite3.Connection, request: Request) -> object:
        if isinstance(request, Query):
            cursor = db.execute(_dialect(request.sql), request.params)
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

    async def write(self, rule: Rule[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        write = _Write(rule, future)
        with self._queue_lock:
            self._waiting.append(write)
        # One commit job per write; a job finds its write already taken by an earlier group
        # when the thread was busy, and returns at once.
        await loop.run_in_executor(self._executor, self._commit_group, loop)
        return await future

    def _commit_group(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._queue_lock:
            group, self._waiting = self._waiting, []
        if not group:
            return
        try:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, StoreError) as exc:
            failure = exc if isinstance(exc, StoreError) else self._failed(exc)
            self._settle(loop, group, failure)
            return
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
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:  # a failed COMMIT leaves the transaction open
                db.execute("ROLLBACK")
            self._settle(loop, group, self._failed(exc))
            return
        self._settle(loop, group, None)

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        error = StoreError(f"SQLite store {self.path}: {exc}")
        error.__cause__ = exc
        return error

    @staticmethod
    def _settle(
        loop: asyncio.AbstractEventLoop, group: list[_Write[Any]], failure: StoreError | None
    ) -> None:
        for write in group:
            if failure is not None:
                write.error, write.result = failure, None
            loop.call_soon_threadsafe(write.settle)

    async def read(self, rule: Rule[T]) -> T:
        return await self._run(lambda db: self._drive(db, rule))

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(shut)
        self._executor.shutdown(wait=True)


class SQLiteStore(SQLStore):
    """The `sqlite:///path` store (and `memory://`, a private in-memory database)."""

    def __init__(
        self, path: str | Path, *, durability: str = "full", clock: HostClock | None = None
    ) -> None:
        super().__init__(SQLiteConnector(path, durability=durability, clock=clock))
