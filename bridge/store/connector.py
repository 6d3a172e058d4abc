"""What a store asks of its database, and the connector per dialect that only executes it.

Every store operation is a rule: a generator that yields requests (a query, a migration
script, the clock) and receives their answers, without doing any I/O itself. A connector
runs a rule inside one transaction: the SQLite one on its thread in one hop, the PostgreSQL
one on a pooled connection. Because a rule is a plain value until it is run, a connector can
later commit many of them at once (group commit) without any rule changing.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from bridge.store.clock import Now
from bridge.store.queries import QUERIES, expand

T = TypeVar("T")
Row: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One statement in the neutral dialect (`%(name)s`), and what to bring back."""

    sql: str
    params: dict[str, object]
    fetch: Literal["rows", "rowcount"]
    # The connector binds the clock's `now`, `lease_now` and `boot` as the statement runs
    # (PostgreSQL: the server's clock, read by the statement itself). For a read that only
    # compares with the clock: a rule that computes with it asks for a `Clock` first.
    clocked: bool = False


@dataclass(frozen=True)
class Script:
    """Several statements without parameters: a schema or a migration file."""

    sql: str


@dataclass(frozen=True)
class Clock:
    """Ask for the transaction's `Now`."""


@dataclass(frozen=True)
class LockSchema:
    """Hold off every other migration until this transaction ends."""


@dataclass(frozen=True)
class TableExists:
    name: str


@dataclass(frozen=True)
class Wake:
    """Once this transaction commits, wake idle workers that listen (other replicas)."""


Request: TypeAlias = Query | Script | Clock | LockSchema | TableExists | Wake
Rule: TypeAlias = Generator[Request, Any, T]


def rows(sql: str, **params: object) -> Rule[list[Row]]:
    """Run a statement given as SQL text and bring back its rows."""
    query, flat = expand(sql, params)
    found: list[Row] = yield Query(query, flat, "rows")
    return found


def one(name: str, **params: object) -> Rule[Row | None]:
    """Run the named query and bring back its first row."""
    found = yield from rows(QUERIES[name], **params)
    return found[0] if found else None


def one_now(name: str, **params: object) -> Rule[Row | None]:
    """`one`, the clock bound by the connector as the statement runs (see `Query.clocked`)."""
    query, flat = expand(QUERIES[name], params)
    found: list[Row] = yield Query(query, flat, "rows", clocked=True)
    return found[0] if found else None


def changed(name: str, **params: object) -> Rule[int]:
    """Run the named query and count the rows it changed."""
    query, flat = expand(QUERIES[name], params)
    count: int = yield Query(query, flat, "rowcount")
    return count


def wake() -> Rule[None]:
    yield Wake()


def clock() -> Rule[Now]:
    now: Now = yield Clock()
    return now


class Rerunnable(Generator[Request, Any, T]):
    """A rule that can be started afresh: a connector whose transaction was lost to a
    deadlock runs it again rather than failing it."""

    def __init__(self, make: Callable[[], Rule[T]]) -> None:
        self._make = make
        self._rule = make()

    def send(self, answer: object) -> Request:
        return self._rule.send(answer)

    def throw(self, *error: Any) -> Request:
        return self._rule.throw(*error)

    def again(self) -> Rerunnable[T]:
        """The same rule, not yet started."""
        return Rerunnable(self._make)


@dataclass
class PendingWrite(Generic[T]):
    """A write rule waiting for its group's commit, and the caller's future."""

    rule: Rule[T]
    future: asyncio.Future[T]
    result: T | None = None
    error: BaseException | None = None
    again: bool = False  # lost a race in its group: run alone once the group has committed

    def settle(self) -> None:
        if self.future.done():  # the caller was cancelled; the write stands or fell anyway
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)  # type: ignore[arg-type]


class Steps:
    """Drives a rule: hands out its requests one by one and keeps its result."""

    def __init__(self, rule: Rule[Any]) -> None:
        self._rule = rule
        self.result: Any = None

    def send(self, answer: object) -> Request | None:
        """The rule's next request given the last answer, or None once it has returned."""
        try:
            return self._rule.send(answer)
        except StopIteration as done:
            self.result = done.value
            return None


class Connector(ABC):
    """Runs rules against one database, each in its own transaction."""

    dialect: str  # the folder of its migrations: bridge/store/migrations/<dialect>/

    @abstractmethod
    async def write(self, rule: Rule[T]) -> T:
        """Run a rule in a write transaction, committed before this returns."""

    @abstractmethod
    async def read(self, rule: Rule[T]) -> T:
        """Run a rule that only reads."""

    async def look(self, rule: Rule[T]) -> T:
        """Run a rule that reads a few rows by key; a connector may run it without a hop."""
        return await self.read(rule)

    @abstractmethod
    async def close(self) -> None: ...
