"""The sandbox's injected faults: errors, throttling, latency and answers lost after a commit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from bridge import wire
from bridge.sandbox import API_PREFIX, ConnectionDropped, Sandbox, SandboxSettings
from bridge.sandbox import create_sandbox_app as make_app

AUTH = {"Authorization": "Bearer test-token"}
INVOICE = {
    "company_id": 1,
    "order_date": "2024-05-01",
    "payment_terms": "Net 30",
    "customer_po_number": "#1001",
    "items": [{"quantity": 1, "unit_price": 9.99, "sku": "MUG"}],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(**faults: Any) -> SandboxSettings:
    return SandboxSettings(auto_products=True, fault_seed=7, **faults)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    base_url = f"http://sandbox.test{API_PREFIX}"
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=AUTH) as client:
        yield client


def sandbox_of(app: Starlette) -> Sandbox:
    sandbox = app.state.sandbox
    assert isinstance(sandbox, Sandbox)
    return sandbox


async def statuses(app: Starlette, count: int) -> list[int]:
    async with serving(app) as client:
        return [(await client.get("/invoices")).status_code for _ in range(count)]


@pytest.mark.anyio
async def test_server_errors_do_no_work_and_are_counted() -> None:
    app = make_app(settings(fail_rate=1.0))
    async with serving(app) as client:
        created = await client.post("/invoices", json=INVOICE)
        listed = [await client.get("/invoices") for _ in range(30)]
    codes = {created.status_code, *(response.status_code for response in listed)}
    assert codes == {500, 502, 503}
    assert listed[0].json()["message"] in {"Server Error.", "Bad Gateway.", "Service Unavailable."}
    assert not sandbox_of(app).invoices
    counts = sandbox_of(app).fault_counts
    assert counts["http_500"] + counts["http_502"] + counts["http_503"] == 31


@pytest.mark.anyio
async def test_a_fault_seed_repeats_the_sequence() -> None:
    first = await statuses(make_app(settings(fail_rate=0.3, throttle_rate=0.2)), 200)
    again = await statuses(make_app(settings(fail_rate=0.3, throttle_rate=0.2)), 200)
    other = await statuses(
        make_app(SandboxSettings(fail_rate=0.3, throttle_rate=0.2, fault_seed=8)), 200
    )
    assert first == again
    assert first != other
    failed = sum(status >= 500 for status in first)
    throttled = first.count(429)
    # 30 % fail; 20 % of the rest are throttled.
    assert 35 <= failed <= 85
    assert 15 <= throttled <= 50
    assert first.count(200) == 200 - failed - throttled


@pytest.mark.anyio
async def test_throttling_answers_429_with_retry_after() -> None:
    app = make_app(settings(throttle_rate=1.0))
    async with serving(app) as client:
        responses = [await client.get("/products") for _ in range(20)]
        created = await client.post("/invoices", json=INVOICE)
    assert {response.status_code for response in responses} == {429}
    waits = {response.headers["retry-after"] for response in responses}
    assert waits <= {"1", "2", "3"} and len(waits) > 1
    assert responses[0].json() == {"message": "Too Many Attempts."}
    assert created.status_code == 429
    assert not sandbox_of(app).invoices
    assert sandbox_of(app).fault_counts["throttled"] == 21


@pytest.mark.anyio
async def test_faults_spare_auth_health_and_changes_made_by_hand() -> None:
    app = make_app(settings(fail_rate=1.0))
    sandbox_of(app).create_invoice(wire.loads(wire.dumps(INVOICE)))
    async with serving(app) as client:
        unauthenticated = await client.get("/invoices", headers={"Authorization": ""})
        health = await client.get("http://sandbox.test/healthz")
        product = await client.post("/products", json={"name": "Cap", "sku": "CAP"})
        retagged = await client.put("/invoices/1/tags", json={"tags": ["by hand"]})
    assert unauthenticated.status_code == 401
    assert health.status_code == 200
    assert product.status_code == 201
    assert retagged.status_code == 200
    assert sum(sandbox_of(app).fault_counts.values()) == 0


@pytest.mark.anyio
async def test_faults_hit_every_request_the_bridge_sends_and_do_no_work() -> None:
    app = make_app(settings(fail_rate=0.5, throttle_rate=1.0))
    sandbox = sandbox_of(app)
    sandbox.create_invoice(wire.loads(wire.dumps(INVOICE)))
    company = {"name": "Acme"}
    contact = {"first_name": "Ada", "email": "ada@acme.test", "company_id": 1}
    async with serving(app) as client:
        answers = [
            await client.get("/companies", params={"name[eq]": "Acme"}),
            await client.get("/companies/1"),
            await client.get("/companies/1/contacts"),
            await client.get("/contacts", params={"email[eq]": "ada@acme.test"}),
            await client.get("/products", params={"sku[eq]": "MUG"}),
            await client.post("/companies", json=company),
            await client.post("/contacts", json=contact),
            await client.patch("/products", json={"sku": "CAP", "name": "Cap"}),
            await client.post("/invoices/1/tags", json={"tags": ["paid"]}),
        ]
    assert {answer.status_code for answer in answers} <= {429, 500, 502, 503}
    assert list(sandbox.companies) == [1]
    assert not sandbox.contacts
    assert [product["sku"] for product in sandbox.products.values()] == ["MUG"]
    assert [tag["name"] for tag in sandbox.invoices[1]["tags"]] == []


@pytest.mark.anyio
async def test_latency_is_added_to_every_request() -> None:
    app = make_app(settings(latency_ms=30))
    sandbox_of(app).create_invoice(wire.loads(wire.dumps(INVOICE)))
    contact = {"first_name": "Ada", "email": "ada@acme.test", "company_id": 1}
    requests = [
        ("GET", "/invoices", None),
        ("POST", "/invoices", INVOICE),
        ("GET", "/companies?name%5Beq%5D=Acme", None),
        ("GET", "/companies/1", None),
        ("POST", "/companies", {"name": "Acme"}),
        ("GET", "/companies/1/contacts", None),
        ("GET", "/contacts?email%5Beq%5D=ada%40acme.test", None),
        ("POST", "/contacts", contact),
        ("GET", "/contacts/1", None),
        ("GET", "/products?sku%5Beq%5D=MUG", None),
        ("PATCH", "/products", {"sku": "CAP", "name": "Cap"}),
        ("POST", "/invoices/1/tags", {"tags": ["paid"]}),
    ]
    async with serving(app) as client:
        for method, path, body in requests:
            started = time.perf_counter()
            answer = await client.request(method, path, json=body)
            elapsed = time.perf_counter() - started
            assert answer.is_success, (method, path, answer.text)
            assert elapsed >= 0.03, (method, path, elapsed)
    assert sandbox_of(app).fault_counts["delayed"] == len(requests)


@pytest.mark.anyio
async def test_a_stalled_answer_still_created_the_invoice() -> None:
    app = make_app(settings(timeout_after_commit_rate=1.0))
    sandbox = sandbox_of(app)
    sandbox.drop_share = 0
    sandbox.stall_seconds = 30
    async with serving(app) as client:
        with anyio.move_on_after(0.2) as waited:
            await client.post("/invoices", json=INVOICE)
        assert waited.cancelled_caught
        assert [invoice["customer_po_number"] for invoice in sandbox.invoices.values()] == ["#1001"]

        sandbox.stall_seconds = 0.05
        started = time.perf_counter()
        late = await client.post("/invoices", json=INVOICE)
    assert time.perf_counter() - started >= 0.05
    assert late.status_code == 201
    assert late.json()["data"]["id"] == 2
    assert sandbox.fault_counts["stalled"] == 2


@pytest.mark.anyio
async def test_a_dropped_answer_still_created_the_invoice() -> None:
    app = make_app(settings(timeout_after_commit_rate=1.0))
    sandbox = sandbox_of(app)
    sandbox.drop_share = 1
    async with serving(app) as client:
        with pytest.raises(ConnectionDropped):
            await client.post("/invoices", json=INVOICE)
        refused = await client.post("/invoices", json={**INVOICE, "company_id": 9})
    assert list(sandbox.invoices) == [1]
    assert refused.status_code == 422  # only a stored invoice loses its answer
    assert sandbox.fault_counts["dropped"] == 1


@pytest.mark.anyio
async def test_a_dropped_company_or_contact_answer_still_stored_it() -> None:
    app = make_app(settings(timeout_after_commit_rate=1.0))
    sandbox = sandbox_of(app)
    sandbox.drop_share = 1
    contact = {"first_name": "Ada", "email": "ada@acme.test", "company_id": 2}
    async with serving(app) as client:
        with pytest.raises(ConnectionDropped):
            await client.post("/companies", json={"name": "Acme"})
        with pytest.raises(ConnectionDropped):
            await client.post("/contacts", json=contact)
    assert sandbox.companies[2]["name"] == "Acme"
    assert sandbox.contacts[1]["email"] == "ada@acme.test"
    assert sandbox.fault_counts["dropped"] == 2


@pytest.mark.anyio
async def test_lost_answers_can_be_narrowed_to_some_creations() -> None:
    app = make_app(
        settings(
            timeout_after_commit_rate=1.0, timeout_after_commit_paths=frozenset({"/companies"})
        )
    )
    sandbox_of(app).drop_share = 1
    async with serving(app) as client:
        invoice = await client.post("/invoices", json=INVOICE)
        contact = await client.post("/contacts", json={"first_name": "Ada", "company_id": 1})
        with pytest.raises(ConnectionDropped):
            await client.post("/companies", json={"name": "Acme"})
    assert (invoice.status_code, contact.status_code) == (201, 201)
    assert sandbox_of(app).fault_counts["dropped"] == 1


def test_only_creations_can_lose_their_answer() -> None:
    with pytest.raises(ValueError, match="/products cannot lose answers"):
        SandboxSettings(timeout_after_commit_paths=frozenset({"/products", "/invoices"}))


@contextmanager
def served_over_a_socket(app: Starlette) -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:  # uvicorn offers no event to wait on
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}{API_PREFIX}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        listener.close()


def test_a_dropped_answer_breaks_a_real_connection() -> None:
    app = make_app(settings(timeout_after_commit_rate=1.0))
    sandbox = sandbox_of(app)
    sandbox.drop_share = 1
    with served_over_a_socket(app) as base_url, httpx.Client(headers=AUTH) as client:
        with pytest.raises(httpx.TransportError):
            client.post(
                f"{base_url}/invoices",
                content=wire.dumps(INVOICE),
                headers={"Content-Type": "application/json"},
            )
        found = client.get(f"{base_url}/invoices", params={"customer_po_number[eq]": "#1001"})
    assert [invoice["id"] for invoice in found.json()["data"]] == [1]
    assert sandbox.fault_counts["dropped"] == 1
