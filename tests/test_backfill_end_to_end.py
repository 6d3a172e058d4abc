"""None lost: real `bridge serve --sandbox`, `bridge shop-sandbox`, and the commands a user types.

Webhooks of some orders are never sent, the rest are sent with repeats; `reconcile` finds
the gap, `--fix` closes it, every order ends with exactly one invoice, and a second run
changes nothing. The sandbox counts invoices by its own code, not the bridge's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import wire
from tests.harness import (
    Process,
    free_port,
    run_cli,
    sandbox_invoices,
    sign_and_post,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.slow  # real processes, about 10 s each

SECRET = "e2e-webhook-secret"
SHOP_TOKEN = "shpat_e2e_0123456789abcdef"
WOO_KEY, WOO_SECRET = "ck_e2e_key_123456", "cs_e2e_secret_654321"


@dataclass
class World:
    bridge: Process
    shop: Process
    config: Path
    env: dict[str, str]
    orders: list[dict[str, Any]]

    def cli(self, *args: str) -> Any:
        return run_cli(*args, "--config", str(self.config), env=self.env, cwd=self.config.parent)

    def invoices(self) -> list[dict[str, Any]]:
        return sandbox_invoices(self.bridge.url, token="any")


def shopify_orders(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    next_url: str | None = f"{url}/admin/api/2025-10/orders.json?status=any&limit=250"
    while next_url:
        answer = httpx.get(next_url, headers={"X-Shopify-Access-Token": SHOP_TOKEN}, timeout=30)
        found += wire.loads(answer.content)["orders"]
        link = answer.headers.get("link", "")
        next_url = link.split(">")[0][1:] if 'rel="next"' in link else None
    return found


def start_world(
    tmp_path: Path,
    platform: str,
    count: int,
    *,
    shop_flags: tuple[str, ...] = (),
    sweep: dict[str, str] | None = None,
) -> World:
    """The shop's stand-in holding `count` orders and a `bridge serve --sandbox` that knows
    its API (and sweeps it, given `sweep`); no webhook sent yet."""
    shop_port, bridge_port = free_port(), free_port()
    shop_args = ["shop-sandbox", platform, "--port", str(shop_port), "--generate", str(count)]
    shop_args += list(shop_flags)
    if platform == "shopify" and "--bucket-size" not in shop_flags:
        shop_args += ["--bucket-size", "400", "--leak-rate", "20"]
    shop_args += ["--key", WOO_KEY, "--secret", WOO_SECRET] if platform == "woocommerce" else []
    shop = Process(shop_args, shop_port, tmp_path / "shop.log").start()
    shop_name = "acme.myshopify.com" if platform == "shopify" else f"http://127.0.0.1:{shop_port}"
    table: dict[str, Any] = {"api_url": shop.url}
    if platform == "shopify":
        table["api_token_env"] = "ACME_SHOP_TOKEN"
    else:
        table |= {"api_key_env": "ACME_WOO_KEY", "api_secret_env": "ACME_WOO_SECRET"}
    config = write_config(
        tmp_path / "bridge.toml",
        {
            "server": {"respond_within": 0.2},
            "store": {"url": f"sqlite:///{tmp_path / 'bridge.db'}"},
            "luminous": {
                "base_url": f"http://127.0.0.1:{bridge_port}/external/api/v1",
                "max_requests_per_second": 0,
            },
            f"sources.{platform}": {"secret_env": "E2E_SECRET"},
            f'sources.{platform}.shops."{shop_name}"': table,
            **({f"sources.{platform}.sweep": sweep} if sweep else {}),
        },
    )
    env = {
        "E2E_SECRET": SECRET,
        "ACME_SHOP_TOKEN": SHOP_TOKEN,
        "ACME_WOO_KEY": WOO_KEY,
        "ACME_WOO_SECRET": WOO_SECRET,
        "LUMINOUS_API_TOKEN": "any",
    }
    args = ["serve", "--sandbox", "--config", str(config), "--port", str(bridge_port)]
    bridge = Process(args, bridge_port, tmp_path / "serve.log", env=env, cwd=tmp_path).start()
    if platform == "shopify":
        orders = shopify_orders(shop.url)
    else:
        auth = (WOO_KEY, WOO_SECRET)
        orders = []
        for page in range(1, 100):
            answer = httpx.get(
                f"{shop.url}/wp-json/wc/v3/orders",
                params={"per_page": 100, "page": page},
                auth=auth,
            )
            orders += wire.loads(answer.content)
            if page >= int(answer.headers["x-wp-totalpages"]):
                break
    return World(bridge, shop, config, env, orders)


@pytest.fixture
def stop() -> Iterator[list[Process]]:
    running: list[Process] = []
    yield running
    for process in running:
        process.stop()


def send_webhooks(world: World, platform: str, unsent_every: int) -> set[int]:
    """Every order's webhook but every `unsent_every`-th, some twice; the ids never sent."""
    unsent = set()
    for n, order in enumerate(world.orders):
        if n % unsent_every == unsent_every // 2:
            unsent.add(order["id"])
            continue
        body = wire.dumps(order)
        if platform == "shopify":
            signing = {"shop": "acme.myshopify.com"}
        else:
            signing = {
                "scheme": "woocommerce-hmac",
                "topic": "order.created",
                "shop": world.shop.url + "/",
            }
        for _ in range(2 if n % 3 == 0 else 1):  # a third sent twice, as shops repeat
            answer = sign_and_post(
                world.bridge.url, platform, body, SECRET, delivery_id=f"d-{order['id']}", **signing
            )
            assert answer.status_code in (200, 201, 202), answer.text
    return unsent


def invoiceable(world: World) -> list[dict[str, Any]]:
    return [order for order in world.orders if order.get("test") is not True]


def invoices_per_po(world: World) -> Counter[str]:
    return Counter(invoice["customer_po_number"] for invoice in world.invoices())


def po_of(order: dict[str, Any]) -> str:
    """The PO number each mapping writes: Shopify's order name, WooCommerce's "#" + number."""
    return str(order["name"]) if "name" in order else f"#{order['number']}"


def run_case(
    tmp_path: Path, stop: list[Process], platform: str, count: int, unsent_every: int
) -> World:
    world = start_world(tmp_path, platform, count)
    stop += [world.bridge, world.shop]
    unsent = send_webhooks(world, platform, unsent_every)
    expected_now = [o for o in invoiceable(world) if o["id"] not in unsent]
    assert wait_until(lambda: len(world.invoices()) >= len(expected_now), 120)

    report = world.cli("reconcile", platform, "--since", "4d", "--json")
    assert report.returncode == 1, report.stderr
    lines = [json.loads(line) for line in report.stdout.splitlines()]
    states = {int(line["order_id"]): line["state"] for line in lines}
    assert len(lines) == count
    missing = {order_id for order_id, state in states.items() if state == "missing"}
    unsent_real = {o["id"] for o in invoiceable(world) if o["id"] in unsent}
    assert missing == unsent_real and missing
    assert all(states[o["id"]] == "skipped" for o in world.orders if o.get("test") is True)

    fixed = world.cli("reconcile", platform, "--since", "4d", "--fix")
    assert fixed.returncode == 1 and f"recorded {len(missing)} missing orders" in fixed.stdout, (
        fixed.stdout
    )
    assert wait_until(lambda: len(world.invoices()) >= len(invoiceable(world)), 120)

    clean = world.cli("reconcile", platform, "--since", "4d")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    per_po = invoices_per_po(world)
    assert all(per_po[po_of(order)] == 1 for order in invoiceable(world))
    assert sum(per_po.values()) == len(invoiceable(world))

    again = world.cli("reconcile", platform, "--since", "4d", "--fix")
    assert again.returncode == 0 and "recorded 0 missing orders" in again.stdout
    twice = world.cli("backfill", platform, "--since", "4d")
    assert twice.returncode == 0, twice.stderr
    assert len(world.invoices()) == len(invoiceable(world))
    return world


def test_shopify_reconcile_fix_closes_the_gap_once(tmp_path: Path, stop: list[Process]) -> None:
    world = run_case(tmp_path, stop, "shopify", 60, 10)
    # A double made by hand in Luminous is reported, never silently absorbed.
    victim = invoiceable(world)[0]
    original = next(i for i in world.invoices() if i["customer_po_number"] == victim["name"])
    copy = {
        "company_id": 1,
        "payment_terms": "Due on receipt",
        "order_date": original["order_date"][:10],
        "customer_po_number": victim["name"],
        "items": [
            {"quantity": 1, "unit_price": 1, "sku": line["sku"]} for line in original["items"][:1]
        ],
    }
    made = httpx.post(
        f"{world.bridge.url}/external/api/v1/invoices",
        json=copy,
        headers={"Authorization": "Bearer any"},
    )
    assert made.status_code in (200, 201), made.text
    report = world.cli("reconcile", "shopify", "--since", "4d")
    assert report.returncode == 1
    assert f"{victim['id']}" in report.stdout and "doubled" in report.stdout


def test_woocommerce_reconcile_fix_closes_the_gap_once(tmp_path: Path, stop: list[Process]) -> None:
    run_case(tmp_path, stop, "woocommerce", 30, 10)
