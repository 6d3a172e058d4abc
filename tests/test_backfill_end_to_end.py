"""None lost: real `bridge serve --sandbox`, `bridge shop-sandbox`, and the commands a user types.

Webhooks of some orders are never sent, the rest are sent with repeats; `reconcile` finds
the gap, `--fix` closes it, every order ends with exactly one invoice, and a second run
changes nothing. The sandbox counts invoices by its own code, not the bridge's, and the shop
stand-in counts the answers it gave. The large runs print how long each phase took.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
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

pytestmark = pytest.mark.slow  # real processes, about 10 s each (the large ones a few minutes)

SECRET = "e2e-webhook-secret"
SHOP_TOKEN = "shpat_e2e_0123456789abcdef"
WOO_KEY, WOO_SECRET = "ck_e2e_key_123456", "cs_e2e_secret_654321"
REAL_BUCKET = ("--bucket-size", "40", "--leak-rate", "2")  # Shopify's standard plan


@dataclass
class Phases:
    """How long each phase of a run took, in order: the figures a large run reports."""

    seconds: dict[str, float] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)

    def end(self, phase: str) -> float:
        now = time.monotonic()
        self.seconds[phase] = now - self.since
        self.since = now
        return self.seconds[phase]

    def __str__(self) -> str:
        return ", ".join(f"{phase} {took:.1f} s" for phase, took in self.seconds.items())


@dataclass
class World:
    bridge: Process
    shop: Process
    config: Path
    env: dict[str, str]
    phases: Phases

    def cli(self, *args: str) -> Any:
        return run_cli(
            *args,
            "--config",
            str(self.config),
            env=self.env,
            cwd=self.config.parent,
            timeout=180,
        )

    @cached_property
    def orders(self) -> list[dict[str, Any]]:
        return shop_orders(self.shop.url)

    def invoices(self) -> list[dict[str, Any]]:
        return sandbox_invoices(self.bridge.url, token="any")

    def invoice_count(self) -> int:
        """The sandbox's own total, from one short page: cheap enough to poll."""
        answer = httpx.get(
            f"{self.bridge.url}/external/api/v1/invoices",
            params={"per_page": 1},
            headers={"Authorization": "Bearer any"},
            timeout=30,
        )
        answer.raise_for_status()
        total: int = wire.loads(answer.content)["meta"]["total"]
        return total

    def shop_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.shop.url}/_sandbox/stats", timeout=30).json()
        return stats


def shop_orders(url: str) -> list[dict[str, Any]]:
    """Every order the stand-in holds, read beside its API: no bucket spent, no request counted."""
    answer = httpx.get(f"{url}/_sandbox/orders", timeout=60)
    answer.raise_for_status()
    orders: list[dict[str, Any]] = wire.loads(answer.content)["orders"]
    return orders


def start_world(
    tmp_path: Path,
    platform: str,
    count: int,
    *,
    shop_flags: tuple[str, ...] = (),
    sweep: dict[str, str] | None = None,
    respond_within: float = 0.2,
) -> World:
    """The shop's stand-in holding `count` orders and a `bridge serve --sandbox` that knows
    its API (and sweeps it, given `sweep`); no webhook sent yet."""
    phases = Phases()
    shop_port, bridge_port = free_port(), free_port()
    shop_args = ["shop-sandbox", platform, "--port", str(shop_port), "--generate", str(count)]
    shop_args += list(shop_flags)
    if platform == "shopify" and "--bucket-size" not in shop_flags:
        shop_args += ["--bucket-size", "400", "--leak-rate", "20"]
    shop_args += ["--key", WOO_KEY, "--secret", WOO_SECRET] if platform == "woocommerce" else []
    shop = Process(shop_args, shop_port, tmp_path / "shop.log").start(timeout=90)
    phases.end("generating")
    shop_name = "acme.myshopify.com" if platform == "shopify" else f"http://127.0.0.1:{shop_port}"
    table: dict[str, Any] = {"api_url": shop.url}
    if platform == "shopify":
        table["api_token_env"] = "ACME_SHOP_TOKEN"
    else:
        table |= {"api_key_env": "ACME_WOO_KEY", "api_secret_env": "ACME_WOO_SECRET"}
    config = write_config(
        tmp_path / "bridge.toml",
        {
            "server": {"respond_within": respond_within},
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
    phases.end("starting serve")
    return World(bridge, shop, config, env, phases)


@pytest.fixture
def stop() -> Iterator[list[Process]]:
    running: list[Process] = []
    yield running
    for process in running:
        process.stop()


def send_webhooks(world: World, platform: str, unsent_every: int, posters: int = 1) -> set[int]:
    """Every order's webhook but every `unsent_every`-th, a third of them again later, as
    shops repeat, from `posters` threads at once; the ids never sent."""
    unsent = {
        order["id"] for n, order in enumerate(world.orders) if n % unsent_every == unsent_every // 2
    }
    sent = [order for order in world.orders if order["id"] not in unsent]
    posts = sent + sent[::3]
    if platform == "shopify":
        signing: dict[str, str] = {"shop": "acme.myshopify.com"}
    else:
        signing = {"scheme": "woocommerce-hmac", "topic": "order.created"}
        signing["shop"] = world.shop.url + "/"

    def post(share: list[dict[str, Any]]) -> None:
        with httpx.Client() as client:
            for order in share:
                answer = sign_and_post(
                    world.bridge.url,
                    platform,
                    wire.dumps(order),
                    SECRET,
                    delivery_id=f"d-{order['id']}",
                    client=client,
                    **signing,
                )
                assert answer.status_code in (200, 201, 202), answer.text

    with ThreadPoolExecutor(posters) as pool:
        list(pool.map(post, [posts[k::posters] for k in range(posters)]))
    return unsent


def invoiceable(world: World) -> list[dict[str, Any]]:
    return [order for order in world.orders if order.get("test") is not True]


def invoices_per_po(world: World) -> Counter[str]:
    return Counter(invoice["customer_po_number"] for invoice in world.invoices())


def po_of(order: dict[str, Any]) -> str:
    """The PO number each mapping writes: Shopify's order name, WooCommerce's "#" + number."""
    return str(order["name"]) if "name" in order else f"#{order['number']}"


def reconcile_states(world: World, platform: str) -> dict[int, dict[str, Any]]:
    """`reconcile --json`'s line for each order, by order id; it must exit 1 (not clean)."""
    report = world.cli("reconcile", platform, "--since", "4d", "--json")
    assert report.returncode == 1, report.stdout[-2000:] + report.stderr[-2000:]
    lines = [json.loads(line) for line in report.stdout.splitlines()]
    return {int(line["order_id"]): line for line in lines}


def run_case(
    tmp_path: Path,
    stop: list[Process],
    platform: str,
    count: int,
    unsent_every: int,
    *,
    posters: int = 1,
    respond_within: float = 0.2,
    shop_flags: tuple[str, ...] = (),
) -> World:
    world = start_world(
        tmp_path, platform, count, shop_flags=shop_flags, respond_within=respond_within
    )
    stop += [world.bridge, world.shop]
    phases = world.phases
    assert len(world.orders) == count
    phases.end("listing the shop")
    unsent = send_webhooks(world, platform, unsent_every, posters)
    phases.end("posting webhooks")
    expected_now = [o for o in invoiceable(world) if o["id"] not in unsent]
    wait = max(120, count / 10)  # seconds: about 60 invoices a second here
    assert wait_until(lambda: world.invoice_count() >= len(expected_now), wait, 0.5)
    phases.end("invoicing webhooks")

    states = reconcile_states(world, platform)
    assert len(states) == count
    missing = {order_id for order_id, line in states.items() if line["state"] == "missing"}
    unsent_real = {o["id"] for o in invoiceable(world) if o["id"] in unsent}
    assert missing == unsent_real and missing
    assert all(states[o["id"]]["state"] == "skipped" for o in world.orders if o.get("test"))
    phases.end("reconcile")

    fixed = world.cli("reconcile", platform, "--since", "4d", "--fix")
    assert fixed.returncode == 1 and f"recorded {len(missing)} missing orders" in fixed.stdout, (
        fixed.stdout[-2000:]
    )
    phases.end("reconcile --fix")
    assert wait_until(lambda: world.invoice_count() >= len(invoiceable(world)), wait, 0.5)
    phases.end("invoicing the missing")

    clean = world.cli("reconcile", platform, "--since", "4d")
    assert clean.returncode == 0, clean.stdout[-2000:] + clean.stderr[-2000:]
    phases.end("reconcile, clean")
    listed = world.invoices()
    per_po = Counter(invoice["customer_po_number"] for invoice in listed)
    assert all(per_po[po_of(order)] == 1 for order in invoiceable(world))
    assert sum(per_po.values()) == len(invoiceable(world))
    phases.end("listing invoices")

    again = world.cli("reconcile", platform, "--since", "4d", "--fix")
    assert again.returncode == 0 and "recorded 0 missing orders" in again.stdout
    phases.end("reconcile --fix again")
    # A backfill of the whole range records the orders the webhooks brought as changed
    # ones; followed to the end, they add no invoice.
    twice = world.cli("backfill", platform, "--since", "4d", "--wait")
    assert twice.returncode == 0, twice.stdout[-2000:] + twice.stderr[-2000:]
    assert "recorded: 0 new orders" in twice.stdout and "invoicing done" in twice.stdout
    assert [invoice["id"] for invoice in world.invoices()] == [i["id"] for i in listed]
    phases.end("backfill --wait")
    took = phases.seconds
    sent_rate = len(expected_now) / (took["posting webhooks"] + took["invoicing webhooks"])
    missing_rate = len(missing) / (took["reconcile --fix"] + took["invoicing the missing"])
    print(
        f"\n{platform}, {count} orders: {phases}; invoices a second: {sent_rate:.0f} from "
        f"webhooks (posting included), {missing_rate:.0f} from --fix (its reading included)"
    )
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
    states = reconcile_states(world, "shopify")
    doubled = {order_id: line for order_id, line in states.items() if line["state"] == "doubled"}
    assert list(doubled) == [victim["id"]]
    copy_id = made.json()["data"]["id"]
    assert sorted(doubled[victim["id"]]["invoice_ids"]) == sorted([original["id"], copy_id])
    others = [o for o in invoiceable(world) if o["id"] != victim["id"]]
    assert all(states[o["id"]]["state"] == "invoiced" for o in others)


def test_woocommerce_reconcile_fix_closes_the_gap_once(tmp_path: Path, stop: list[Process]) -> None:
    run_case(tmp_path, stop, "woocommerce", 30, 10)


def test_two_thousand_shopify_orders_over_three_days(tmp_path: Path, stop: list[Process]) -> None:
    # Webhooks answered at once (respond_within 0), as a busy bridge answers a shop.
    world = run_case(
        tmp_path, stop, "shopify", 2000, 10, posters=4, respond_within=0, shop_flags=REAL_BUCKET
    )
    # Five commands read the shop's 8 pages each, at its real bucket, without a 429.
    stats = world.shop_stats()
    assert stats["requests"] >= 5 * 8 and stats["statuses"].get("429", 0) == 0, stats


def test_three_hundred_woocommerce_orders(tmp_path: Path, stop: list[Process]) -> None:
    run_case(tmp_path, stop, "woocommerce", 300, 10, posters=4, respond_within=0)


def test_backfill_keeps_within_shopifys_real_bucket(tmp_path: Path, stop: list[Process]) -> None:
    """44 pages of 250 from a stand-in at Shopify's real bucket (40 calls, leaking 2 a
    second): more calls than the bucket holds, so only pacing keeps them out of 429s."""
    count, pages = 11_000, 44
    world = start_world(tmp_path, "shopify", count, shop_flags=REAL_BUCKET)
    stop += [world.bridge, world.shop]
    ran = world.cli("backfill", "shopify", "--since", "4d", "--dry-run")
    took = world.phases.end("backfill --dry-run")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert f"would record: {count} new orders" in ran.stdout and "0 shops failed" in ran.stdout
    stats = world.shop_stats()
    requests, throttled = stats["requests"], stats["statuses"].get("429", 0)
    assert requests >= pages + 1 > 40  # the pages and the scopes check
    assert throttled / requests < 0.05, stats
    print(
        f"\nbackfill of {count} orders at the real bucket: {requests} requests in {took:.1f} s, "
        f"{throttled} answered 429 ({throttled / requests:.1%}); {world.phases}"
    )
    # The bucket was the real one: a burst without pacing is refused, even from empty.
    orders_url = f"{world.shop.url}/admin/api/2025-10/orders.json"
    with httpx.Client(headers={"X-Shopify-Access-Token": SHOP_TOKEN}) as client:
        burst = [client.get(orders_url, params={"limit": 1}).status_code for _ in range(60)]
    assert burst.count(429) >= 10, burst
