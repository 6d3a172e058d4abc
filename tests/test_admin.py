"""Admin and health routes in-process: any input gets a 4xx, never a 500; strangers learn
what is wrong with the bridge, never where its store lives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.config import load_settings
from bridge.errors import StoreError
from bridge.store.base import SCHEMA_VERSION
from bridge.verify import SCHEMES
from bridge.wire import loads
from tests.orders import body

ADMIN = "admin-routes-token"
SECRET = "admin-routes-secret"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
# What a PostgreSQL store's connection failure says: host, address, user and database.
STORE_DOWN = (
    'connection to server at "db.internal" (10.1.2.3), port 5432 failed: '
    'FATAL: password authentication failed for user "bridge_owner" (database "invoices_prod")'
)
STORE_SECRETS = ("db.internal", "10.1.2.3", "bridge_owner", "invoices_prod", "5432")


def luminous_down(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"message": "down for maintenance"})


def make_app(folder: Path) -> Starlette:
    config = folder / "bridge.toml"
    config.write_text(
        f"[store]\nurl = 'sqlite:///{folder / 'bridge.db'}'\ndurability = 'normal'\n"
        "[retry]\nbase_delay = 30\n"
        "[sources.shopify.options]\ncompany_id = 1\n"
    )
    environ = {"SHOPIFY_WEBHOOK_SECRET": SECRET, "BRIDGE_ADMIN_TOKEN": ADMIN}
    return create_app(
        load_settings(str(config), environ),
        luminous_url="http://luminous.invalid/external/api/v1",
        luminous_token="t" * 12,
        transport=httpx.MockTransport(luminous_down),
    )


def signed(order: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    payload = body(order)
    headers = SCHEMES["shopify-hmac"].sign(
        payload, SECRET, topic="orders/create", shop="acme.myshopify.com"
    )
    return payload, {**headers, "Content-Type": "application/json"}


def not_an_order(order_id: int) -> dict[str, Any]:
    """A payload the Shopify mapping refuses: its event ends rejected (replayable), unsent."""
    return {"id": order_id, "line_items": "none"}


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan entered), and a client that calls it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            yield client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(tmp_path)
    async with serving(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def rejected_event(client: httpx.AsyncClient, order_id: int) -> int:
    payload, headers = signed(not_an_order(order_id))
    answer = await client.post("/webhooks/shopify", content=payload, headers=headers)
    assert answer.status_code == 200 and answer.json()["status"] == "rejected", answer.text
    event_id: int = answer.json()["event_id"]
    return event_id


@pytest.mark.anyio
async def test_concurrent_replays_of_one_event_replay_it_once(
    client: httpx.AsyncClient,
) -> None:
    event_id = await rejected_event(client, 501)
    store = client.app.state.runtime.store  # type: ignore[attr-defined]
    replay, everyone_read = store.replay, asyncio.Barrier(40)

    async def replay_after_all_read(event_id: int) -> Any:
        await (
            everyone_read.wait()
        )  # each request has read the event, replayable, before any replays
        return await replay(event_id)

    store.replay = replay_after_all_read
    answers = await asyncio.gather(
        *(client.post(f"/events/{event_id}/replay", headers=ADMIN_HEADERS) for _ in range(40))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [409] * 39, [answer.text for answer in answers]
    assert {answer.json()["error"] for answer in answers if answer.status_code == 409} == {
        "not_replayable"
    }
    history = (await client.get(f"/events/{event_id}", headers=ADMIN_HEADERS)).json()["history"]
    assert [step["outcome"] for step in history].count("replayed") == 1


@pytest.mark.anyio
async def test_a_store_that_fails_a_replay_for_itself_is_503_not_409(
    client: httpx.AsyncClient,
) -> None:
    event_id = await rejected_event(client, 502)
    store = client.app.state.runtime.store  # type: ignore[attr-defined]

    async def disk_full(event_id: int) -> None:
        raise StoreError("disk I/O error")

    store.replay = disk_full
    answer = await client.post(f"/events/{event_id}/replay", headers=ADMIN_HEADERS)
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"
    assert answer.headers["retry-after"] == "30"


@pytest.mark.anyio
@pytest.mark.parametrize("limit", ["²", "١٠", "1_0", " 10", "+10", "0", "1001", "9" * 400])
async def test_a_limit_that_is_not_plain_digits_in_range_is_400(
    client: httpx.AsyncClient, limit: str
) -> None:
    answer = await client.get("/events", params={"limit": limit}, headers=ADMIN_HEADERS)
    assert answer.status_code == 400 and "limit" in answer.json()["message"], answer.text


@pytest.mark.anyio
async def test_text_a_store_cannot_hold_is_400(client: httpx.AsyncClient) -> None:
    answer = await client.get("/events?order=%231001%00", headers=ADMIN_HEADERS)
    assert answer.status_code == 400 and "order" in answer.json()["message"]


# -- health -------------------------------------------------------------------------------


async def readiness(client: httpx.AsyncClient, **headers: str) -> tuple[int, list[str]]:
    answer = await client.get("/readyz", headers=headers)
    return answer.status_code, loads(answer.content).get("problems", [])


@pytest.mark.anyio
async def test_readyz_tells_a_stranger_what_is_wrong_but_not_where(
    client: httpx.AsyncClient,
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert await readiness(client) == (200, [])

    async def unreachable() -> None:
        raise StoreError(STORE_DOWN)

    runtime.store.ping = unreachable
    status, problems = await readiness(client)
    assert (status, problems) == (503, ["store unreachable"])
    status, problems = await readiness(client, **ADMIN_HEADERS)
    assert status == 503 and problems[0].startswith("store unreachable: ")
    assert all(word in problems[0] for word in STORE_SECRETS)
    _, wrong_token = await readiness(client, Authorization="Bearer not-the-token")
    assert wrong_token == ["store unreachable"]
    del runtime.store.ping


@pytest.mark.anyio
@pytest.mark.parametrize(
    "version,problem",
    [(None, "store schema behind"), (0, "store schema behind"), (99, "store schema ahead")],
)
async def test_readyz_names_a_schema_that_is_not_this_releases(
    client: httpx.AsyncClient, version: int | None, problem: str
) -> None:
    store = client.app.state.runtime.store  # type: ignore[attr-defined]

    async def schema_version() -> int | None:
        return version

    store.schema_version = schema_version
    assert await readiness(client) == (503, [problem])
    _, detailed = await readiness(client, **ADMIN_HEADERS)
    needs = f"this release needs {SCHEMA_VERSION}"
    assert detailed == [f"{problem}: the store's schema is {version}, {needs}"]


@pytest.mark.anyio
async def test_readyz_names_draining_and_a_refused_token(client: httpx.AsyncClient) -> None:
    worker = client.app.state.runtime.worker  # type: ignore[attr-defined]
    worker.paused = "Luminous refuses the API token (401): Unauthenticated."
    assert await readiness(client) == (503, ["Luminous refuses the API token"])
    _, detailed = await readiness(client, **ADMIN_HEADERS)
    assert detailed == [f"Luminous refuses the API token: {worker.paused}"]
    worker.paused = None
    worker.draining = True
    assert await readiness(client) == (503, ["draining"])
    worker.draining = False


@pytest.mark.anyio
async def test_a_failing_worker_loop_is_shown_and_a_dead_one_fails_healthz(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    runtime = app.state.runtime

    async def broken_claim(owner: str, lease: float, skip: object = ()) -> None:
        raise RuntimeError("a bug in the worker loop")

    runtime.store.claim_next = broken_claim
    async with serving(app) as client:
        await asyncio.sleep(0.05)
        # The loop survives the bug, backing off: alive, but not ready while it fails.
        assert (await client.get("/healthz")).status_code == 200
        assert await readiness(client) == (503, ["worker loop failing and retrying"])
        loop = runtime.worker._loop_task
        loop.cancel()  # however the loop itself might end
        await asyncio.gather(loop, return_exceptions=True)
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (503, {"status": "worker loop stopped"})
        assert await readiness(client) == (503, ["worker loop stopped"])


# -- any input ----------------------------------------------------------------------------

# Integers of every size, digits of every script (`²`, `١٠`), and text of every kind.
NUMBERS = st.integers(min_value=-(2**70), max_value=2**70).map(str)
DIGITS = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
TEXT = st.text(max_size=40)
ANY_VALUE = st.one_of(NUMBERS, DIGITS, TEXT, st.sampled_from(["dead", "rejected", "shopify"]))
EVENT_IDS = st.one_of(NUMBERS, DIGITS, TEXT, st.sampled_from(["1", "2", "3"]))
QUERY = st.dictionaries(st.sampled_from(["status", "source", "order", "limit", "since"]), ANY_VALUE)
AUTHORIZATION = st.one_of(
    st.none(),
    st.just(f"bearer  {ADMIN} "),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
    st.builds(
        lambda scheme, token: f"{scheme} {token}", st.sampled_from(["Bearer", "Basic"]), TEXT
    ),
)
ACTIONS = ("/replay", "/dismiss")
ROUTES = (
    "/events",
    "/events/{}",
    "/events/{}/replay",
    "/events/{}/dismiss",
    "/readyz",
    "/healthz",
    "/metrics",
)


@pytest.fixture
def call(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """`call(method, url, headers)`: the app, on an event loop of its own, answers `url`,
    never with a 500, and logs no traceback. It holds two rejected (replayable) events."""
    app = make_app(tmp_path)
    with (
        caplog.at_level(logging.ERROR),
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serving(app)) as client,
    ):
        for order_id in (601, 602):
            portal.call(rejected_event, client, order_id)

        def call(
            method: str, url: str, headers: dict[str, bytes], content: bytes = b""
        ) -> httpx.Response:
            answer = portal.call(
                lambda: client.request(method, url, headers=headers, content=content)
            )
            is_health = url.startswith(("/readyz", "/healthz"))
            assert answer.status_code < 500 or (is_health and answer.status_code == 503), (
                method,
                url,
                answer.status_code,
                answer.text,
            )
            if 400 <= answer.status_code < 500 and method != "HEAD":
                assert {"error", "message"} <= loads(answer.content).keys(), answer.text
            return answer

        yield call
    assert not [record for record in caplog.records if record.exc_info]


FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOKEN = {"Authorization": f"Bearer {ADMIN}".encode()}


def test_any_query_to_the_event_list_is_answered_without_a_500(
    call: Any,
) -> None:
    @FUZZ
    @given(query=QUERY)
    def check(query: dict[str, str]) -> None:
        call("GET", "/events?" + urllib.parse.urlencode(query), TOKEN)

    check()


def test_any_event_id_is_answered_without_a_500(
    call: Any,
) -> None:
    @FUZZ
    @given(
        method=st.sampled_from(["GET", "POST"]),
        event_id=EVENT_IDS,
        action=st.sampled_from(("", *ACTIONS)),
    )
    def check(method: str, event_id: str, action: str) -> None:
        call(method, "/events/" + urllib.parse.quote(event_id, safe="") + action, TOKEN)

    check()


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


BODIES = st.one_of(
    st.binary(max_size=60),
    st.one_of(ANY_VALUE, st.integers()).map(lambda reason: json_bytes({"reason": reason})),
    st.one_of(st.none(), st.lists(TEXT, max_size=3), st.integers()).map(json_bytes),
)


def test_any_dismissal_body_is_answered_without_a_500(call: Any) -> None:
    @FUZZ
    @given(event_id=st.sampled_from(["1", "2", "3", str(2**63)]), body=BODIES)
    def check(event_id: str, body: bytes) -> None:
        call("POST", f"/events/{event_id}/dismiss", TOKEN, body)

    check()


def test_any_request_without_the_token_is_refused_without_a_500(
    call: Any,
) -> None:
    @FUZZ
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
        route=st.sampled_from(ROUTES),
        event_id=EVENT_IDS,
        query=QUERY,
        authorization=AUTHORIZATION,
    )
    def check(
        method: str, route: str, event_id: str, query: dict[str, str], authorization: str | None
    ) -> None:
        path = route.format(urllib.parse.quote(event_id, safe=""))
        headers = {} if authorization is None else {"Authorization": authorization.encode()}
        answer = call(method, f"{path}?{urllib.parse.urlencode(query)}", headers)
        if route.startswith("/events") and answer.status_code < 300:  # a redirect shows nothing
            assert authorization is not None and authorization.split()[-1] == ADMIN

    check()
