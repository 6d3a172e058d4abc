"""The worker against the sandbox in-process, with faults a transport injects on cue:
unknown outcomes, a refused token, exhausted retries and two deliveries racing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bridge.config import Settings, load_settings
from bridge.errors import StoreError
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
        self.requests: list[tuple[str, str]] = []
        self.queries: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        self.queries.append(request.url.query.decode())
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

    async def deliver(self, payload: bytes, key: str) -> Event:
        event, _ = await self.store.record(
            NewDelivery("shopify", key, "acme.myshopify.com", "orders/create", {}, payload)
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
        "max_requests_per_second = 0\n"
        "[sources.shopify]\n[sources.shopify.options]\ncompany_id = 1\n"
    )
    settings = load_settings(
        str(config), {"SHOPIFY_WEBHOOK_SECRET": "s", "LUMINOUS_API_TOKEN": "t"}
    )
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    sandbox_app = create_sandbox_app(SandboxSettings(seed=seed_file))
    transport = FaultyTransport(httpx.ASGITransport(app=sandbox_app))
    client = LuminousClient("http://sandbox/external/api/v1", "t", transport=transport)
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
    assert on_invoices == ["POST", "GET", "POST"]


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
    rig.worker.settings = dataclasses.replace(rig.settings, sources=sources)
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
        return await real_claim_next(owner, lease, skip)

    rig.worker.poll_interval = 0.01
    rig.store.claim_next = flaky_claim_next  # type: ignore[method-assign]
    event = await rig.deliver(body(shopify_order(8)), "slots")
    created = await wait_for_status(rig, event.id, CREATED)
    assert failures == 10 and created.status == CREATED
