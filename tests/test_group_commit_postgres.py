"""PostgreSQL group commit: concurrent writes share one transaction, each stays its own.

The contract suite (tests/test_store.py) proves the rules on PostgreSQL; these prove the
grouping: writes really share transactions, a failing rule undoes only its own writes, no
write is answered before its commit, a group waiting on a lock holds up no other write, a
rolled-back rule's NOTIFY is never sent, and a rule lost to a deadlock between two groups (two
replicas', or one store's) runs again and lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from bridge.errors import StoreError
from bridge.store.connector import Rerunnable, Rule, changed, one, rows, wake
from bridge.store.listener import CHANNEL
from bridge.store.postgres import PostgresStore
from tests.test_store import delivery, scratch_schema

pytestmark = pytest.mark.anyio


@pytest.fixture
async def url() -> AsyncIterator[str]:
    with scratch_schema() as scratch:
        yield scratch


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    backend = PostgresStore(url)
    await backend.migrate()
    yield backend
    await backend.close()


def transaction_id() -> Rule[int]:
    """The top-level transaction's id, the same from inside any of its savepoints."""
    found = yield from rows("SELECT txid_current() AS xid")
    return int(found[0]["xid"])


def note(event_id: int, outcome: str) -> Rule[None]:
    yield from changed(
        "append", event_id=event_id, now=0.0, outcome=outcome, detail=None, delay=None
    )


async def test_concurrent_writes_share_transactions_and_all_land(
    store: PostgresStore, url: str
) -> None:
    connector = store.connector
    results = await asyncio.gather(
        *(connector.write(transaction_id()) for _ in range(30)),
        *(store.record(delivery(f"d{n}")) for n in range(30)),
    )
    xids = set(results[:30])
    assert 1 <= len(xids) < 30, xids
    assert all(new for _, new in results[30:])  # type: ignore[misc]
    # Every answered write is committed: another connection sees all of them.
    with psycopg.connect(url) as other:
        assert other.execute("SELECT count(*) FROM events").fetchone() == (30,)


async def test_a_failing_rule_undoes_only_its_own_writes(store: PostgresStore) -> None:
    first, _ = await store.record(delivery("kept-1"))

    def half_then_fail() -> Rule[None]:
        yield from note(first.id, "x")
        raise StoreError("this rule changed its mind")

    def bad_sql() -> Rule[None]:
        yield from note(first.id, "y")
        yield from rows("SELECT no_such_column FROM events")

    results = await asyncio.gather(
        store.record(delivery("kept-2")),
        store.connector.write(half_then_fail()),
        store.connector.write(bad_sql()),
        store.record(delivery("kept-3")),
        return_exceptions=True,
    )
    assert isinstance(results[1], StoreError) and isinstance(results[2], StoreError)
    assert "no_such_column" in str(results[2])
    assert [new for _, new in (results[0], results[3])] == [True, True]  # type: ignore[misc]
    assert not {"x", "y"} & {step.outcome for step in await store.history(first.id)}
    assert await store.get(results[3][0].id) is not None  # type: ignore[index]


async def until_a_session(url: str, condition: str, timeout: float = 10.0) -> None:
    """Until another session on the server is at a statement that meets `condition`."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        f"AND state = 'active' AND {condition}"
    )
    deadline = asyncio.get_running_loop().time() + timeout
    with psycopg.connect(url, autocommit=True) as watcher:
        while watcher.execute(query).fetchone() == (0,):
            assert asyncio.get_running_loop().time() < deadline, f"no session with {condition}"
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def row_held_elsewhere(
    store: PostgresStore, url: str
) -> AsyncIterator[tuple[psycopg.Connection[Any], Callable[[], Rule[None]]]]:
    """An event's row locked by another connection, and a rule that waits for that row."""
    locked, _ = await store.record(delivery("locked"))

    def wait_for_row() -> Rule[None]:
        yield from one("lock_event", event_id=locked.id)

    with psycopg.connect(url) as holder:
        holder.execute("SELECT id FROM events WHERE id = %s FOR UPDATE", (locked.id,))
        yield holder, wait_for_row


async def test_no_write_is_answered_before_its_group_commits(
    store: PostgresStore, url: str
) -> None:
    async with row_held_elsewhere(store, url) as (holder, wait_for_row):
        recorded = asyncio.ensure_future(store.record(delivery("early")))
        waiting = asyncio.ensure_future(store.connector.write(wait_for_row()))
        await asyncio.sleep(0.5)
        # "early" is written, but its group waits on the held row: not committed, not answered.
        assert not recorded.done()
        with psycopg.connect(url) as other:
            found = other.execute("SELECT count(*) FROM events WHERE delivery_key = 'early'")
            assert found.fetchone() == (0,)
        holder.commit()
    (event, new), _ = await asyncio.gather(recorded, waiting)
    assert new and await store.get(event.id) is not None


async def test_a_group_waiting_on_a_lock_holds_up_no_other_write(
    store: PostgresStore, url: str
) -> None:
    async with row_held_elsewhere(store, url) as (holder, wait_for_row):
        stuck = asyncio.ensure_future(store.connector.write(wait_for_row()))
        await until_a_session(url, "wait_event_type = 'Lock'")  # its group waits on the row
        # Later writes commit in groups of their own meanwhile.
        later = await asyncio.wait_for(
            asyncio.gather(*(store.record(delivery(f"later-{n}")) for n in range(5))), 5
        )
        assert all(new for _, new in later)
        assert not stuck.done()
        holder.commit()
    await stuck


async def test_a_rolled_back_rule_sends_no_wake(store: PostgresStore, url: str) -> None:
    listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with listener:
        await listener.execute(f"LISTEN {CHANNEL}")

        def wake_then_fail() -> Rule[None]:
            yield from wake()
            raise StoreError("changed its mind")

        results = await asyncio.gather(
            store.connector.write(wake_then_fail()),
            store.connector.write(transaction_id()),  # a neighbour that commits, unannounced
            return_exceptions=True,
        )
        assert isinstance(results[0], StoreError)
        assert [n async for n in listener.notifies(timeout=0.5)] == []
        await store.connector.write(wake())
        assert [n.channel async for n in listener.notifies(timeout=5, stop_after=1)] == [CHANNEL]


@pytest.mark.parametrize("where", ["two replicas", "one store's two groups"])
async def test_a_deadlocked_groups_rules_run_again_and_land(url: str, where: str) -> None:
    """Two groups lock two rows in opposite orders; PostgreSQL aborts one."""
    alone = PostgresStore(url)
    replicas = [alone, alone] if where == "one store's two groups" else [alone, PostgresStore(url)]
    await replicas[0].migrate()
    first, _ = await replicas[0].record(delivery("row-1"))
    second, _ = await replicas[0].record(delivery("row-2"))
    starts: dict[str, int] = {}

    def lock_and_note(outcome: str, event_id: int, linger: float) -> Callable[[], Rule[None]]:
        def rule() -> Rule[None]:
            starts[outcome] = starts.get(outcome, 0) + 1
            yield from one("lock_event", event_id=event_id)
            if linger:  # both groups hold their first row before either asks for its second
                yield from rows(f"SELECT pg_sleep({linger}) AS slept")
            yield from note(event_id, outcome)

        return rule

    def group_of(
        store: PostgresStore, *rules: Callable[[], Rule[None]]
    ) -> list[asyncio.Future[None]]:
        return [asyncio.ensure_future(store.connector.write(Rerunnable(r))) for r in rules]

    try:
        writes = [
            *group_of(
                replicas[0],
                lock_and_note("a1", first.id, 0.3),
                lock_and_note("a2", second.id, 0),
            ),
        ]
        # The first group has begun (it lingers): the next writes are another group.
        await until_a_session(url, "query LIKE '%pg_sleep%'")
        writes += [
            *group_of(
                replicas[1],
                lock_and_note("b1", second.id, 0.3),
                lock_and_note("b2", first.id, 0),
            ),
        ]
        await asyncio.gather(*writes)
        outcomes = [
            step.outcome
            for event in (first, second)
            for step in await replicas[0].history(event.id)
        ]
        assert sorted(outcome for outcome in outcomes if outcome in starts) == [
            "a1",
            "a2",
            "b1",
            "b2",
        ]
        assert sum(starts.values()) == 5, starts  # the deadlock's victim ran twice
    finally:
        for replica in set(replicas):
            await replica.close()


async def test_a_connection_the_server_dropped_is_replaced_not_used(url: str) -> None:
    """Checkout no longer asks the server; it still notices one that said goodbye."""
    name = f"bridge-dropped-{uuid.uuid4().hex[:8]}"  # only this store's connections go
    store = PostgresStore(f"{url}&application_name={name}")
    try:
        await store.migrate()
        await store.record(delivery("before"))
        with psycopg.connect(url, autocommit=True) as admin:
            # The pids first, then terminate: SQL would not promise to filter before it ran.
            found = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchall()
            assert found
            for (pid,) in found:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await asyncio.sleep(0.2)  # the goodbye reaches the idle sockets
        _, new = await store.record(delivery("after"))
        assert new
    finally:
        await store.close()
