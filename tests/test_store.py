"""The store contract: every backend must pass these (SQLite file and in-memory, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.config import StoreConfig, load_settings
from bridge.errors import StoreError
from bridge.rekey import rekey_orders
from bridge.store import PostgresStore, SQLiteStore, Store, open_store
from bridge.store.base import (
    CREATED,
    DEAD,
    DISMISSED,
    PROCESSING,
    RECEIVED,
    REJECTED,
    RETRYING,
    SCHEMA_VERSION,
    SKIPPED,
    Backlog,
    Event,
    EventFilter,
    NewDelivery,
    OrderClaim,
    OrderIntent,
    OrderKey,
)
from bridge.store.clock import BOOT_ID, HostClock
from bridge.store.postgres import redact
from tests.conftest import postgres_unreachable

pytestmark = pytest.mark.anyio

LEASE = 30.0
# The server the PostgreSQL tests use; each test gets a fresh schema of its own there.
POSTGRES = os.environ.get("BRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def scratch_schema() -> Iterator[str]:
    """A store URL whose connections live in a new, empty schema, dropped afterwards."""
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        postgres_unreachable(f"PostgreSQL is not reachable at {redact(POSTGRES)}: {exc}")
    with admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            glue = "&" if "?" in POSTGRES else "?"
            yield f"{POSTGRES}{glue}options=-csearch_path%3D{name}"
        finally:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_schema() as url:
        yield url


@pytest.fixture(params=["file", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    with contextlib.ExitStack() as scratch:
        if request.param == "postgres":
            url = scratch.enter_context(scratch_schema())
        elif request.param == "file":
            url = f"sqlite:///{tmp_path / 'events.db'}"
        else:
            url = "memory://"
        backend = open_store(StoreConfig(url=url), create=True)
        await backend.migrate()
        yield backend
        await backend.close()


def delivery(key: str = "d1", body: bytes = b'{"id": 1}', source: str = "shopify") -> NewDelivery:
    return NewDelivery(source, key, "acme.myshopify.com", "orders/create", {"x": "y"}, body)


async def taken(store: Store, key: str = "d1", lease: float = LEASE, owner: str = "w") -> Event:
    """A recorded delivery, claimed."""
    event, _ = await store.record(delivery(key))
    claimed = await store.claim(event.id, owner, lease)
    assert claimed is not None
    return claimed


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
    assert reclaimed.generation == claimed.generation + 1
    # The first worker lost its lease: it can no longer settle the event.
    assert not await store.finish(event.id, claimed.generation, SKIPPED, reason="late")
    assert await store.finish(event.id, reclaimed.generation, SKIPPED, reason="test order")


async def test_a_folded_claim_is_a_claim_and_a_repeat_is_left_unclaimed(store: Store) -> None:
    # Recorded and claimed in one write: the same generation and lease rules as `claim`.
    first, created = await store.record_claimed(delivery("fold"), "w1", 0.05)
    assert created and first.status == PROCESSING and first.lease_owner == "w1"
    assert first.generation == 1
    assert first == await store.get(first.id)  # the row as written is the claim's answer
    # Claimed as it is written, the row is what recording then claiming would leave.
    recorded, _ = await store.record(delivery("apart"))
    apart = await store.claim(recorded.id, "w1", 0.05)
    assert apart is not None
    differ = {"id", "delivery_key", "received_at", "updated_at", "started_at", "lease_until"}
    fields = [field.name for field in dataclasses.fields(Event) if field.name not in differ]
    assert [getattr(first, f) for f in fields] == [getattr(apart, f) for f in fields]
    assert first.lease_until is not None and apart.lease_until is not None
    assert abs(first.lease_until - apart.lease_until) < 1
    assert await store.finish(apart.id, apart.generation, SKIPPED, reason="test order")
    assert await store.still_holds(first.id, first.generation)
    assert await store.claim(first.id, "w2", LEASE) is None
    repeat, created_again = await store.record_claimed(delivery("fold"), "w2", LEASE)
    assert not created_again and repeat.id == first.id and repeat.lease_owner == "w1"
    assert repeat.generation == first.generation  # a repeat claims nothing
    # Its lease lapses like any other, and the claim that takes it over fences it out.
    await asyncio.sleep(0.1)
    assert not await store.still_holds(first.id, first.generation)
    fresh = await store.claim_next("w2", LEASE)
    assert fresh is not None and fresh.id == first.id and fresh.generation == 2
    assert not await store.finish(first.id, first.generation, SKIPPED, reason="late")
    assert await store.finish(fresh.id, fresh.generation, SKIPPED, reason="test order")
    done, _ = await store.record_claimed(delivery("fold"), "w3", LEASE)
    assert done.status == SKIPPED and done.generation == 2


async def test_a_delivery_recorded_with_its_order_claims_both_in_one_write(store: Store) -> None:
    key = OrderKey("shopify", "", "8")
    intent = OrderIntent(key, "#8", ("SKU-8",), '{"company_id": 1}')
    first, created, order = await store.record_with_order(delivery("o1"), "w", LEASE, intent)
    assert created and first.status == PROCESSING and first.lease_owner == "w"
    assert order == OrderClaim(acquired=True, marked=True)
    assert first.order_id == "8" and first.order_name == "#8"
    assert first.sent_request == '{"company_id": 1}'
    assert first == await store.get(first.id)  # the write answers the event as it stands
    found = await store.list_events(order="sku-8")
    assert [event.id for event in found] == [first.id]  # bound with its keys, as claim_order binds
    # A repeat claims nothing; another delivery of the order finds it held, then invoiced.
    again, created, none = await store.record_with_order(delivery("o1"), "w", LEASE, intent)
    assert not created and none is None and again.generation == first.generation
    _, _, held = await store.record_with_order(delivery("o2"), "w", LEASE, intent)
    assert held is not None and not held.acquired and held.event_id == first.id
    assert (await store.complete_event(first.id, first.generation, key, 61, held=True))[0]
    late, _, done = await store.record_with_order(delivery("o3"), "w", LEASE, intent)
    assert done is not None and done.invoice_id == 61 and not done.marked
    assert late.sent_request is None and late == await store.get(late.id)


async def test_renew_keeps_the_lease(store: Store) -> None:
    event = await taken(store, lease=0.05)
    for _ in range(4):
        await asyncio.sleep(0.03)
        assert await store.renew(event.id, event.generation, 0.05)
    assert await store.claim_next("w2", LEASE) is None
    assert not await store.renew(event.id, event.generation + 1, LEASE)


async def test_deferred_events_wait_for_their_time_and_count_attempts(store: Store) -> None:
    event = await taken(store)
    assert await store.defer(event.id, event.generation, delay=0.1, reason="503 from Luminous")
    waiting = await store.get(event.id)
    assert waiting is not None
    assert waiting.status == RETRYING and waiting.attempts == 1 and waiting.lease_owner is None
    assert await store.claim_next("w1", LEASE) is None
    await asyncio.sleep(0.15)
    again = await store.claim_next("w1", LEASE)
    assert again is not None and again.id == event.id
    assert await store.defer(event.id, again.generation, delay=0, reason="paused", counted=False)
    paused = await store.get(event.id)
    assert paused is not None and paused.attempts == 1


async def test_next_due_says_when_a_retry_or_a_lease_comes_due(store: Store) -> None:
    assert await store.next_due() is None
    event = await taken(store, lease=50)
    due = await store.next_due()
    assert due is not None and 45 < due <= 50  # the lease
    assert await store.defer(event.id, event.generation, delay=20, reason="503 from Luminous")
    due = await store.next_due()
    assert due is not None and 15 < due <= 20  # the retry
    await store.record(delivery("d2"))
    assert await store.next_due() == 0


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
    first = await taken(store, "a")
    second = await taken(store, "b")
    assert (await store.claim_order(key, first.id, first.generation, LEASE, "#1001")).acquired
    contended = await store.claim_order(key, second.id, second.generation, LEASE, "#1001")
    assert not contended.acquired and contended.event_id == first.id
    assert contended.invoice_id is None
    done, original = await store.complete(first.id, first.generation, key, 77)
    assert done and original == first.id
    claim = await store.claim_order(key, second.id, second.generation, LEASE, "#1001")
    assert claim.invoice_id == 77 and claim.event_id == first.id
    done, original = await store.complete(second.id, second.generation, key, 999)
    assert done and original == first.id
    finished = await store.get(second.id)
    assert finished is not None
    assert finished.status == CREATED and finished.invoice_id == 77
    assert finished.duplicate_of == first.id and finished.order_name == "#1001"
    history = await store.history(second.id)
    assert [step.outcome for step in history] == ["duplicate"]


async def test_a_lapsed_order_claim_passes_on_with_its_unknown_send(store: Store) -> None:
    key = OrderKey("shopify", "", "1")
    first = await taken(store, "a", lease=0.05)
    second = await taken(store, "b")
    assert (await store.claim_order(key, first.id, first.generation, 0.05)).acquired
    assert await store.mark_sent(key, first.id, first.generation)
    await asyncio.sleep(0.1)
    claim = await store.claim_order(key, second.id, second.generation, LEASE)
    assert claim.acquired and claim.sent
    assert claim.sent_age is not None and 0.1 <= claim.sent_age < LEASE
    assert await store.mark_sent(key, second.id, second.generation, sent=False)
    cleared = await store.claim_order(key, second.id, second.generation, LEASE)
    assert not cleared.sent and cleared.sent_age is None


async def test_release_order_frees_an_order_that_got_no_invoice(store: Store) -> None:
    key = OrderKey("shopify", "", "2")
    first = await taken(store, "a")
    second = await taken(store, "b")
    assert (await store.claim_order(key, first.id, first.generation, LEASE)).acquired
    assert not (await store.claim_order(key, second.id, second.generation, LEASE)).acquired
    await store.release_order(key, first.id)
    assert (await store.claim_order(key, second.id, second.generation, LEASE)).acquired


async def test_replay_puts_dead_and_rejected_back_and_keeps_history(store: Store) -> None:
    event = await taken(store)
    await store.defer(event.id, event.generation, delay=0, reason="503")
    again = await store.claim(event.id, "w", LEASE)
    assert again is not None
    await store.finish(event.id, again.generation, DEAD, reason="unknown SKU")
    replayed = await store.replay(event.id)
    assert replayed.status == RECEIVED and replayed.attempts == 0
    assert replayed.started_at >= event.received_at
    outcomes = [step.outcome for step in await store.history(event.id)]
    assert outcomes == [DEAD, "replayed"]
    with pytest.raises(StoreError, match="only dead, rejected or dismissed"):
        await store.replay(event.id)
    with pytest.raises(StoreError, match="does not exist"):
        await store.replay(12345)


async def test_finish_refuses_statuses_that_are_not_endings(store: Store) -> None:
    event = await taken(store)
    with pytest.raises(ValueError):
        await store.finish(event.id, event.generation, RETRYING)
    problems = [{"field": "id", "problem": "missing"}]
    assert await store.finish(event.id, event.generation, REJECTED, reason="bad", details=problems)
    rejected = await store.get(event.id)
    assert rejected is not None and rejected.details == [{"field": "id", "problem": "missing"}]


async def test_purge_drops_finished_payloads_but_keeps_dead_ones(store: Store) -> None:
    ids = {}
    for key, status in (("a", SKIPPED), ("b", DEAD), ("c", None)):
        event, _ = await store.record(delivery(key))
        ids[key] = event.id
        if status:
            claimed = await store.claim(event.id, "w", LEASE)
            assert claimed is not None
            await store.finish(event.id, claimed.generation, status, reason="x")
    assert await store.purge_payloads(time.time() + 1) == 1
    kept = {key: (await store.get(event_id)) for key, event_id in ids.items()}
    assert kept["a"] is not None and kept["a"].body is None and kept["a"].status == SKIPPED
    assert kept["b"] is not None and kept["b"].body is not None
    assert kept["c"] is not None and kept["c"].body is not None
    assert await store.purge_payloads(time.time() - 3600) == 0


async def test_list_filters_and_counts(store: Store) -> None:
    first = await taken(store, "a")
    await store.record(delivery("b", source="woocommerce"))
    await store.claim_order(
        OrderKey("shopify", "", "5"), first.id, first.generation, LEASE, "#1005"
    )
    assert [e.id for e in await store.list_events(source="shopify")] == [first.id]
    assert [e.id for e in await store.list_events(order="#1005")] == [first.id]
    assert [e.id for e in await store.list_events(order="5")] == [first.id]
    assert len(await store.list_events(status=RECEIVED)) == 1
    assert await store.list_events(since=time.time() + 60) == []
    assert await store.counts() == {PROCESSING: 1, RECEIVED: 1}


async def test_every_claim_is_a_new_generation(store: Store) -> None:
    event, _ = await store.record(delivery())
    assert event.generation == 0
    first = await store.claim(event.id, "w", LEASE)
    assert first is not None and first.generation == 1
    assert await store.release(event.id, first.generation)
    second = await store.claim_next("w", LEASE)
    assert second is not None and second.id == event.id and second.generation == 2
    stored = await store.get(event.id)
    assert stored is not None and stored.generation == 2


async def test_a_stale_generation_changes_nothing(store: Store) -> None:
    key = OrderKey("shopify", "", "9")
    stale = await taken(store, lease=0.05, owner="slow")
    assert (await store.claim_order(key, stale.id, stale.generation, 0.05)).acquired
    await asyncio.sleep(0.1)
    fresh = await store.claim_next("fast", LEASE)
    assert fresh is not None and fresh.generation == stale.generation + 1
    before = await store.get(stale.id)
    old = stale.generation
    assert not await store.renew(stale.id, old, LEASE)
    assert not await store.still_holds(stale.id, old)
    assert not await store.mark_sent(key, stale.id, old)
    assert await store.claim_order(key, stale.id, old, LEASE, "#9") == OrderClaim(acquired=False)
    assert not await store.defer(stale.id, old, delay=0, reason="late")
    assert not await store.release(stale.id, old)
    assert not await store.finish(stale.id, old, DEAD, reason="late")
    assert await store.get(stale.id) == before
    assert await store.history(stale.id) == []
    # The stale worker's invoice exists in Luminous, so it is recorded; its claim ends nothing.
    assert await store.complete(stale.id, old, key, 41) == (False, stale.id)
    assert await store.invoice_for(key) == 41
    still = await store.get(stale.id)
    assert still is not None and still.status == PROCESSING and still.lease_owner == "fast"
    assert await store.still_holds(fresh.id, fresh.generation)
    assert await store.complete(fresh.id, fresh.generation, key, 41) == (True, fresh.id)
    created = await store.get(fresh.id)
    assert created is not None and created.status == CREATED and created.invoice_id == 41


async def test_a_held_completion_under_a_lapsed_lease_writes_nothing(store: Store) -> None:
    key = OrderKey("shopify", "", "7")
    slow = await taken(store, "held", lease=0.05, owner="slow")
    assert (await store.claim_order(key, slow.id, slow.generation, 0.05)).acquired
    await asyncio.sleep(0.1)
    # Lapsed, taken over by nobody yet: as still_holds says, the claim no longer holds.
    assert await store.complete_event(slow.id, slow.generation, key, 51, held=True) == (
        None,
        slow.id,
    )
    assert await store.invoice_for(key) is None and await store.history(slow.id) == []
    fresh = await store.claim_next("fast", LEASE)
    assert fresh is not None
    assert (await store.claim_order(key, fresh.id, fresh.generation, LEASE)).acquired
    settled, original = await store.complete_event(fresh.id, fresh.generation, key, 52, held=True)
    assert settled is not None and settled.status == CREATED and settled.invoice_id == 52
    assert original == fresh.id and await store.invoice_for(key) == 52


async def test_claim_next_skips_the_callers_own_events(store: Store) -> None:
    first, second, third = [(await store.record(delivery(key)))[0] for key in "abc"]
    picked = await store.claim_next("w", LEASE, skip={first.id, third.id})
    assert picked is not None and picked.id == second.id
    assert await store.claim_next("w", LEASE, skip=[first.id, third.id]) is None
    assert await store.claim(third.id, "w", LEASE) is not None
    # An event of ours whose lease lapsed while we still work on it is not taken again.
    mine = await store.claim_next("w", 0.05, skip=())
    assert mine is not None and mine.id == first.id
    await asyncio.sleep(0.1)
    assert await store.claim_next("w", LEASE, skip=(first.id,)) is None
    lapsed = await store.claim_next("w", LEASE)
    assert lapsed is not None and lapsed.id == first.id


async def test_still_holds_until_the_lease_lapses_or_the_claim_ends(store: Store) -> None:
    event = await taken(store, lease=0.05)
    assert await store.still_holds(event.id, event.generation)
    assert not await store.still_holds(event.id, event.generation + 1)
    await asyncio.sleep(0.1)
    assert not await store.still_holds(event.id, event.generation)
    # Lapsed but taken by nobody: the claim is still its own, and a renewal revives it.
    assert await store.renew(event.id, event.generation, LEASE)
    assert await store.still_holds(event.id, event.generation)
    assert await store.finish(event.id, event.generation, SKIPPED, reason="test order")
    assert not await store.still_holds(event.id, event.generation)
    assert not await store.still_holds(12345, 1)


async def test_the_send_guard_is_one_statement_on_the_servers_clock(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked before every send: the clock reading that a lapse is judged by goes with the
    # check itself, not a round trip ahead of it.
    store = PostgresStore(pg_url)
    await store.migrate()
    try:
        event = await taken(store, lease=0.2)
        sent: list[str] = []
        execute = psycopg.AsyncConnection.execute

        async def counted(conn: psycopg.AsyncConnection[Any], query: Any, *args: Any) -> Any:
            sent.append(str(query))
            return await execute(conn, query, *args)

        monkeypatch.setattr(psycopg.AsyncConnection, "execute", counted)
        assert await store.still_holds(event.id, event.generation)
        assert len(sent) == 1 and "clock_timestamp()" in sent[0]
        assert "%(lease_now)s" not in sent[0] and "%(boot)s" not in sent[0]
        await asyncio.sleep(0.3)
        assert not await store.still_holds(event.id, event.generation)
    finally:
        await store.close()


async def test_an_event_knows_its_order_from_the_moment_it_is_recorded(store: Store) -> None:
    named = NewDelivery(
        "shopify",
        "o1",
        "acme.myshopify.com",
        "orders/create",
        {},
        b"{}",
        order_id="820982911946154508",
        order_name="#1001",
    )
    event, _ = await store.record(named)
    assert (event.order_id, event.order_name) == ("820982911946154508", "#1001")
    plain, _ = await store.record(delivery("o2"))
    assert plain.order_id is None and plain.order_name is None
    assert [e.id for e in await store.list_events(order="#1001")] == [event.id]
    assert [e.id for e in await store.list_events(order="820982911946154508")] == [event.id]


async def test_duplicate_flags_are_set_replaced_and_listed(store: Store) -> None:
    flagged = await taken(store, "f1", lease=0.05, owner="sender")
    await store.record(delivery("f2"))
    await asyncio.sleep(0.1)
    holder = await store.claim(flagged.id, "other", LEASE)
    assert holder is not None
    # Written by the sender although it lost its lease: flags are facts about Luminous.
    biggest = 2**63 - 1
    why = "the answer to POST /invoices was lost and a lookup found two invoices"
    await store.flag(flagged.id, possible_duplicate=why, extra_invoice_ids=[biggest, 7])
    event = await store.get(flagged.id)
    assert event is not None
    assert event.possible_duplicate == why and event.extra_invoice_ids == [biggest, 7]
    assert event.status == PROCESSING and event.generation == holder.generation
    summary = event.summary()
    assert summary["possible_duplicate"] == why
    assert summary["extra_invoice_ids"] == [biggest, 7]
    assert summary["generation"] == holder.generation
    assert [e.id for e in await store.list_events(flagged=True)] == [flagged.id]
    assert [e.id for e in await store.list_events(flagged=True, status=RECEIVED)] == []
    assert await store.counts() == {PROCESSING: 1, RECEIVED: 1}
    await store.flag(flagged.id, possible_duplicate=None, extra_invoice_ids=(7,))
    replaced = await store.get(flagged.id)
    assert replaced is not None
    assert replaced.possible_duplicate is None and replaced.extra_invoice_ids == [7]
    assert [e.id for e in await store.list_events(flagged=True)] == [flagged.id]
    await store.flag(flagged.id, possible_duplicate=None)
    cleared = await store.get(flagged.id)
    assert cleared is not None and cleared.extra_invoice_ids == []
    assert cleared.summary()["possible_duplicate"] is None
    assert cleared.summary()["extra_invoice_ids"] is None
    assert await store.list_events(flagged=True) == []


# -- finding and settling events by hand ---------------------------------------------


def order_delivery(key: str, order_id: str, name: str | None, shop: str = "acme") -> NewDelivery:
    return NewDelivery(
        "shopify", key, shop, "orders/create", {}, b"{}", order_id=order_id, order_name=name
    )


async def ended(store: Store, event: Event, status: str, reason: str, **extra: object) -> None:
    claimed = await store.claim(event.id, "w", LEASE)
    assert claimed is not None
    assert await store.finish(event.id, claimed.generation, status, reason=reason, **extra)


async def found(store: Store, **where: object) -> list[int]:
    return [event.id for event in await store.list_events(where=EventFilter(**where))]


async def test_an_order_is_found_by_every_key_a_person_knows(store: Store) -> None:
    invoiced, _ = await store.record(order_delivery("k1", "820982911946154508", "#3044"))
    claimed = await store.claim(invoiced.id, "w", LEASE)
    assert claimed is not None
    key = OrderKey("shopify", "", "820982911946154508")
    keys = ["SH-#3044", "Buyer@Example.com", "TEE-RED-M"]
    assert (
        await store.claim_order(key, claimed.id, claimed.generation, LEASE, "#3044", keys)
    ).acquired
    assert await store.complete(claimed.id, claimed.generation, key, 9_000_000_000_001)
    # Dead on its totals before any order claim: the record and `finish` know its order.
    dead, _ = await store.record(order_delivery("k2", "77", None))
    await ended(
        store,
        dead,
        DEAD,
        "totals do not reconcile: 79.28 vs 80.00",
        order_name="#3045",
        keys=["SH-#3045", "MUG-1"],
    )
    other, _ = await store.record(order_delivery("k3", "30440", "#30440"))
    for ref in (
        "#3044",
        "3044",
        "sh-#3044",
        "820982911946154508",
        "buyer@example.COM",
        "tee-red-m",
        " 9000000000001 ",
    ):
        assert await found(store, order=ref) == [invoiced.id], ref
    for ref in ("#3045", "3045", "SH-#3045", "mug-1", "77"):
        assert await found(store, order=ref) == [dead.id], ref
    assert await found(store, order="30440") == [other.id]  # whole keys only
    assert await found(store, order="304") == []
    assert await found(store, order="%") == [] and await found(store, order="_044") == []
    stored = await store.get(dead.id)
    assert stored is not None and (stored.order_id, stored.order_name) == ("77", "#3045")
    # Free text: any part of a key, or of the reason.
    assert await found(store, text="RECONCILE: 79.28") == [dead.id]
    assert await found(store, text="304") == [other.id, dead.id, invoiced.id]
    assert await found(store, text="example.com") == [invoiced.id]
    assert await found(store, text="100%") == []


async def test_events_are_filtered_paged_and_counted(store: Store) -> None:
    ids = []
    for number in range(5):
        shop = "beta" if number % 2 else "acme"
        event, _ = await store.record(order_delivery(f"p{number}", str(number), None, shop))
        ids.append(event.id)
    await ended(store, (await store.get(ids[0])), REJECTED, "no line items")  # type: ignore[arg-type]
    newest_first = ids[::-1]
    assert await found(store) == newest_first
    page = await store.list_events(where=EventFilter(), limit=2)
    assert [e.id for e in page] == newest_first[:2]
    assert await found(store, before=page[-1].id) == newest_first[2:]
    assert await found(store, shop="beta") == [ids[3], ids[1]]
    assert await found(store, until=time.time() - 60) == []
    assert await found(store, since=time.time() - 60, until=time.time() + 60) == newest_first
    assert await found(store, status=REJECTED, source="shopify") == [ids[0]]
    assert await found(store, source="woocommerce") == []
    assert await store.count_events(EventFilter()) == {RECEIVED: 4, REJECTED: 1}
    assert await store.count_events(EventFilter(shop="acme")) == {RECEIVED: 2, REJECTED: 1}
    assert await store.known_source("shopify") and not await store.known_source("woocommerce")


async def test_dismiss_settles_dead_and_rejected_by_hand_and_replay_revives(store: Store) -> None:
    dead, _ = await store.record(order_delivery("x1", "1", "#1"))
    await ended(store, dead, DEAD, "currency EUR, the source takes USD")
    waiting, _ = await store.record(order_delivery("x2", "2", "#2"))
    dismissed = await store.dismiss(dead.id, "EUR orders are invoiced by hand")
    assert dismissed.status == DISMISSED and dismissed.reason == "EUR orders are invoiced by hand"
    assert dismissed.finished
    step = (await store.history(dead.id))[-1]
    assert step.outcome == "dismissed" and "was dead: currency EUR" in (step.detail or "")
    assert await found(store, text="currency eur") == [dead.id]  # its failure stays findable
    assert await store.counts() == {DISMISSED: 1, RECEIVED: 1}
    for refused in (dead.id, waiting.id):
        with pytest.raises(StoreError, match="only dead or rejected events are dismissed"):
            await store.dismiss(refused, "again")
    with pytest.raises(StoreError, match="does not exist"):
        await store.dismiss(999, "nothing")
    replayed = await store.replay(dead.id)
    assert replayed.status == RECEIVED
    assert [s.outcome for s in await store.history(dead.id)] == [DEAD, "dismissed", "replayed"]


async def test_purge_by_status_drops_only_those_payloads(store: Store) -> None:
    first, _ = await store.record(order_delivery("y1", "1", None))
    second, _ = await store.record(order_delivery("y2", "2", None))
    for event in (first, second):
        await ended(store, event, DEAD, "unknown SKU")
    await store.dismiss(first.id, "handled")
    assert await store.purge_payloads(time.time() + 1, [DISMISSED]) == 1
    assert (await store.get(first.id)).body is None  # type: ignore[union-attr]
    assert (await store.get(second.id)).body == b"{}"  # type: ignore[union-attr]
    assert await store.purge_payloads(time.time() + 1) == 0  # retention keeps dead ones


async def test_an_order_claimed_with_its_request_is_marked_sent_in_the_same_write(
    store: Store,
) -> None:
    key = OrderKey("shopify", "", "5")
    sent = '{"company_id": 42, "items": [{"product_id": 7, "quantity": 1}]}'
    first = await taken(store, "a", lease=0.05)
    claim = await store.claim_order(key, first.id, first.generation, 0.05, "#5", request=sent)
    assert claim == OrderClaim(acquired=True, marked=True)
    kept = await store.get(first.id)
    assert kept is not None and kept.sent_request == sent and kept.order_id == "5"
    # Sent before and not yet found: the next holder is told, and nothing is marked for it.
    await asyncio.sleep(0.1)
    second = await taken(store, "b")
    again = await store.claim_order(key, second.id, second.generation, LEASE, request="{}")
    assert again.acquired and again.sent and not again.marked
    assert again.sent_age is not None and again.sent_age >= 0.1
    unmarked = await store.get(second.id)
    assert unmarked is not None and unmarked.sent_request is None
    # An order already invoiced is answered with its invoice, and nothing is marked.
    assert (await store.complete(second.id, second.generation, key, 88))[0]
    third = await taken(store, "c")
    done = await store.claim_order(key, third.id, third.generation, LEASE, request=sent)
    assert done.invoice_id == 88 and not done.acquired and not done.marked
    untouched = await store.get(third.id)
    assert untouched is not None and untouched.sent_request is None


async def test_a_lapsed_lease_claims_the_order_but_marks_no_send(store: Store) -> None:
    key = OrderKey("shopify", "", "6")
    slow = await taken(store, "lapse", lease=0.05, owner="slow")
    await asyncio.sleep(0.1)
    # Lapsed but not yet taken over: the order is taken as claim_order alone would take it,
    # and the send is refused as mark_sent would refuse it.
    claim = await store.claim_order(key, slow.id, slow.generation, LEASE, request="{}")
    assert claim == OrderClaim(acquired=True, marked=False)
    kept = await store.get(slow.id)
    assert kept is not None and kept.sent_request is None
    fast = await store.claim_next("fast", LEASE)
    assert fast is not None and fast.id == slow.id
    stale = await store.claim_order(key, slow.id, slow.generation, LEASE, request="{}")
    assert stale == OrderClaim(acquired=False)
    # The new holder finds no earlier send: none was marked.
    fresh = await store.claim_order(key, fast.id, fast.generation, LEASE, request="{}")
    assert fresh == OrderClaim(acquired=True, marked=True)


async def test_the_request_sent_and_every_wait_are_kept(store: Store) -> None:
    event = await taken(store)
    key = OrderKey("shopify", "", "1")
    assert (await store.claim_order(key, event.id, event.generation, LEASE)).acquired
    sent = '{"company_id": 42, "items": [{"product_id": 7, "quantity": 1}]}'
    assert await store.mark_sent(key, event.id, event.generation, request=sent)
    assert await store.defer(
        event.id,
        event.generation,
        delay=15.0,
        reason="an earlier send",
        counted=False,
        step="waiting",
    )
    kept = await store.get(event.id)
    assert kept is not None and kept.sent_request == sent and kept.attempts == 0
    [step] = await store.history(event.id)
    assert (step.outcome, step.detail, step.delay) == ("waiting", "an earlier send", 15.0)
    assert kept.summary()["attempts"] == 1  # taken up once


async def test_backlog_counts_unfinished_events_and_the_oldest(store: Store) -> None:
    assert await store.backlog() == Backlog(0, None)
    first, _ = await store.record(delivery("b1"))
    second = await taken(store, "b2")
    done, _ = await store.record(delivery("b3"))
    await ended(store, done, SKIPPED, "test order")
    backlog = await store.backlog()
    assert backlog.depth == 2 and backlog.oldest_received_at == first.received_at
    assert second.status == PROCESSING


async def test_the_oldest_unfinished_event_is_the_first_received(store: Store) -> None:
    assert await store.oldest_unfinished() is None
    done, _ = await store.record(order_delivery("o1", "1", "#1"))
    await ended(store, done, DEAD, "unknown SKU")
    first, _ = await store.record(order_delivery("o2", "2", "#2"))
    await taken(store, "o3")
    oldest = await store.oldest_unfinished()
    assert oldest is not None and (oldest.id, oldest.order_name) == (first.id, "#2")
    await ended(store, first, SKIPPED, "test order")
    after = await store.oldest_unfinished()
    assert after is not None and after.status == PROCESSING


async def test_received_by_hour_counts_whole_hours_since_a_time_by_status(store: Store) -> None:
    for key in ("h1", "h2", "h3"):
        await store.record(delivery(key))
    dead, _ = await store.record(delivery("h4"))
    await ended(store, dead, DEAD, "unknown SKU")
    now = time.time()
    # 5 h 50 min ago: hour 5, not 6 (a rounding cast would say 6).
    assert await store.received_by_hour(now - 5 * 3600 - 3000) == {5: {RECEIVED: 3, DEAD: 1}}
    assert await store.received_by_hour(now - 600) == {0: {RECEIVED: 3, DEAD: 1}}
    assert await store.received_by_hour(now + 60) == {}


async def test_a_secret_is_made_once_and_kept(store: Store) -> None:
    first = await store.secret("status_url")
    assert len(first) == 64 and await store.secret("status_url") == first
    assert await store.secret("other") != first


# -- the lease clock ------------------------------------------------------------------


@dataclass
class Time:
    """The readings of a host clock that a test steps by hand."""

    wall: float = 1_800_000_000.0
    monotonic: float = 1000.0

    def clock(self, boot: str = "boot-1") -> HostClock:
        return HostClock(wall=lambda: self.wall, monotonic=lambda: self.monotonic, boot=boot)


@pytest.fixture(params=["file", "memory"])
async def stepped(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Time, HostClock]]:
    """An SQLite store on a clock the test steps."""
    time_now = Time()
    clock = time_now.clock()
    path = tmp_path / "stepped.db" if request.param == "file" else ":memory:"
    backend = SQLiteStore(path, clock=clock)
    await backend.migrate()
    yield backend, time_now, clock
    await backend.close()


async def test_a_wall_clock_step_does_not_lapse_a_lease_but_a_monotonic_one_does(
    stepped: tuple[Store, Time, HostClock],
) -> None:
    store, now, _ = stepped
    held = await taken(store, "held", lease=30)
    waiting = await taken(store, "waiting")
    assert await store.defer(waiting.id, waiting.generation, delay=60, reason="503")
    now.wall += 120  # NTP steps the wall clock two minutes ahead
    assert await store.still_holds(held.id, held.generation)
    due = await store.claim_next("other", LEASE)
    assert due is not None and due.id == waiting.id  # retry schedules are wall-clock
    assert await store.claim_next("other", LEASE) is None
    now.monotonic += 29
    assert await store.still_holds(held.id, held.generation)
    now.monotonic += 2
    assert not await store.still_holds(held.id, held.generation)
    retaken = await store.claim_next("other", LEASE)
    assert retaken is not None and retaken.id == held.id


async def test_a_lease_taken_in_another_boot_has_lapsed(
    stepped: tuple[Store, Time, HostClock],
) -> None:
    store, now, clock = stepped
    key = OrderKey("shopify", "", "11")
    before = await taken(store, lease=3600)
    assert (await store.claim_order(key, before.id, before.generation, 3600)).acquired
    assert await store.mark_sent(key, before.id, before.generation)
    now.monotonic += 7
    again = await store.claim_order(key, before.id, before.generation, 3600)
    assert again.sent and again.sent_age == 7.0
    clock.boot, now.monotonic = "boot-2", 5.0  # a reboot: the monotonic clock starts over
    assert not await store.still_holds(before.id, before.generation)
    after = await store.claim_next("after-reboot", LEASE)
    assert after is not None and after.id == before.id
    claim = await store.claim_order(key, after.id, after.generation, LEASE)
    assert claim.acquired and claim.sent and claim.sent_age is None


async def test_a_lease_of_a_previous_boot_lapses_when_the_file_is_reopened(tmp_path: Path) -> None:
    path, now = tmp_path / "reboot.db", Time()
    store = SQLiteStore(path, clock=now.clock("boot-1"))
    await store.migrate()
    event = await taken(store, lease=3600)
    await store.close()
    rebooted = SQLiteStore(path, clock=now.clock("boot-2"))
    try:
        retaken = await rebooted.claim_next("after-reboot", LEASE)
    finally:
        await rebooted.close()
    assert retaken is not None and retaken.id == event.id
    assert retaken.generation == event.generation + 1


async def test_the_host_clock_reads_the_boot_id() -> None:
    clock = HostClock()
    if BOOT_ID.exists():
        assert clock.boot == BOOT_ID.read_text().strip()
    assert HostClock().boot == clock.boot  # every process of one boot agrees
    first, second = clock.now(), clock.now()
    assert second.lease >= first.lease


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


# -- PostgreSQL: several replicas on one database ----------------------------------


@contextlib.asynccontextmanager
async def replicas(url: str, count: int = 2) -> AsyncIterator[list[PostgresStore]]:
    """`count` stores on one database, each with its own pool, as replicas have."""
    stores = [PostgresStore(url) for _ in range(count)]
    try:
        yield stores
    finally:
        for each in stores:
            await each.close()


async def test_replicas_migrating_at_once_both_succeed(pg_url: str) -> None:
    async with replicas(pg_url, 4) as stores:
        assert {await each.schema_version() for each in stores} == {None}
        await asyncio.gather(*(each.migrate() for each in stores))
        assert {await each.schema_version() for each in stores} == {SCHEMA_VERSION}


async def test_a_newer_postgres_schema_is_refused(pg_url: str) -> None:
    async with replicas(pg_url, 1) as (store,):
        await store.migrate()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    async with replicas(pg_url, 1) as (newer,):
        with pytest.raises(StoreError, match="newer than this release"):
            await newer.migrate()


async def test_postgres_leases_are_on_the_servers_clock_not_the_hosts(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with replicas(pg_url, 1) as (store,):
        await store.migrate()
        event = await taken(store, lease=30)
        wall = time.time
        monkeypatch.setattr(time, "time", lambda: wall() + 120)  # the host's clock steps
        assert await store.still_holds(event.id, event.generation)
        assert await store.claim_next("other", LEASE) is None
    with psycopg.connect(pg_url) as db:
        row = db.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None and event.lease_until is not None
    assert abs(event.lease_until - 30 - row[0]) < 5


async def test_replicas_racing_claim_next_take_every_event_exactly_once(pg_url: str) -> None:
    async with replicas(pg_url) as stores:
        await stores[0].migrate()
        recorded = [(await stores[0].record(delivery(f"k{n}")))[0].id for n in range(60)]
        claimed: list[tuple[int, str]] = []

        async def poll(store: PostgresStore, owner: str) -> None:
            while (event := await store.claim_next(owner, LEASE)) is not None:
                claimed.append((event.id, owner))

        await asyncio.gather(
            *(
                poll(store, f"replica{r}-task{t}")
                for r, store in enumerate(stores)
                for t in range(5)
            )
        )
    assert sorted(event_id for event_id, _ in claimed) == recorded
    assert {owner.split("-")[0] for _, owner in claimed} == {"replica0", "replica1"}


async def test_replicas_racing_for_one_order_let_exactly_one_send(pg_url: str) -> None:
    async with replicas(pg_url) as stores:
        await stores[0].migrate()
        for n in range(20):
            key = OrderKey("shopify", "acme.myshopify.com", str(n))
            events = [await taken(stores[0], f"{n}-{r}") for r in range(2)]
            claims = await asyncio.gather(
                *(
                    store.claim_order(key, event.id, event.generation, LEASE)
                    for store, event in zip(stores, events, strict=True)
                )
            )
            winners = [
                event.id for claim, event in zip(claims, events, strict=True) if claim.acquired
            ]
            assert len(winners) == 1, claims
            loser = next(claim for claim in claims if not claim.acquired)
            assert loser.event_id == winners[0]


async def test_racing_completions_keep_the_first_invoice(pg_url: str) -> None:
    key = OrderKey("shopify", "", "42")
    async with replicas(pg_url) as stores:
        await stores[0].migrate()
        events = [await taken(store, f"c{n}", owner=f"w{n}") for n, store in enumerate(stores)]
        results = await asyncio.gather(
            *(
                store.complete(event.id, event.generation, key, 500 + n)
                for n, (store, event) in enumerate(zip(stores, events, strict=True))
            )
        )
        finished = [await stores[0].get(event.id) for event in events]
    assert all(done for done, _ in results)
    assert len({original for _, original in results}) == 1
    invoices = {event.invoice_id for event in finished if event is not None}
    assert len(invoices) == 1 and invoices <= {500, 501}
    assert sum(event.duplicate_of is not None for event in finished if event) == 1


async def test_the_same_delivery_to_two_replicas_is_recorded_once(pg_url: str) -> None:
    async with replicas(pg_url) as stores:
        await stores[0].migrate()
        for n in range(10):
            answers = await asyncio.gather(*(store.record(delivery(f"r{n}")) for store in stores))
            assert sorted(created for _, created in answers) == [False, True]
            assert len({event.id for event, _ in answers}) == 1


def waiting_for_key_lock(pg_url: str, key: str) -> bool:
    """Whether some session waits for the resolver's advisory lock on `key`."""
    with psycopg.connect(pg_url, autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objsubid = 2 AND objid = hashtext(%s)::oid"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (key,),
        ).fetchone()
    return bool(row and row[0])


async def test_key_locks_hold_a_key_across_replicas(pg_url: str) -> None:
    key = f"company:email:{uuid.uuid4().hex}@example.com"
    order: list[str] = []
    async with replicas(pg_url) as (first, second):
        async with first.key_locks().hold(key):
            order.append("first holds")
            async with asyncio.timeout(5), second.key_locks().hold(f"{key}-other"):
                order.append("other key does not wait")

            async def contend() -> None:
                async with second.key_locks().hold(key):
                    order.append("second holds")

            contender = asyncio.create_task(contend())
            deadline = time.monotonic() + 10
            while not waiting_for_key_lock(pg_url, key):
                assert time.monotonic() < deadline and not contender.done()
                await asyncio.sleep(0.01)
            order.append("first releases")
        await asyncio.wait_for(contender, 10)
    assert order == ["first holds", "other key does not wait", "first releases", "second holds"]


async def test_a_cancelled_holder_leaves_no_lock_behind(pg_url: str) -> None:
    key = "product:MUG-WHT"
    async with replicas(pg_url) as (first, second):
        entered = asyncio.Event()

        async def hold_forever() -> None:
            async with first.key_locks().hold(key):
                entered.set()
                await asyncio.Event().wait()

        holder = asyncio.create_task(hold_forever())
        await entered.wait()
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        async with asyncio.timeout(5), second.key_locks().hold(key):
            pass


async def test_store_errors_never_show_the_password() -> None:
    store = PostgresStore("postgresql://bridge:s3cret-pw@127.0.0.1:1/events", timeout=0.5)
    try:
        with pytest.raises(StoreError) as caught:
            await store.ping()
    finally:
        await store.close()
    assert "s3cret-pw" not in str(caught.value)
    assert "bridge:***@127.0.0.1:1/events" in str(caught.value)
    assert "refused" in str(caught.value)  # why, not only that the pool waited


def test_redact_hides_passwords_in_every_spelling() -> None:
    assert redact("postgresql://u:p%40ss@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("postgres://u@db/x?password=hunter2&sslmode=require") == (
        "postgres://u@db/x?password=***&sslmode=require"
    )
    assert redact("host=db password=hunter2 dbname=x") == "host=db password=*** dbname=x"
    assert redact("postgresql://u@db/x") == "postgresql://u@db/x"


async def test_a_worker_whose_lease_lapsed_may_not_mark_a_send(store: Store) -> None:
    key = OrderKey("shopify", "", "3")
    slow = await taken(store, "lapse", lease=0.05, owner="slow")
    assert (await store.claim_order(key, slow.id, slow.generation, LEASE)).acquired
    await asyncio.sleep(0.1)
    assert not await store.mark_sent(key, slow.id, slow.generation)
    fast = await store.claim_next("fast", LEASE)
    assert fast is not None and fast.id == slow.id
    assert not await store.mark_sent(key, slow.id, slow.generation)
    assert await store.mark_sent(key, fast.id, fast.generation)


async def test_an_upgrade_rekeys_orders_by_their_authenticated_scope(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Orders recorded under the shop header as sent (as earlier releases did) keep matching
    # once Shopify keys are shop-less and WooCommerce shops are spelt one way.
    config = tmp_path / "bridge.toml"
    config.write_text("[sources.shopify]\n[sources.woocommerce]\n")
    settings = load_settings(str(config), {})
    keys = [
        (OrderKey("shopify", "acme.myshopify.com", "1"), 11),
        (OrderKey("shopify", "ACME.myshopify.com.", "2"), 12),
        (OrderKey("shopify", "evil.myshopify.com", "1"), 13),  # the forged-header double
        (OrderKey("woocommerce", "https://shop.example/", "7"), 17),
    ]
    for index, (key, invoice_id) in enumerate(keys):
        event = await taken(store, f"k{index}")
        await store.claim_order(key, event.id, event.generation, LEASE)
        assert (await store.complete(event.id, event.generation, key, invoice_id))[0]
    with caplog.at_level(logging.ERROR, logger="bridge.rekey"):
        assert await rekey_orders(store, settings) == 3
    assert await store.invoice_for(OrderKey("shopify", "", "1")) == 11
    assert await store.invoice_for(OrderKey("shopify", "", "2")) == 12
    assert await store.invoice_for(OrderKey("woocommerce", "shop.example", "7")) == 17
    assert "invoiced twice" in caplog.text  # the double is said, not dropped
    assert await store.invoice_for(OrderKey("shopify", "evil.myshopify.com", "1")) == 13
    assert await rekey_orders(store, settings) == 0  # idempotent: every start runs it
