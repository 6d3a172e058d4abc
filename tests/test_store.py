"""The store contract: every backend must pass these (SQLite file and in-memory today)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.config import StoreConfig
from bridge.errors import StoreError
from bridge.store import SQLiteStore, Store, open_store
from bridge.store.base import (
    CREATED,
    DEAD,
    PROCESSING,
    RECEIVED,
    REJECTED,
    RETRYING,
    SCHEMA_VERSION,
    SKIPPED,
    NewDelivery,
    OrderKey,
)

pytestmark = pytest.mark.anyio

LEASE = 30.0


@pytest.fixture(params=["file", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'events.db'}" if request.param == "file" else "memory://"
    backend = open_store(StoreConfig(url=url))
    await backend.migrate()
    yield backend
    await backend.close()


def delivery(key: str = "d1", body: bytes = b'{"id": 1}', source: str = "shopify") -> NewDelivery:
    return NewDelivery(source, key, "acme.myshopify.com", "orders/create", {"x": "y"}, body)


async def test_record_is_deduplicated_on_the_delivery_key(store: Store) -> None:
    first, created = await store.record(delivery("abc"))
    again, created_again = await store.record(delivery("abc", body=b'{"other": true}'))
    other, created_other = await store.record(delivery("abc", source="woocommerce"))
    assert created and not created_again and created_other
    assert again.id == first.id and again.body == b'{"id": 1}'
    assert other.id != first.id
    assert first.status == RECEIVED and first.headers == {"x": "y"}


async def test_a_claimed_event_is_not_claimed_twice_until_its_lease_lapses(store: Store) -> None:
    event, _ = await store.record(delivery())
    claimed = await store.claim(event.id, "w1", 0.05)
    assert claimed is not None and claimed.status == PROCESSING and claimed.lease_owner == "w1"
    assert await store.claim(event.id, "w2", LEASE) is None
    assert await store.claim_next("w2", LEASE) is None
    await asyncio.sleep(0.1)
    reclaimed = await store.claim_next("w2", LEASE)
    assert reclaimed is not None and reclaimed.id == event.id and reclaimed.lease_owner == "w2"
    # The first worker lost its lease: it can no longer settle the event.
    assert not await store.finish(event.id, "w1", SKIPPED, reason="late")
    assert await store.finish(event.id, "w2", SKIPPED, reason="test order")


async def test_renew_keeps_the_lease(store: Store) -> None:
    event, _ = await store.record(delivery())
    await store.claim(event.id, "w1", 0.05)
    for _ in range(4):
        await asyncio.sleep(0.03)
        assert await store.renew(event.id, "w1", 0.05)
    assert await store.claim_next("w2", LEASE) is None
    assert not await store.renew(event.id, "w2", LEASE)


async def test_deferred_events_wait_for_their_time_and_count_attempts(store: Store) -> None:
    event, _ = await store.record(delivery())
    await store.claim(event.id, "w1", LEASE)
    assert await store.defer(event.id, "w1", delay=0.1, reason="503 from Luminous")
    waiting = await store.get(event.id)
    assert waiting is not None
    assert waiting.status == RETRYING and waiting.attempts == 1 and waiting.lease_owner is None
    assert await store.claim_next("w1", LEASE) is None
    await asyncio.sleep(0.15)
    again = await store.claim_next("w1", LEASE)
    assert again is not None and again.id == event.id
    assert await store.defer(event.id, "w1", delay=0, reason="paused", counted=False)
    paused = await store.get(event.id)
    assert paused is not None and paused.attempts == 1


async def test_claim_next_takes_the_oldest_due_event(store: Store) -> None:
    first, _ = await store.record(delivery("a"))
    second, _ = await store.record(delivery("b"))
    taken = await store.claim_next("w", LEASE)
    assert taken is not None and taken.id == first.id
    taken = await store.claim_next("w", LEASE)
    assert taken is not None and taken.id == second.id
    assert await store.claim_next("w", LEASE) is None


async def test_one_invoice_per_order_and_later_events_point_at_it(store: Store) -> None:
    key = OrderKey("shopify", "acme.myshopify.com", "820982911946154508")
    first, _ = await store.record(delivery("a"))
    second, _ = await store.record(delivery("b"))
    await store.claim(first.id, "w1", LEASE)
    await store.claim(second.id, "w2", LEASE)
    assert (await store.claim_order(key, first.id, LEASE, "#1001")).acquired
    contended = await store.claim_order(key, second.id, LEASE, "#1001")
    assert not contended.acquired and contended.event_id == first.id
    assert contended.invoice_id is None
    done, original = await store.complete(first.id, "w1", key, 77)
    assert done and original == first.id
    claim = await store.claim_order(key, second.id, LEASE, "#1001")
    assert claim.invoice_id == 77 and claim.event_id == first.id
    done, original = await store.complete(second.id, "w2", key, 999)
    assert done and original == first.id
    finished = await store.get(second.id)
    assert finished is not None
    assert finished.status == CREATED and finished.invoice_id == 77
    assert finished.duplicate_of == first.id and finished.order_name == "#1001"
    history = await store.history(second.id)
    assert [step.outcome for step in history] == ["duplicate"]


async def test_a_lapsed_order_claim_passes_on_with_its_unknown_send(store: Store) -> None:
    key = OrderKey("shopify", "", "1")
    first, _ = await store.record(delivery("a"))
    second, _ = await store.record(delivery("b"))
    assert (await store.claim_order(key, first.id, 0.05)).acquired
    await store.mark_sent(key, first.id)
    await asyncio.sleep(0.1)
    claim = await store.claim_order(key, second.id, LEASE)
    assert claim.acquired and claim.sent
    await store.mark_sent(key, second.id, sent=False)
    assert not (await store.claim_order(key, second.id, LEASE)).sent


async def test_release_order_frees_an_order_that_got_no_invoice(store: Store) -> None:
    key = OrderKey("shopify", "", "2")
    first, _ = await store.record(delivery("a"))
    second, _ = await store.record(delivery("b"))
    assert (await store.claim_order(key, first.id, LEASE)).acquired
    await store.release_order(key, first.id)
    assert (await store.claim_order(key, second.id, LEASE)).acquired


async def test_replay_puts_dead_and_rejected_back_and_keeps_history(store: Store) -> None:
    event, _ = await store.record(delivery())
    await store.claim(event.id, "w", LEASE)
    await store.defer(event.id, "w", delay=0, reason="503")
    await store.claim(event.id, "w", LEASE)
    await store.finish(event.id, "w", DEAD, reason="unknown SKU")
    replayed = await store.replay(event.id)
    assert replayed.status == RECEIVED and replayed.attempts == 0
    assert replayed.started_at >= event.received_at
    outcomes = [step.outcome for step in await store.history(event.id)]
    assert outcomes == [DEAD, "replayed"]
    with pytest.raises(StoreError, match="only dead or rejected"):
        await store.replay(event.id)
    with pytest.raises(StoreError, match="does not exist"):
        await store.replay(12345)


async def test_finish_refuses_statuses_that_are_not_endings(store: Store) -> None:
    event, _ = await store.record(delivery())
    await store.claim(event.id, "w", LEASE)
    with pytest.raises(ValueError):
        await store.finish(event.id, "w", RETRYING)
    assert await store.finish(
        event.id, "w", REJECTED, reason="bad", details=[{"field": "id", "problem": "missing"}]
    )
    rejected = await store.get(event.id)
    assert rejected is not None and rejected.details == [{"field": "id", "problem": "missing"}]


async def test_purge_drops_finished_payloads_but_keeps_dead_ones(store: Store) -> None:
    ids = {}
    for key, status in (("a", SKIPPED), ("b", DEAD), ("c", None)):
        event, _ = await store.record(delivery(key))
        ids[key] = event.id
        if status:
            await store.claim(event.id, "w", LEASE)
            await store.finish(event.id, "w", status, reason="x")
    assert await store.purge_payloads(time.time() + 1) == 1
    kept = {key: (await store.get(event_id)) for key, event_id in ids.items()}
    assert kept["a"] is not None and kept["a"].body is None and kept["a"].status == SKIPPED
    assert kept["b"] is not None and kept["b"].body is not None
    assert kept["c"] is not None and kept["c"].body is not None
    assert await store.purge_payloads(time.time() - 3600) == 0


async def test_list_filters_and_counts(store: Store) -> None:
    first, _ = await store.record(delivery("a"))
    await store.record(delivery("b", source="woocommerce"))
    await store.claim(first.id, "w", LEASE)
    await store.claim_order(OrderKey("shopify", "", "5"), first.id, LEASE, "#1005")
    assert [e.id for e in await store.list_events(source="shopify")] == [first.id]
    assert [e.id for e in await store.list_events(order="#1005")] == [first.id]
    assert [e.id for e in await store.list_events(order="5")] == [first.id]
    assert len(await store.list_events(status=RECEIVED)) == 1
    assert await store.list_events(since=time.time() + 60) == []
    assert await store.counts() == {PROCESSING: 1, RECEIVED: 1}


async def test_schema_is_versioned_and_migrate_is_idempotent(store: Store) -> None:
    assert await store.schema_version() == SCHEMA_VERSION
    await store.migrate()
    assert await store.schema_version() == SCHEMA_VERSION


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SQLiteStore(path)
    await store.migrate()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    newer = SQLiteStore(path)
    with pytest.raises(StoreError, match="newer than this release"):
        await newer.migrate()
    await newer.close()


async def test_events_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    store = SQLiteStore(path)
    await store.migrate()
    event, _ = await store.record(delivery())
    await store.close()
    reopened = SQLiteStore(path)
    again = await reopened.get(event.id)
    await reopened.close()
    assert again is not None and again.body == b'{"id": 1}'
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
