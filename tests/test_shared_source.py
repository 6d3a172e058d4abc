"""Two shops on one source, over real processes: alpha's order #1001 is invoiced, then beta's
#1001 (same day, total and lines) meets a 502 before it reaches Luminous. The lookup that
follows finds alpha's invoice by PO number; beta must get its own, not adopt alpha's.

WooCommerce ids are per site, so both sites' orders carry the same id 1001; Shopify's differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TESTS
from tests.harness import (
    Process,
    bridge_config,
    bridge_process,
    free_port,
    sandbox_process,
    sign_and_post,
)
from tests.holding_proxy import HoldingProxy
from tests.orders import body, shopify_order
from tests.test_fencing import ENV, SECRET, invoices_for, settled

WOO_SECRET = "one-secret-for-both-sites"
WOO_727 = TESTS / "golden" / "woocommerce" / "fixture-727-completed-guest-flat-rate" / "body.json"
ALPHA_SITE, BETA_SITE = "https://alpha.example.com", "https://beta.example.com"
ALPHA_SHOP, BETA_SHOP = "alpha.myshopify.com", "beta.myshopify.com"


def woo_order(site: str) -> bytes:
    """WooCommerce's documented order 727 as site `site` sends it, renumbered #1001."""
    order: dict[str, Any] = json.loads(WOO_727.read_bytes())
    order["id"] = order["number"] = 1001
    order["_links"] = {
        "self": [{"href": f"{site}/wp-json/wc/v3/orders/1001"}],
        "collection": [{"href": f"{site}/wp-json/wc/v3/orders"}],
    }
    return json.dumps(order).encode()


def post_woo(bridge: Process, site: str) -> int:
    answer = sign_and_post(
        bridge.url,
        "woocommerce",
        woo_order(site),
        WOO_SECRET,
        scheme="woocommerce-hmac",
        topic="order.created",
        shop=site,
        delivery_id=f"woo-{site}",
    )
    assert answer.status_code == 202, answer.text
    return int(answer.json()["event_id"])


def post_shopify(bridge: Process, shop: str) -> int:
    # Same name, day, total and lines; Shopify's ids differ across shops.
    order_id = 7_500_000_000_001 if shop == ALPHA_SHOP else 7_500_000_000_002
    answer = sign_and_post(
        bridge.url,
        "shopify",
        body(shopify_order(order_id, number=1001)),
        SECRET,
        shop=shop,
        delivery_id=f"shopify-{shop}",
    )
    assert answer.status_code == 202, answer.text
    return int(answer.json()["event_id"])


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Process, HoldingProxy, Process]]:
    sandbox = sandbox_process(tmp_path, free_port(), "--auto-products").start()
    try:
        with HoldingProxy(sandbox.url, hold_count=0) as proxy:
            config = bridge_config(
                tmp_path,
                sandbox.port,
                {
                    "server": {"respond_within": 0},
                    "luminous": {"base_url": proxy.url + "/external/api/v1"},
                    "sources.shopify": {"allowed_shops": [ALPHA_SHOP, BETA_SHOP]},
                    "sources.woocommerce": {
                        "secret_env": "WOO_SECRET",
                        "allowed_shops": [ALPHA_SITE, BETA_SITE],
                    },
                    "sources.woocommerce.options": {
                        "company_id": 1,
                        "fallback_sku": "MISC",
                        "unknown_sku": "create",
                    },
                },
            )
            bridge = bridge_process(config, free_port(), {**ENV, "WOO_SECRET": WOO_SECRET})
            bridge.start()
            try:
                yield sandbox, proxy, bridge
            finally:
                bridge.stop()
    finally:
        sandbox.stop(timeout=5)


@pytest.mark.parametrize(
    ("post", "alpha", "beta", "po_number"),
    [
        pytest.param(post_woo, ALPHA_SITE, BETA_SITE, "#1001", id="woocommerce-sites"),
        pytest.param(post_shopify, ALPHA_SHOP, BETA_SHOP, "#1001", id="shopify-shops"),
    ],
)
def test_a_lookup_after_a_502_does_not_adopt_the_other_shops_invoice(
    rig: tuple[Process, HoldingProxy, Process],
    post: Callable[[Process, str], int],
    alpha: str,
    beta: str,
    po_number: str,
) -> None:
    sandbox, proxy, bridge = rig
    first = settled(bridge, post(bridge, alpha), 30)
    assert first["status"] == "created", json.dumps(first)
    proxy.refuse_next = 1  # beta's first POST /invoices never reaches Luminous
    second = settled(bridge, post(bridge, beta), 30)
    refused = [exchange for exchange in proxy.exchanges if exchange.refused]
    assert len(refused) == 1, proxy.exchanges
    assert second["status"] == "created", json.dumps(second)
    assert second["invoice_id"] != first["invoice_id"]
    landed = invoices_for(sandbox, po_number)
    assert sorted(invoice["id"] for invoice in landed) == sorted(
        [first["invoice_id"], second["invoice_id"]]
    )
