"""The worker against the sandbox in-process, with faults a transport injects on cue:
unknown outcomes, a refused token, exhausted retries and two deliveries racing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bridge import wire
from bridge.admin import Admin
from bridge.config import Settings, load_settings
from bridge.errors import StoreError
from bridge.invoicing import Claim, Created, Lost
from bridge.luminous import LuminousClient
from bridge.retry import RetryPolicy
from bridge.sandbox import Sandbox, SandboxSettings, create_sandbox_app
from bridge.store import SQLiteStore
from bridge.store.base import CREATED, DEAD, RETRYING, Event, NewDelivery
from bridge.worker import Worker
from tests.orders import body, seed, shopify_order

pytestmark = pytest.mark.anyio

Fault = Callable[[httpx.Request], httpx.Response | None]


class FaultyTransport(httpx.AsyncBaseTransport):
    """Forwards to the sandbox; `before` may answer instead, `after` may lose the answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.before: Fault | None = None
        self.lose_answers = 0
        self.slow_gets = 0.0  # seconds each GET takes
        self.requests: list[tuple[str, str]] = []
        self.queries: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        self.queries.append(request.url.query.decode())
        if request.method == "GET" and self.slow_gets:
            await asyncio.sleep(self.slow_gets)
        if self.before is not None:
            answer = self.before(request)
            if answer is not None:
                return answer
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and self.lose_answers > 0:
            self.lose_answers -= 1
            await response.aread()
            raise httpx.ReadTimeout("answer lost after the invoice was created", request=request)
        return response


@dataclass
class Rig:
    settings: Settings
    store: SQLiteStore
    sandbox: Sandbox
    transport: FaultyTransport
    worker: Worker

    async def deliver(self, payload: bytes, key: str, shop: str = "acme.myshopify.com") -> Event:
        event, _ = await self.store.record(
            NewDelivery("shopify", key, shop, "orders/create", {}, payload)
        )
        return event

    async def settle(self, event_id: int, timeout: float = 10.0) -> Event:
        self.worker.kick(event_id)
        event = await self.worker.wait(event_id, timeout)
        assert event is not None
        return event


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = tmp_path / "bridge.toml"
    config.write_text(
        "[luminous]\nbase_url = 'http://sandbox/external/api/v1'\ntimeout = 2.0\n"
        "max_requests_per_second = 0\nunknown_outcome_wait = 2.0\n"
        "[sources.shopify]\n[sources.shopify.options]\ncompany_id = 1\n"
    )
    settings = load_settings(
        str(config), {"SHOPIFY_WEBHOOK_SECRET": "s", "LUMINOUS_API_TOKEN": "t"}
    )
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    sandbox_app = create_sandbox_app(SandboxSettings(seed=seed_file))
    transport = FaultyTransport(httpx.ASGITransport(app=sandbox_app))
    client = LuminousClient("http://sandbox/external/api/v1", "t", timeout=2.0, transport=transport)
    store = SQLiteStore(":memory:")
    await store.migrate()
    policy = RetryPolicy(
        max_attempts=3, base_delay=0.01, max_delay=0.05, max_age=0, rng=random.Random(1)
    )
    worker = Worker(settings, store, client, policy=policy, poll_interval=0.02, probe_interval=0.05)
    worker.start()
    yield Rig(settings, store, sandbox_app.state.sandbox, transport, worker)
    await worker.stop(1.0)
    await client.aclose()
    await store.close()


async def wait_for_status(rig: Rig, event_id: int, status: str, timeout: float = 10.0) -> Event:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        event = await rig.store.get(event_id)
        assert event is not None
        if event.status == status or asyncio.get_running_loop().time() > deadline:
            return event
        await asyncio.sleep(0.02)


async def test_a_lost_answer_is_looked_up_and_adopted_not_sent_again(rig: Rig) -> None:
    rig.transport.lose_answers = 1
    event = await rig.deliver(body(shopify_order(1)), "a")
    await rig.settle(event.id, 0.2)
    settled = await wait_for_status(rig, event.id, CREATED)
    assert settled.status == CREATED
    assert len(rig.sandbox.invoices) == 1
    assert settled.invoice_id == next(iter(rig.sandbox.invoices))
    posts = [r for r in rig.transport.requests if r == ("POST", "/external/api/v1/invoices")]
    lookups = [r for r in rig.transport.requests if r == ("GET", "/external/api/v1/invoices")]
    assert len(posts) == 1 and len(lookups) == 1
    outcomes = [step.outcome for step in await rig.store.history(event.id)]
    assert outcomes == ["retry", "adopted", CREATED]


async def test_an_unknown_outcome_with_nothing_created_is_sent_again_once(rig: Rig) -> None:
    def refuse_first_post(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and not getattr(refuse_first_post, "done", False):
            refuse_first_post.done = True  # type: ignore[attr-defined]
            return httpx.Response(502, json={"message": "Bad gateway"})
        return None

    rig.transport.before = refuse_first_post
    event = await rig.deliver(body(shopify_order(2)), "b")
    await rig.settle(event.id, 0.1)
    settled = await wait_for_status(rig, event.id, CREATED)
    assert settled.status == CREATED and len(rig.sandbox.invoices) == 1
    on_invoices = [method for method, path in rig.transport.requests if path.endswith("/invoices")]
    # Looked up (once or more, until the first send could no longer land), then sent again.
    assert on_invoices[0] == "POST" and on_invoices[-1] == "POST"
    assert on_invoices.count("POST") == 2 and "GET" in on_invoices[1:-1]


async def test_a_refused_token_pauses_work_instead_of_killing_events(rig: Rig) -> None:
    rig.transport.before = lambda request: httpx.Response(401, json={"message": "Unauthenticated."})
    event = await rig.deliver(body(shopify_order(3)), "c")
    waiting = await rig.settle(event.id, 0.2)
    assert waiting.status == RETRYING and waiting.attempts == 0
    assert rig.worker.paused and "401" in rig.worker.paused
    await asyncio.sleep(0.2)
    still = await rig.store.get(event.id)
    assert still is not None and still.status != DEAD
    rig.transport.before = None  # the token works again
    settled = await wait_for_status(rig, event.id, CREATED)
    assert settled.status == CREATED and rig.worker.paused is None


async def test_retries_end_dead_once_attempts_and_age_are_spent(rig: Rig) -> None:
    rig.transport.before = lambda request: httpx.Response(503, json={"message": "down"})
    event = await rig.deliver(body(shopify_order(4)), "d")
    await rig.settle(event.id, 0.1)
    dead = await wait_for_status(rig, event.id, DEAD)
    assert dead.status == DEAD and dead.attempts == 2
    assert dead.reason is not None and dead.reason.startswith("gave up after 3 attempts")
    assert rig.sandbox.invoices == {}


async def test_retries_honour_the_age_budget(rig: Rig) -> None:
    rig.worker.policy.max_age = 3600
    rig.transport.before = lambda request: httpx.Response(
        429, headers={"Retry-After": "0"}, json={}
    )
    event = await rig.deliver(body(shopify_order(5)), "e")
    await rig.settle(event.id, 0.1)
    await asyncio.sleep(0.5)
    waiting = await rig.store.get(event.id)
    assert waiting is not None and waiting.status in (RETRYING, "processing")
    assert waiting.attempts >= 3  # past max_attempts, still not given up: the outage is young


async def test_two_deliveries_of_one_order_racing_make_one_invoice(rig: Rig) -> None:
    payload = body(shopify_order(6))
    first = await rig.deliver(payload, "f1")
    second = await rig.deliver(payload, "f2")
    rig.worker.kick(first.id)
    rig.worker.kick(second.id)
    one = await wait_for_status(rig, first.id, CREATED)
    two = await wait_for_status(rig, second.id, CREATED)
    assert len(rig.sandbox.invoices) == 1
    assert one.invoice_id == two.invoice_id
    original, duplicate = (one, two) if two.duplicate_of else (two, one)
    assert original.duplicate_of is None and duplicate.duplicate_of == original.id


async def test_a_lost_answer_is_found_by_the_invoice_custom_field(rig: Rig) -> None:
    source = rig.settings.sources["shopify"]
    options = source.options.model_copy(update={"invoice_custom_field": "Shopify Order ID"})
    sources = {"shopify": dataclasses.replace(source, options=options)}
    rig.worker.invoicer.settings = dataclasses.replace(rig.settings, sources=sources)
    rig.transport.lose_answers = 1
    event = await rig.deliver(body(shopify_order(820982911946154508)), "g")
    await rig.settle(event.id, 0.2)
    settled = await wait_for_status(rig, event.id, CREATED)
    assert settled.status == CREATED and len(rig.sandbox.invoices) == 1
    invoice = rig.sandbox.invoices[settled.invoice_id]
    assert invoice["custom_fields"] == {"Shopify Order ID": "820982911946154508"}
    lookups = [
        path
        for method, path in rig.transport.requests
        if method == "GET" and path.endswith("/invoices")
    ]
    assert len(lookups) == 1


async def test_a_store_failing_to_claim_does_not_leak_worker_slots(rig: Rig) -> None:
    real_claim_next = rig.store.claim_next
    failures = 0

    async def flaky_claim_next(
        owner: str, lease: float, skip: Collection[int] = ()
    ) -> Event | None:
        nonlocal failures
        if failures < 10:  # more failures than the worker has slots
            failures += 1
            raise StoreError("database is locked")
        return await real_claim_next(owner, lease, skip=skip)

    rig.worker.poll_interval = 0.01
    rig.store.claim_next = flaky_claim_next  # type: ignore[method-assign]
    event = await rig.deliver(body(shopify_order(8)), "slots")
    created = await wait_for_status(rig, event.id, CREATED)
    assert failures == 10 and created.status == CREATED


async def test_a_403_on_one_request_ends_that_event_and_pauses_nothing(rig: Rig) -> None:
    def forbid_posts(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(403, json={"message": "This action is unauthorized."})
        return None

    rig.transport.before = forbid_posts
    event = await rig.deliver(body(shopify_order(11)), "forbidden")
    await rig.settle(event.id, 0.2)
    dead = await wait_for_status(rig, event.id, DEAD)
    assert dead.status == DEAD and dead.reason is not None and "403" in dead.reason
    assert rig.worker.paused is None  # the token check passed: the token is fine
    rig.transport.before = None
    other = await rig.deliver(body(shopify_order(12)), "after")
    assert (await wait_for_status(rig, other.id, CREATED)).status == CREATED


async def test_a_403_on_the_token_check_as_well_pauses_work(rig: Rig) -> None:
    rig.transport.before = lambda request: httpx.Response(403, json={"message": "Forbidden"})
    event = await rig.deliver(body(shopify_order(13)), "forbidden-token")
    await rig.settle(event.id, 0.2)
    waiting = await wait_for_status(rig, event.id, RETRYING)
    assert waiting.status == RETRYING and rig.worker.paused and "403" in rig.worker.paused
    rig.transport.before = None
    assert (await wait_for_status(rig, event.id, CREATED)).status == CREATED


async def test_the_loop_survives_any_error_and_goes_on(rig: Rig) -> None:
    real_claim_next = rig.store.claim_next
    failures = 0

    async def buggy_claim_next(
        owner: str, lease: float, skip: Collection[int] = ()
    ) -> Event | None:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise RuntimeError("a bug, not a store error")
        return await real_claim_next(owner, lease, skip=skip)

    rig.store.claim_next = buggy_claim_next  # type: ignore[method-assign]
    event = await rig.deliver(body(shopify_order(14)), "buggy")  # no kick: the loop finds it
    assert rig.worker.alive
    created = await wait_for_status(rig, event.id, CREATED, timeout=15)
    assert failures == 3 and created.status == CREATED
    assert rig.worker.alive and rig.worker.loop_error is None


async def test_health_routes_fail_once_the_worker_loop_is_dead(rig: Rig) -> None:
    app = Starlette(routes=Admin(rig.settings, rig.store, rig.worker).routes())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bridge"
    ) as http:
        assert (await http.get("/healthz")).status_code == 200
        loop = rig.worker._loop_task
        assert loop is not None
        loop.cancel()  # as any death of the loop would leave it
        await asyncio.gather(loop, return_exceptions=True)
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert health.status_code == 503 and ready.status_code == 503
    assert "worker loop stopped" in ready.text


async def test_a_claim_lost_meanwhile_sends_nothing(rig: Rig) -> None:
    # Another worker has taken the event over (as the store says just before the write):
    # the send guard stops the POST, however often this worker claims the event again.
    async def taken_over(event_id: int, generation: int) -> bool:
        return False

    rig.store.still_holds = taken_over  # type: ignore[method-assign]
    event = await rig.deliver(body(shopify_order(15)), "lost")
    await rig.settle(event.id, 1.0)
    assert ("POST", "/external/api/v1/invoices") not in rig.transport.requests
    assert rig.sandbox.invoices == {}


async def test_a_renewal_that_finds_the_claim_gone_stops_the_send(rig: Rig) -> None:
    async def lost(event_id: int, generation: int, lease: float) -> bool:
        return False

    rig.store.renew = lost  # type: ignore[method-assign]
    rig.worker.lease = 0.15  # renewals every 0.05 s
    rig.transport.slow_gets = 0.2  # the renewal runs, and fails, before the send
    event = await rig.deliver(body(shopify_order(16)), "renewal")
    claim = await rig.store.claim(event.id, "test", 30)
    assert claim is not None
    held = Claim(claim, claim.generation)
    keeper = asyncio.create_task(rig.worker._keep_lease(held))
    outcome = await rig.worker.invoicer.process(held)
    keeper.cancel()
    assert held.lost and isinstance(outcome, Lost)
    assert ("POST", "/external/api/v1/invoices") not in rig.transport.requests


async def test_two_shops_orders_of_one_name_day_and_total_keep_their_own_invoices(
    rig: Rig,
) -> None:
    # Alpha's #1001 is invoiced; beta's #1001 (same day, total and lines) meets a 502 before
    # reaching Luminous. The lookup finds alpha's invoice by PO number: it must not adopt it.
    alpha = await rig.deliver(
        body(shopify_order(7_400_000_000_001, number=1001)), "a-1001", "alpha.myshopify.com"
    )
    assert (await rig.settle(alpha.id)).status == CREATED

    def bad_gateway_once(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and not getattr(bad_gateway_once, "done", False):
            bad_gateway_once.done = True  # type: ignore[attr-defined]
            return httpx.Response(502, text="Bad Gateway")
        return None

    rig.transport.before = bad_gateway_once
    beta = await rig.deliver(
        body(shopify_order(7_400_000_000_002, number=1001)), "b-1001", "beta.myshopify.com"
    )
    await rig.settle(beta.id, 0.2)
    beta_done = await wait_for_status(rig, beta.id, CREATED, timeout=15)
    alpha_done = await rig.store.get(alpha.id)
    assert alpha_done is not None and beta_done.status == CREATED
    assert beta_done.invoice_id != alpha_done.invoice_id
    assert len(rig.sandbox.invoices) == 2
    assert "adopted" not in [step.outcome for step in await rig.store.history(beta.id)]


async def test_a_burst_waits_in_the_store_not_in_tasks(rig: Rig) -> None:
    # Every slot is taken, so kicks pile up: past the bound they are left to the store.
    slots = rig.settings.config.luminous.max_concurrency
    for _ in range(slots):
        await rig.worker._slots.acquire()
    events = [await rig.deliver(body(shopify_order(9_000 + n)), f"burst-{n}") for n in range(60)]
    for event in events:
        rig.worker.kick(event.id)
    await asyncio.sleep(0.05)
    assert len(rig.worker._tasks) <= rig.worker.handoff_bound < 60
    for _ in range(slots):
        rig.worker._slots.release()
    for event in events:
        done = await wait_for_status(rig, event.id, CREATED, timeout=60)
        assert done.status == CREATED, done
    assert rig.worker._kicked == 0
    assert len(rig.sandbox.invoices) == 60


async def test_a_body_parsed_at_the_front_door_is_not_parsed_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The polling loop stays asleep, so only the kick can take the event up.
    monkeypatch.setattr(rig.worker, "poll_interval", 3600.0)
    await asyncio.sleep(0.1)
    order = body(shopify_order(9_400_000_000_001))
    event = await rig.deliver(order, "parsed-once")
    parses: list[bytes] = []
    real = wire.loads

    def counted(data: bytes | str) -> Any:
        parses.append(data if isinstance(data, bytes) else data.encode())
        return real(data)

    monkeypatch.setattr(wire, "loads", counted)
    rig.worker.kick(event.id, wire.Parsed(real(order)))
    settled = await rig.worker.wait(event.id, 10.0)
    assert settled is not None and settled.status == CREATED, settled
    assert order not in parses

    # Without the hand-off (a restart, the polling loop) the stored bytes are parsed.
    again = await rig.deliver(body(shopify_order(9_400_000_000_002)), "parsed-from-store")
    assert (await rig.settle(again.id)).status == CREATED
    assert again.body in parses


def calls_to(store: SQLiteStore, name: str) -> list[tuple[Any, ...]]:
    """Spy on `store.<name>`: the arguments of each call, noted before it runs as before."""
    calls: list[tuple[Any, ...]] = []
    method = getattr(store, name)

    async def noted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await method(*args, **kwargs)

    setattr(store, name, noted)
    return calls


async def test_every_waiter_of_one_event_is_woken_with_the_event_as_it_ended(rig: Rig) -> None:
    # A SQLite store has one process: waiters are woken by the worker, not by polling it.
    assert not rig.store.shared
    event = await rig.deliver(body(shopify_order(40)), "waiters")
    reads = calls_to(rig.store, "get")
    rig.worker.kick(event.id)
    first, second = await asyncio.gather(
        rig.worker.wait(event.id, 10, event), rig.worker.wait(event.id, 10, event)
    )
    assert first is not None and second is not None
    assert first.status == second.status == CREATED and first.invoice_id is not None
    assert reads == [] and rig.worker._changed == {}


async def test_a_delivery_recorded_with_a_free_slot_is_claimed_in_the_same_write(
    rig: Rig,
) -> None:
    claims = calls_to(rig.store, "claim")
    new = NewDelivery("shopify", "fold", "acme.myshopify.com", "orders/create", {}, b"")
    payload = body(shopify_order(41))
    event, created, taken = await rig.worker.record(dataclasses.replace(new, body=payload))
    assert created and taken and event.status == "processing"
    assert event.lease_owner == rig.worker.owner and event.id in rig.worker._held
    settled = await rig.worker.wait(event.id, 10, event)
    assert settled is not None and settled.status == CREATED and claims == []
    # A repeat is not claimed again; with every slot taken a new one waits to be kicked.
    again, created, taken = await rig.worker.record(dataclasses.replace(new, body=payload))
    assert again.id == event.id and not created and not taken
    slots = rig.settings.config.luminous.max_concurrency
    for _ in range(slots):
        await rig.worker._slots.acquire()
    other = dataclasses.replace(new, delivery_key="fold-2", body=body(shopify_order(42)))
    waiting, created, taken = await rig.worker.record(other)
    assert created and not taken and waiting.status == "received"
    for _ in range(slots):
        rig.worker._slots.release()


async def test_an_order_resolved_from_the_caches_is_claimed_and_marked_sent_in_one_write(
    rig: Rig,
) -> None:
    first = await rig.deliver(body(shopify_order(43)), "known-1")
    assert (await rig.settle(first.id)).status == CREATED  # its SKUs are cached now
    marks = calls_to(rig.store, "mark_sent")
    gets_before = rig.transport.requests.count(("GET", "/external/api/v1/products"))
    second = await rig.deliver(body(shopify_order(44)), "known-2")
    settled = await rig.settle(second.id)
    assert settled.status == CREATED and marks == []
    assert rig.transport.requests.count(("GET", "/external/api/v1/products")) == gets_before
    assert settled.sent_request is not None and '"product_id"' in settled.sent_request
    assert len(rig.sandbox.invoices) == 2


async def test_an_answer_after_the_lease_lapsed_is_flagged_and_not_recorded(rig: Rig) -> None:
    # The lease lapses while the POST is on the wire: the answer is not recorded under the
    # claim (no store.still_holds read: complete asks it), and the event says it may double.
    loop = rig.worker._loop_task
    assert loop is not None
    loop.cancel()  # nothing takes the lapsed event over meanwhile
    await asyncio.gather(loop, return_exceptions=True)

    def slow_post(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            time.sleep(0.6)  # past the 0.5 s lease
        return None

    event = await rig.deliver(body(shopify_order(45)), "late-answer")
    claim = await rig.store.claim(event.id, "test", 0.5)
    assert claim is not None
    held = Claim(claim, claim.generation)
    rig.transport.before = slow_post
    outcome = await rig.worker.invoicer.process(held)
    assert isinstance(outcome, Created) and outcome.sent
    await rig.worker._record(held, outcome, 0.0)
    after = await rig.store.get(event.id)
    assert after is not None and after.status == "processing" and after.invoice_id is None
    assert after.possible_duplicate is not None
    assert f"invoice {outcome.invoice_id} was sent after" in after.possible_duplicate
    assert await rig.store.invoice_for(outcome.key) is None
    assert len(rig.sandbox.invoices) == 1


async def test_a_known_order_is_claimed_with_its_delivery_and_an_invoiced_one_is_not_sent(
    rig: Rig,
) -> None:
    first = await rig.deliver(body(shopify_order(46)), "front-1")
    assert (await rig.settle(first.id)).status == CREATED  # its SKUs are cached now
    claims = calls_to(rig.store, "claim_order")
    new = NewDelivery("shopify", "front-2", "acme.myshopify.com", "orders/create", {}, b"")
    payload = body(shopify_order(47))
    parsed = await wire.parse_body(payload)
    event, created, taken = await rig.worker.record(dataclasses.replace(new, body=payload), parsed)
    assert created and taken and event.sent_request is not None and event.order_id == "47"
    settled = await rig.worker.wait(event.id, 10, event)
    assert settled is not None and settled.status == CREATED and claims == []
    # Another delivery of the invoiced order: answered with its invoice, nothing sent.
    posts = rig.transport.requests.count(("POST", "/external/api/v1/invoices"))
    again = dataclasses.replace(new, delivery_key="front-3", body=payload)
    repeat, created, taken = await rig.worker.record(again, parsed)
    assert created and taken and repeat.sent_request is None
    done = await rig.worker.wait(repeat.id, 10, repeat)
    assert done is not None and done.status == CREATED
    assert done.invoice_id == settled.invoice_id and done.duplicate_of == event.id
    assert rig.transport.requests.count(("POST", "/external/api/v1/invoices")) == posts


@pytest.mark.parametrize("with_order", [False, True], ids=["record", "record with its order"])
async def test_a_drain_begun_during_a_claiming_record_hands_the_event_back(
    rig: Rig, with_order: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The write claims the event for this worker; the drain begins before it returns. The
    # event must not wait out a lease nobody holds, nor a send that never left: it is
    # released, due now, its order not marked sent.
    if with_order:  # its SKUs cached, so the record claims its order and marks it sent too
        warm = await rig.deliver(body(shopify_order(60)), "drain-warm")
        assert (await rig.settle(warm.id)).status == CREATED
    written = "record_with_order" if with_order else "record_claimed"
    original = getattr(rig.store, written)

    async def then_drain(*args: Any) -> Any:
        result = await original(*args)
        rig.worker.draining = True
        return result

    monkeypatch.setattr(rig.store, written, then_drain)
    payload = body(shopify_order(61))
    new = NewDelivery("shopify", "drain", "acme.myshopify.com", "orders/create", {}, payload)
    event, created, taken = await rig.worker.record(new, wire.Parsed(wire.loads(payload)))
    assert created and not taken and event.id not in rig.worker._held
    assert not rig.worker._slots.locked() and rig.worker._slots._value == (
        rig.settings.config.luminous.max_concurrency
    )
    stored = await rig.store.get(event.id)
    assert stored is not None and stored.status == "received" and stored.lease_until is None
    rig.worker.draining = False  # as the next process would, it takes the event up at once
    lookups = rig.transport.requests.count(("GET", "/external/api/v1/invoices"))
    assert (await rig.settle(event.id, timeout=5)).status == CREATED
    # Sent at once: a send marked as made is looked up, then held back for its deadline.
    assert rig.transport.requests.count(("GET", "/external/api/v1/invoices")) == lookups
    assert len(rig.sandbox.invoices) == (2 if with_order else 1)
