"""The sweep over real processes: `bridge serve` closes the gap of webhooks that never came
with no command run, and of two replicas on PostgreSQL only one sweeps a shop at a time.

Invoices are counted by the Luminous sandbox's own listing, sweeps by the serve logs and
the shop stand-in's own request count.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import (
    Process,
    bridge_config,
    bridge_process,
    free_port,
    sandbox_invoices,
    sandbox_process,
    wait_until,
)
from tests.test_backfill_end_to_end import (
    SHOP_TOKEN,
    invoiceable,
    invoices_per_po,
    po_of,
    shop_orders,
    start_world,
    stop,  # noqa: F401 - the fixture that stops the processes
)
from tests.test_replicas import scratch_database

pytestmark = pytest.mark.slow  # real processes, 10-30 s each

SHOP = "acme.myshopify.com"
SWEEP = {"every": "1s", "lookback": "3h"}
# 40 orders over the last 2.4 hours: all inside the lookback, none inside the 2-minute settle.
STAND_IN = ("--days", "0.1")


def sweep_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        if text.startswith("{") and '"sweep ' in text:
            line = json.loads(text)
            if line["message"] in ("sweep started", "sweep ended"):
                lines.append(line)
    return lines


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for found in re.finditer(rf"^{name}{{(.*)}} (\S+)$", text, re.M):
        if ",".join(sorted(found[1].split(","))) == wanted:
            return float(found[2])
    return 0.0


def test_the_sweep_invoices_orders_whose_webhooks_never_came(
    tmp_path: Path,
    stop: list[Process],  # noqa: F811
) -> None:
    world = start_world(tmp_path, "shopify", 40, shop_flags=STAND_IN, sweep=SWEEP)
    stop += [world.bridge, world.shop]
    wanted = invoiceable(world)
    assert 30 < len(wanted) < 40  # test orders among them, never invoiced
    assert wait_until(lambda: len(world.invoices()) >= len(wanted), 60), world.bridge.output()
    time.sleep(3)  # more sweeps see the same orders again
    per_po = invoices_per_po(world)
    assert all(per_po[po_of(order)] == 1 for order in wanted)
    assert sum(per_po.values()) == len(wanted)

    ended = [line for line in sweep_lines(world.bridge.log) if line["message"] == "sweep ended"]
    assert len(ended) >= 3 and ended[0]["new"] == 40  # the test orders are events too (skipped)
    assert all(line["new"] == 0 and line["known"] == 40 for line in ended[1:])
    labels = {"source": "shopify", "shop": SHOP}
    assert metric(world.bridge.url, "bridge_sweep_missed_orders_total", kind="new", **labels) == 40
    assert metric(world.bridge.url, "bridge_sweep_fetch_failures_total", **labels) == 0
    age = metric(world.bridge.url, "bridge_sweep_cursor_age_seconds", **labels)
    assert 120 <= age < 130  # the settle, plus at most a sweep's interval

    report = world.cli("reconcile", "shopify", "--since", "3h")
    assert report.returncode == 0, report.stdout + report.stderr


def test_two_replicas_on_postgresql_sweep_one_at_a_time(
    tmp_path: Path,
    stop: list[Process],  # noqa: F811
) -> None:
    shop_port, sandbox_port = free_port(), free_port()
    # Slow pages, so two sweeps at once would overlap in time if the lease let them.
    shop_args = ["shop-sandbox", "shopify", "--port", str(shop_port), "--generate", "40"]
    shop = Process([*shop_args, *STAND_IN, "--latency", "300"], shop_port, tmp_path / "shop.log")
    stop.append(shop.start())
    luminous = sandbox_process(tmp_path, sandbox_port)
    stop.append(luminous.start())
    orders = shop_orders(shop.url)
    wanted = [order for order in orders if order.get("test") is not True]
    with scratch_database() as url:
        replicas = []
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            config = bridge_config(
                folder,
                sandbox_port,
                {
                    "store": {"url": url},
                    "sources.shopify.options": {"unknown_sku": "create"},
                    f'sources.shopify.shops."{SHOP}"': {
                        "api_url": shop.url,
                        "api_token_env": "ACME_SHOP_TOKEN",
                    },
                    "sources.shopify.sweep": SWEEP,
                },
            )
            env = {
                "SHOPIFY_WEBHOOK_SECRET": "s",
                "LUMINOUS_API_TOKEN": "t",
                "ACME_SHOP_TOKEN": SHOP_TOKEN,
            }
            replica = bridge_process(config, free_port(), env)
            stop.append(replica.start())
            replicas.append(replica)

        def invoices() -> list[dict[str, Any]]:
            return sandbox_invoices(luminous.url, token="t")

        assert wait_until(lambda: len(invoices()) >= len(wanted), 90)
        time.sleep(8)  # sweeps go on, replica after replica
        for replica in replicas:
            replica.stop()
        per_po = Counter(invoice["customer_po_number"] for invoice in invoices())
        assert all(per_po[order["name"]] == 1 for order in wanted)
        assert sum(per_po.values()) == len(wanted)

    spans: dict[int, dict[str, float]] = {}
    for replica in replicas:
        for line in sweep_lines(replica.log):
            at = dt.datetime.fromisoformat(line["time"]).timestamp()
            spans.setdefault(line["generation"], {})[line["message"]] = at
    finished = sorted(
        (span["sweep started"], span["sweep ended"]) for span in spans.values() if len(span) == 2
    )
    assert len(finished) >= 5
    for (_, ended), (started, _) in itertools.pairwise(finished):
        assert started >= ended, "two sweeps of one shop overlapped"
    # The stand-in saw one request per sweep (one page each), not one per replica per tick.
    requests = httpx.get(f"{shop.url}/_sandbox/stats", timeout=10).json()["requests"]
    assert requests <= len(spans)
