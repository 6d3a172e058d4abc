"""Backfill's own rules, in process: delivery keys, topics, dry runs; and the store's new reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bridge.backfill import Backfill
from bridge.config import load_settings
from bridge.shop_api import Window
from bridge.shop_api.shopify import ShopifyClient
from bridge.shop_sandbox import ShopSandboxSettings, create_shop_sandbox_app
from bridge.store.base import NewDelivery, OrderKey, Store
from tests.test_store import store  # noqa: F401 - the fixture over every backend

pytestmark = pytest.mark.anyio

SHOP = "acme.myshopify.com"
WINDOW = Window(dt.datetime.now(dt.UTC) - dt.timedelta(days=4))


def shopify_source(tmp_path: Path) -> object:
    path = tmp_path / "bridge.toml"
    path.write_text(
        f'[sources.shopify]\nsecret_env = "S"\n[sources.shopify.shops."{SHOP}"]\n'
        'api_url = "http://shop"\napi_token_env = "T"\n'
    )
    return load_settings(str(path), {"S": "s", "T": "shpat_t"}).sources["shopify"]


async def test_backfill_keys_topics_and_a_second_run_that_records_nothing(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = shopify_source(tmp_path)
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=30, bucket_size=999))
    client = ShopifyClient(SHOP, "http://shop", token="t", transport=httpx.ASGITransport(app=app))
    orders = app.state.book.by_id()
    # The webhook of the first order came: backfill must not record it as new.
    await store.record(
        NewDelivery("shopify", "webhook-1", SHOP, "orders/create", {}, b"{}", str(orders[0]["id"]))
    )
    shop = source.shops[SHOP]  # type: ignore[attr-defined]
    dry = await Backfill(store, source, dry_run=True).run(shop, client, WINDOW)  # type: ignore[arg-type]
    assert (dry.orders, dry.new, dry.updated, dry.known) == (30, 29, 1, 0)
    assert not dry.event_ids and len(await store.list_events(limit=100)) == 1

    first = await Backfill(store, source).run(shop, client, WINDOW)  # type: ignore[arg-type]
    assert (first.new, first.updated, first.known, first.skipped) == (
        29,
        1,
        0,
        2,
    )  # 1 test + 1 updated
    events = {
        e.order_id: e for e in await store.list_events(limit=100) if e.delivery_key != "webhook-1"
    }
    one = events[str(orders[0]["id"])]
    assert one.topic == "orders/updated"
    assert one.delivery_key == f"backfill:{SHOP}:{orders[0]['id']}:{orders[0]['updated_at']}"
    assert events[str(orders[1]["id"])].topic == "orders/create"

    again = await Backfill(store, source).run(shop, client, WINDOW)  # type: ignore[arg-type]
    assert (again.new, again.updated, again.known) == (0, 0, 30)
    orders[3]["updated_at"] = "2099-01-01T00:00:00-04:00"  # changed in the shop since
    changed = await Backfill(store, source).run(shop, client, WINDOW)  # type: ignore[arg-type]
    assert (changed.new, changed.updated, changed.known) == (0, 1, 29)
    await client.aclose()


async def test_order_events_records_and_totals(store: Store) -> None:  # noqa: F811
    first, _ = await store.record(
        NewDelivery("woo", "d1", "a.example", "order.created", {}, b"{}", "7")
    )
    await store.record(NewDelivery("woo", "d2", "b.example", "order.created", {}, b"{}", "7"))
    assert [e.id for e in await store.order_events("woo", "a.example", ["7", "8"])] == [first.id]
    assert len(await store.order_events("woo", "", ["7"])) == 2  # "" matches every shop
    assert (await store.order_events("woo", "", ["7"]))[0].body is None  # no payloads read
    claimed = await store.claim(first.id, "w", 30)
    assert claimed is not None
    key = OrderKey("woo", "a.example", "7")
    await store.claim_order(key, first.id, claimed.generation, 30)
    await store.complete(first.id, claimed.generation, key, 2**53 + 1, Decimal("80.94"))
    records = await store.order_records("woo", "a.example", ["7", "8"])
    assert list(records) == ["7"]
    assert records["7"].invoice_id == 2**53 + 1 and records["7"].total == Decimal("80.94")
    many = [str(n) for n in range(1200)]  # past one IN list's chunk
    assert len(await store.order_events("woo", "", many)) == 2


async def test_heartbeat_says_how_long_ago_a_worker_ran(store: Store) -> None:  # noqa: F811
    assert await store.heartbeat_age() is None
    await store.heartbeat()
    age = await store.heartbeat_age()
    assert age is not None and 0 <= age < 5
