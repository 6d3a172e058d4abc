"""The app in-process: what a sender is told when the bridge itself cannot do its part."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bridge.app import create_app
from bridge.config import load_settings
from bridge.errors import StoreError
from bridge.store.base import NewDelivery
from bridge.verify import SCHEMES
from tests.orders import body, shopify_order


@pytest.mark.anyio
async def test_a_delivery_that_cannot_be_recorded_is_not_acknowledged(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"[store]\nurl = 'sqlite:///{tmp_path / 'bridge.db'}'\n"
        "[sources.shopify.options]\ncompany_id = 1\n"
    )
    settings = load_settings(str(config), {"SHOPIFY_WEBHOOK_SECRET": "s"})
    app = create_app(settings, luminous_url="http://127.0.0.1:9/api", luminous_token="t" * 12)

    async def disk_full(delivery: NewDelivery, *claim: object) -> None:
        raise StoreError("disk I/O error")

    payload = body(shopify_order(1))
    headers = SCHEMES["shopify-hmac"].sign(
        payload, "s", topic="orders/create", shop="a.myshopify.com"
    )
    headers["Content-Type"] = "application/json"
    async with app.router.lifespan_context(app):
        app.state.runtime.store.record = disk_full
        app.state.runtime.store.record_claimed = disk_full  # a new delivery claimed at once
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            answer = await client.post("/webhooks/shopify", content=payload, headers=headers)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["error"] == "unavailable"
