"""Operating the bridge in-process, against the Luminous sandbox: every order is found
whatever became of it, failures are dismissed and replayed, a sender reads its status URL
without any admin token, and /metrics answers even while the store does not."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.config import load_settings
from bridge.errors import StoreError
from bridge.logs import JSONLines
from bridge.metrics import Metrics
from bridge.sandbox import SandboxSettings, create_sandbox_app
from bridge.verify import SCHEMES
from tests.orders import body, seed, shopify_order

pytestmark = pytest.mark.anyio

ADMIN = "operations-admin-token"
SECRET = "operations-webhook-secret"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def make_app(folder: Path, *, admin: bool = True, luminous: Any = None) -> Starlette:
    seed_file = folder / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    config = folder / "bridge.toml"
    config.write_text(
        f"[store]\nurl = 'sqlite:///{folder / 'bridge.db'}'\ndurability = 'normal'\n"
        "[server]\nrespond_within = 1.0\n"
        "[retry]\nbase_delay = 30\n"
        "[sources.shopify]\nstrict_answers = false\n"
        "[sources.shopify.options]\ncompany_id = 1\ncurrency = 'USD'\npo_prefix = 'SH-'\n"
    )
    environ = {"SHOPIFY_WEBHOOK_SECRET": SECRET}
    if admin:
        environ["BRIDGE_ADMIN_TOKEN"] = ADMIN
    sandbox = create_sandbox_app(SandboxSettings(seed=seed_file))
    return create_app(
        load_settings(str(config), environ),
        luminous_url="http://luminous.test/external/api/v1",
        luminous_token="sandbox-token",
        transport=luminous or httpx.ASGITransport(app=sandbox),
    )


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
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


async def post(client: httpx.AsyncClient, order: Any, delivery_id: str | None = None) -> Any:
    payload = body(order)
    headers = SCHEMES["shopify-hmac"].sign(
        payload, SECRET, topic="orders/create", shop="acme.myshopify.com"
    )
    if delivery_id:
        headers["X-Shopify-Webhook-Id"] = delivery_id
    answer = await client.post(
        "/webhooks/shopify",
        content=payload,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code < 300, answer.text
    return answer.json()


async def listed(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    answer = await client.get("/events", params=params, headers=ADMIN_HEADERS)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]  # type: ignore[no-any-return]


def in_euros(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "currency": "EUR"}


async def failures_of_every_kind(client: httpx.AsyncClient) -> dict[str, Any]:
    """Order #3044 created, #3045 dead on its currency, #3046 rejected, #3047 skipped."""
    created = await post(client, shopify_order(3044, number=3044))
    dead = await post(client, in_euros(shopify_order(3045, number=3045)))
    rejected_order = {**shopify_order(3046, number=3046), "line_items": "none"}
    rejected = await post(client, rejected_order)
    skipped = await post(client, shopify_order(3047, number=3047, test=True))
    assert [a["status"] for a in (created, dead, rejected, skipped)] == [
        "created",
        "dead",
        "rejected",
        "skipped",
    ], (created, dead, rejected, skipped)
    return {"created": created, "dead": dead, "rejected": rejected, "skipped": skipped}


async def test_every_order_is_found_whatever_became_of_it(client: httpx.AsyncClient) -> None:
    answers = await failures_of_every_kind(client)
    for number, kind in ((3044, "created"), (3045, "dead"), (3046, "rejected"), (3047, "skipped")):
        for ref in (str(number), f"#{number}"):
            found = await listed(client, order=ref)
            assert [e["event_id"] for e in found] == [answers[kind]["event_id"]], (ref, found)
            assert found[0]["order_name"] == f"#{number}" and found[0]["order_id"] == str(number)
    invoice = str(answers["created"]["invoice_id"])
    by_invoice = await listed(client, order=invoice)
    assert [e["event_id"] for e in by_invoice] == [answers["created"]["event_id"]]
    # The PO number as Luminous shows it, the e-mail and a SKU, also of the dead order.
    dead_id = answers["dead"]["event_id"]
    assert [e["event_id"] for e in await listed(client, order="SH-#3045")] == [dead_id]
    assert len(await listed(client, order="BUYER@example.com")) == 2  # created and dead
    assert len(await listed(client, order="tee-blk-m")) == 2
    # Reason text, and the filters.
    assert [e["event_id"] for e in await listed(client, q="EUR")] == [dead_id]
    assert [e["status"] for e in await listed(client, status="skipped")] == ["skipped"]
    assert len(await listed(client, shop="ACME.myshopify.com.")) == 4
    assert await listed(client, since="2099-01-01") == []
    page = await client.get("/events", params={"limit": "3"}, headers=ADMIN_HEADERS)
    first = page.json()
    assert len(first["data"]) == 3 and first["next_before"] == first["data"][-1]["event_id"]
    rest = await listed(client, before=str(first["next_before"]))
    assert [e["event_id"] for e in rest] == [answers["created"]["event_id"]]


@pytest.mark.parametrize(
    "params,named",
    [
        ({"status": "gone"}, "status"),
        ({"source": "nope"}, "source"),
        ({"since": "yesterday"}, "since"),
        ({"until": "soon"}, "until"),
        ({"before": "-1"}, "before"),
        ({"flagged": "maybe"}, "flagged"),
        ({"q": "a\x00b"}, "text"),
    ],
)
async def test_a_filter_that_names_nothing_known_is_400(
    client: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    answer = await client.get("/events", params=params, headers=ADMIN_HEADERS)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request" and named in answer.json()["message"]


async def test_dismiss_settles_failures_and_replay_revives_them(
    client: httpx.AsyncClient,
) -> None:
    answers = await failures_of_every_kind(client)
    dead_id, created_id = answers["dead"]["event_id"], answers["created"]["event_id"]
    url = f"/events/{dead_id}/dismiss"
    for bad in ({}, {"reason": ""}, {"reason": 7}, [1]):
        refused = await client.post(url, json=bad, headers=ADMIN_HEADERS)
        assert refused.status_code == 400 and "reason" in refused.json()["message"], bad
    not_json = await client.post(url, content=b"{", headers=ADMIN_HEADERS)
    assert not_json.status_code == 400
    reason = {"reason": "EUR orders are invoiced by hand"}
    conflict = await client.post(
        f"/events/{created_id}/dismiss", json=reason, headers=ADMIN_HEADERS
    )
    assert conflict.status_code == 409 and conflict.json()["error"] == "not_dismissable"
    missing = await client.post("/events/999999/dismiss", json=reason, headers=ADMIN_HEADERS)
    assert missing.status_code == 404
    assert (await client.post(url, json=reason)).status_code == 401
    dismissed = await client.post(url, json=reason, headers=ADMIN_HEADERS)
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["reason"] == reason["reason"]
    again = await client.post(url, json=reason, headers=ADMIN_HEADERS)
    assert again.status_code == 409
    assert [e["event_id"] for e in await listed(client, status="dismissed")] == [dead_id]
    assert await listed(client, status="dead") == []
    metrics = await scrape(client)
    assert metrics[("bridge_events", (("status", "dismissed"),))] == 1
    assert metrics[("bridge_events", (("status", "dead"),))] == 0
    replayed = await client.post(f"/events/{dead_id}/replay", headers=ADMIN_HEADERS)
    assert replayed.status_code == 202, replayed.text
    shown = (await client.get(f"/events/{dead_id}", headers=ADMIN_HEADERS)).json()
    outcomes = [step["outcome"] for step in shown["history"]]
    assert outcomes[:3] == ["dead", "dismissed", "replayed"], outcomes


async def test_events_show_every_attempt_and_the_request_sent(
    client: httpx.AsyncClient,
) -> None:
    created = await post(client, shopify_order(4100, number=4100))
    shown = (await client.get(f"/events/{created['event_id']}", headers=ADMIN_HEADERS)).json()
    assert shown["attempts"] == 1 and shown["invoice_id"] == created["invoice_id"]
    sent = shown["request_sent"]
    assert sent["company_id"] == 1 and sent["customer_po_number"] == "SH-#4100"
    # The sandbox seeds TEE-BLK-M as product 100 and MUG-WHT as 101.
    assert [(item["sku"], item["product_id"]) for item in sent["items"]] == [
        ("TEE-BLK-M", 100),
        ("MUG-WHT", 101),
    ]
    [step] = shown["history"]
    assert step["outcome"] == "created" and step["at"] is not None


# -- a sender's status URL ------------------------------------------------------------------


def stalled(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"message": "down for maintenance"})


@pytest.mark.parametrize("admin", [True, False])
async def test_a_202_names_a_status_url_the_sender_reads_without_a_token(
    tmp_path: Path, admin: bool
) -> None:
    app = make_app(tmp_path, admin=admin, luminous=httpx.MockTransport(stalled))
    async with serving(app) as client:
        accepted = await post(client, shopify_order(5200, number=5200))
        assert accepted["status"] == "retrying", accepted
        url = accepted["status_url"]
        event_id = accepted["event_id"]
        assert url.startswith(f"/status/{event_id}/") and len(url.rsplit("/", 1)[1]) == 32
        status = await client.get(url)
        assert status.status_code == 200
        shown = status.json()
        assert shown.keys() == {"event_id", "status", "invoice_id", "reason"}
        assert shown["status"] == "retrying" and "down for maintenance" in shown["reason"]
        unknown = await client.get(f"/status/{event_id + 1}/{url.rsplit('/', 1)[1]}")
        wrong = await client.get(url[:-1] + ("0" if url[-1] != "0" else "1"))
        assert wrong.status_code == unknown.status_code == 404
        assert wrong.json() == unknown.json()
        assert (await client.get(f"/status/{event_id}/short")).status_code == 404
        # The URL is the store's: the same after a restart (and on every replica).
    again = make_app(tmp_path, admin=admin, luminous=httpx.MockTransport(stalled))
    async with serving(again) as client:
        assert (await client.get(url)).status_code == 200


# -- metrics ----------------------------------------------------------------------------


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    client.app.state.runtime.worker.metrics.store_ttl = 0  # type: ignore[attr-defined]
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_count_both_kinds_of_duplicate_and_what_each_answer_said(
    client: httpx.AsyncClient,
) -> None:
    order = shopify_order(6100, number=6100)
    await post(client, order, delivery_id="d-1")
    await post(client, order, delivery_id="d-1")  # the same delivery again
    await post(client, order, delivery_id="d-2")  # the same order, a new delivery
    await post(client, shopify_order(6101, number=6101))  # another order, the same SKUs
    stranger = await client.post("/webhooks/x" + "y" * 30, content=b"{}")
    assert stranger.status_code == 404
    metrics = await scrape(client)
    assert metrics[("bridge_duplicates_total", (("kind", "delivery"), ("source", "shopify")))] == 1
    assert metrics[("bridge_duplicates_total", (("kind", "order"), ("source", "shopify")))] == 1
    assert metrics[("bridge_invoices_created_total", (("source", "shopify"),))] == 2
    answers = {
        dict(labels)["answer"]: value
        for (name, labels), value in metrics.items()
        if name == "bridge_answers_total"
    }
    assert answers == {"created": 2, "duplicate": 2, "unknown_source": 1}
    assert not any("yyyy" in str(labels) for _, labels in metrics)  # one label for strangers
    created = (("endpoint", "POST /invoices"), ("status", "201"))
    assert metrics[("bridge_luminous_request_seconds_count", created)] == 2
    lookups = {
        labels: value
        for (name, labels), value in metrics.items()
        if name == "bridge_resolution_cache_lookups_total"
    }
    assert lookups[(("kind", "product"), ("result", "miss"))] == 2
    assert lookups[(("kind", "product"), ("result", "hit"))] == 2  # the other order's SKUs
    assert metrics[("bridge_queue_depth", ())] == 0
    assert metrics[("bridge_store_up", ())] == 1


async def test_metrics_answer_while_the_store_is_down(client: httpx.AsyncClient) -> None:
    await post(client, shopify_order(6200, number=6200))
    before = await scrape(client)
    store = client.app.state.runtime.store  # type: ignore[attr-defined]

    async def down() -> None:
        raise StoreError("connection refused")

    store.counts = down
    during = await scrape(client)
    assert during[("bridge_store_up", ())] == 0
    # The last reading stays, with its time, rather than vanishing or answering 500.
    created = ("bridge_events", (("status", "created"),))
    assert during[created] == before[created] == 1
    del store.counts
    assert (await scrape(client))[("bridge_store_up", ())] == 1


async def test_the_oldest_unfinished_event_is_measured(tmp_path: Path) -> None:
    app = make_app(tmp_path, luminous=httpx.MockTransport(stalled))
    async with serving(app) as client:
        client.app = app  # type: ignore[attr-defined]
        await post(client, shopify_order(6300, number=6300))
        metrics = await scrape(client)
        assert metrics[("bridge_queue_depth", ())] == 1
        assert 0 < metrics[("bridge_oldest_unfinished_seconds", ())] < 60


# -- logs --------------------------------------------------------------------------------


async def test_each_transition_is_one_json_line_without_payload_or_secret(
    client: httpx.AsyncClient,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONLines())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        order = shopify_order(7100, number=7100)
        created = await post(client, order)
        dead = await post(client, in_euros(shopify_order(7101, number=7101)))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = stream.getvalue()
    assert SECRET not in text and ADMIN not in text and "line_items" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    mine = [line for line in lines if line.get("event_id") == created["event_id"]]
    assert [line["status"] for line in mine] == ["received", "created"]
    done = mine[-1]
    assert done["source"] == "shopify" and done["shop"] == "acme.myshopify.com"
    assert done["order"] == "#7100" and done["invoice_id"] == created["invoice_id"]
    assert done["seconds"] >= 0 and done["level"] == "info"
    [failed] = [
        line
        for line in lines
        if line.get("event_id") == dead["event_id"] and line["status"] == "dead"
    ]
    assert failed["order"] == "#7101" and "EUR" in failed["reason"]


def test_kept_series_count_every_label_set_apart_and_show_in_the_exposition() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.answered("shopify", 201, "created", 0.2)
    metrics.answered("shopify", 400, "malformed_json", 0.01)
    metrics.answered("(unknown)", 404, "unknown_source")
    assert metrics.answers.labels("shopify", "created") is metrics.answers.labels(
        "shopify", "created"
    )
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for sample in family.samples
    }
    assert samples[("bridge_deliveries_total", (("source", "shopify"), ("status", "201")))] == 3
    assert (
        samples[("bridge_answers_total", (("answer", "malformed_json"), ("source", "shopify")))]
        == 1
    )
    assert (
        samples[("bridge_answers_total", (("answer", "unknown_source"), ("source", "(unknown)")))]
        == 1
    )
    assert samples[("bridge_answer_seconds_count", (("source", "shopify"),))] == 4
    assert ("bridge_answer_seconds_count", (("source", "(unknown)"),)) not in samples
