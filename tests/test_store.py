"""The store contract: every backend must pass these (SQLite file and in-memory, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from bridge.config import StoreConfig
from bridge.errors import StoreError
from bridge.store import PostgresStore, SQLiteStore, Store, open_store
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
    await store.claim(first.id, "w1", 0.05)
    assert await store.mark_sent(key, first.id, "w1")
    await asyncio.sleep(0.1)
    claim = await store.claim_order(key, second.id, LEASE)
    assert claim.acquired and claim.sent
    await store.claim(second.id, "w2", LEASE)
    assert await store.mark_sent(key, second.id, "w2", sent=False)
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
            events = [(await stores[0].record(delivery(f"{n}-{r}")))[0] for r in range(2)]
            claims = await asyncio.gather(
                *(
                    store.claim_order(key, event.id, LEASE)
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
        events = []
        for n, store in enumerate(stores):
            event, _ = await store.record(delivery(f"c{n}"))
            await store.claim(event.id, f"w{n}", LEASE)
            events.append(event)
        results = await asyncio.gather(
            *(
                store.complete(event.id, f"w{n}", key, 500 + n)
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
    event, _ = await store.record(delivery("lapse"))
    await store.claim(event.id, "slow", 0.05)
    assert (await store.claim_order(key, event.id, LEASE)).acquired
    await asyncio.sleep(0.1)
    assert not await store.mark_sent(key, event.id, "slow")
    taken = await store.claim_next("fast", LEASE)
    assert taken is not None and taken.id == event.id
    assert not await store.mark_sent(key, event.id, "slow")
    assert await store.mark_sent(key, event.id, "fast")
