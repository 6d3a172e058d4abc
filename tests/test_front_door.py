"""What the front door records: the shop in one spelling, the order the body names (also when
the mapping will refuse it), and a delivery key that carries the unsigned topic and shop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.app import create_app
from bridge.config import load_settings
from bridge.mapping import Delivery, InvoiceOptions, OrderRef, Skip
from bridge.store.base import Event, NewDelivery
from bridge.verify import SCHEMES
from tests.conftest import TESTS

GOLDEN = TESTS / "golden"
BROKEN = (GOLDEN / "shopify" / "rejected-broken-fields" / "body.json").read_bytes()
WOO_205 = (GOLDEN / "woocommerce" / "fixture-205-inr-on-hold-line-tax" / "body.json").read_bytes()


class Exploding:
    """A third-party mapping whose `identify` has a bug."""

    name = "exploding"
    options_model = InvoiceOptions
    unique_order_ids = False

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Skip:
        return Skip("not invoiced")

    def identify(self, payload: Any) -> OrderRef | None:
        raise KeyError("order")


exploding = Exploding()

Post = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
async def front_door(tmp_path: Path) -> AsyncIterator[tuple[Post, list[NewDelivery]]]:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"[server]\nrespond_within = 0.5\n[store]\nurl = 'sqlite:///{tmp_path / 'bridge.db'}'\n"
        "[sources.shopify.options]\ncompany_id = 1\n"
        "[sources.woocommerce.options]\ncompany_id = 1\n"
        "[sources.plugin]\nmapping = 'tests.test_front_door:exploding'\nverify = 'bearer'\n"
    )
    env = {
        "SHOPIFY_WEBHOOK_SECRET": "s",
        "WOOCOMMERCE_WEBHOOK_SECRET": "w",
        "PLUGIN_WEBHOOK_SECRET": "p",
    }
    app = create_app(
        load_settings(str(config), env), luminous_url="http://127.0.0.1:9/x", luminous_token="t"
    )
    recorded: list[NewDelivery] = []

    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        record = store.record

        async def keep(delivery: NewDelivery) -> tuple[Event, bool]:
            recorded.append(delivery)
            return await record(delivery)

        async def keep_claimed(
            delivery: NewDelivery, owner: str, lease: float
        ) -> tuple[Event, bool]:
            recorded.append(delivery)
            return await record_claimed(delivery, owner, lease)

        # The front door records through either: claimed at once when a slot is free.
        record_claimed = store.record_claimed
        store.record = keep
        store.record_claimed = keep_claimed
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:

            async def post(source: str, body: bytes, secret: str, **sign: Any) -> httpx.Response:
                scheme = {"shopify": "shopify-hmac", "woocommerce": "woocommerce-hmac"}
                headers = SCHEMES[scheme.get(source, "bearer")].sign(body, secret, **sign)
                headers["Content-Type"] = "application/json"
                return await client.post(f"/webhooks/{source}", content=body, headers=headers)

            yield post, recorded


@pytest.mark.anyio
async def test_a_refused_payload_is_recorded_with_its_order(
    front_door: tuple[Post, list[NewDelivery]],
) -> None:
    post, recorded = front_door
    answer = await post("shopify", BROKEN, "s", topic="orders/create", shop="ACME.myshopify.com.")
    assert answer.status_code == 200 and answer.json()["status"] == "rejected"
    [delivery] = recorded
    assert (delivery.order_id, delivery.order_name) == ("6187244380394851321", "#2187")
    assert delivery.shop == "acme.myshopify.com"


@pytest.mark.anyio
async def test_a_woocommerce_delivery_is_recorded_under_its_sites_one_spelling(
    front_door: tuple[Post, list[NewDelivery]],
) -> None:
    post, recorded = front_door
    answer = await post(
        "woocommerce", WOO_205, "w", topic="order.created", shop="HTTP://localhost:8080/wordpress"
    )
    assert answer.status_code == 200 and answer.json()["status"] == "skipped"  # on-hold
    [delivery] = recorded
    assert (delivery.shop, delivery.order_id, delivery.order_name) == (
        "localhost:8080/wordpress",
        "205",
        "#205",
    )
    forged = await post(
        "woocommerce", WOO_205, "w", topic="order.created", shop="https://evil.example/"
    )
    assert forged.status_code == 403 and forged.json()["error"] == "shop_mismatch"
    assert len(recorded) == 1  # refused before anything is recorded


@pytest.mark.anyio
async def test_the_same_delivery_under_another_topic_is_another_delivery(
    front_door: tuple[Post, list[NewDelivery]],
) -> None:
    post, recorded = front_door
    sign = {"shop": "acme.myshopify.com", "delivery_id": "webhook-1"}
    first = await post("shopify", BROKEN, "s", topic="orders/updated", **sign)
    second = await post("shopify", BROKEN, "s", topic="orders/cancelled", **sign)
    repeat = await post("shopify", BROKEN, "s", topic="orders/cancelled", **sign)
    assert first.json()["event_id"] != second.json()["event_id"]
    assert repeat.json()["event_id"] == second.json()["event_id"] and repeat.json()["duplicate"]
    keys = [delivery.delivery_key for delivery in recorded]
    assert keys[1] == keys[2] != keys[0]
    assert all("webhook-1" in key for key in keys)


@pytest.mark.anyio
async def test_a_plugin_whose_identify_fails_still_gets_its_delivery_recorded(
    front_door: tuple[Post, list[NewDelivery]],
) -> None:
    post, recorded = front_door
    answer = await post("plugin", b'{"id": 1}', "p")
    assert answer.status_code == 200 and answer.json()["status"] == "skipped"
    assert recorded[0].order_id is None
