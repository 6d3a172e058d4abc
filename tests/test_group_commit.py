"""SQLite group commit: concurrent writes share one COMMIT, each stays its own.

The contract suite (tests/test_store.py) proves the rules; these prove the grouping: fewer
commits than writes under concurrency, a rule that fails undoes only its own writes, and no
write is answered before the commit that holds it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store.connector import Rule, changed
from bridge.store.sqlite import SQLiteStore
from tests.test_store import delivery

pytestmark = pytest.mark.anyio


@pytest.fixture
async def grouped(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "group.db")
    await backend.migrate()
    yield backend
    await backend.close()


async def on_store_thread(store: SQLiteStore, work: Callable[[sqlite3.Connection], object]) -> None:
    await store.connector._run(work)  # type: ignore[attr-defined]


async def count_commits(store: SQLiteStore) -> list[str]:
    seen: list[str] = []
    await on_store_thread(
        store,
        lambda db: db.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None),
    )
    return seen


async def test_concurrent_records_share_commits_and_all_land(
    grouped: SQLiteStore, tmp_path: Path
) -> None:
    store = grouped
    commits = await count_commits(store)
    recorded = await asyncio.gather(*(store.record(delivery(f"d{n}")) for n in range(60)))
    assert all(new for _, new in recorded)
    assert 1 <= len(commits) < 60, len(commits)
    # Every answered write is on disk: a second connection sees all of them.
    with sqlite3.connect(tmp_path / "group.db") as other:
        assert other.execute("SELECT count(*) FROM events").fetchone() == (60,)


async def test_a_failing_rule_undoes_only_its_own_writes(grouped: SQLiteStore) -> None:
    store = grouped
    first, _ = await store.record(delivery("kept-1"))

    def half_then_fail() -> Rule[None]:
        yield from changed(
            "append", event_id=first.id, now=0.0, outcome="x", detail=None, delay=None
        )
        raise StoreError("this rule changed its mind")

    connector = store.connector
    results = await asyncio.gather(
        store.record(delivery("kept-2")),
        connector.write(half_then_fail()),
        store.record(delivery("kept-3")),
        return_exceptions=True,
    )
    assert isinstance(results[1], StoreError)
    assert [new for _, new in results[0::2]] == [True, True]  # type: ignore[misc]
    assert "x" not in {step.outcome for step in await store.history(first.id)}
    assert await store.get(results[2][0].id) is not None  # type: ignore[index]


async def test_a_failed_commit_fails_every_write_of_its_group(
    grouped: SQLiteStore, tmp_path: Path
) -> None:
    store = grouped
    await store.record(delivery("before"))
    # Another connection holds the write lock past the busy timeout: BEGIN IMMEDIATE fails.
    await on_store_thread(store, lambda db: db.execute("PRAGMA busy_timeout=50"))
    blocker = sqlite3.connect(tmp_path / "group.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        results = await asyncio.gather(
            *(store.record(delivery(f"blocked-{n}")) for n in range(3)),
            return_exceptions=True,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert all(isinstance(result, StoreError) for result in results), results
    _, new = await store.record(delivery("blocked-0"))
    assert new  # nothing of the failed group was kept


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_loop(
    grouped: SQLiteStore, tmp_path: Path
) -> None:
    store = grouped
    blocker = sqlite3.connect(tmp_path / "group.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.ensure_future(store.record(delivery("waits-for-the-lock")))
        # The loop goes on serving (lookups included) while the write waits for the lock.
        for _ in range(20):
            await asyncio.sleep(0.01)
            assert await store.get(1) is None
        assert not pending.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    event, new = await pending
    assert new and (await store.get(event.id)) is not None


async def test_lookups_see_every_answered_write_and_nothing_uncommitted(
    grouped: SQLiteStore,
) -> None:
    store = grouped
    seen: list[bool] = []

    def record_then_look() -> Rule[None]:
        # Mid-transaction, the lookup connection must not see this rule's own insert.
        yield from changed(
            "record",
            source="shopify",
            delivery_key="mid",
            shop="s",
            topic=None,
            order_id=None,
            order_name=None,
            search_keys=None,
            status="received",
            generation=0,
            owner=None,
            lease_until=None,
            lease_boot=None,
            now=0.0,
            headers="{}",
            body=b"{}",
        )
        seen.append(
            store.connector._reader_db("_lookups")
            .execute(  # type: ignore[attr-defined]
                "SELECT count(*) AS n FROM events"
            )
            .fetchone()["n"]
            == 0
        )

    await store.connector.write(record_then_look())
    assert seen == [True]
    recorded = await asyncio.gather(*(store.record(delivery(f"l{n}")) for n in range(20)))
    for event, _ in recorded:
        assert (await store.get(event.id)) is not None
