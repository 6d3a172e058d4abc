"""Exactly one invoice per order under faults, over real processes.

Five hundred Shopify orders, a fifth of them delivered twice, posted from several threads by
a sender that retries until it gets a 2xx, as a shop platform does; meanwhile the bridge is
SIGKILLed and restarted at random moments, the sandbox injects errors, throttling and answers
lost after the invoice was stored, and for a few seconds refuses every request. At the end
every order has one invoice with the order's total, and every event is `created`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.store.base import FINISHED
from bridge.wire import loads
from tests.harness import (
    Delivered,
    Process,
    admin_events,
    bridge_config,
    bridge_process,
    deliver,
    free_port,
    sandbox_invoices,
    sandbox_process,
    sandbox_stats,
    wait_until,
)
from tests.orders import SKUS, body, shopify_order

SECRET = "chaos-shopify-secret"
ADMIN = "chaos-admin-token"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": "chaos-luminous-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}

SEED = 20261127
ORDERS = 500
REPEAT_SHARE = 0.2
POSTING_SECONDS = 30.0  # the orders arrive spread over this long, as a shop's stream would
POSTERS = 8
KILLS = 6
OUTAGE_AFTER_KILL = 2
FAULTS = (
    "--fail-rate",
    "0.1",
    "--throttle-rate",
    "0.05",
    "--timeout-after-commit-rate",
    "0.03",
)
REFUSE_ALL_SECONDS = 4.0


def make_orders(rng: random.Random) -> list[dict[str, Any]]:
    """Distinct orders with varied lines, shipping and tax; each totals what its lines say."""
    orders = []
    for n in range(ORDERS):
        lines: list[tuple[str | None, int, str]] = [
            (sku, rng.randint(1, 4), f"{rng.randint(100, 9999) / 100:.2f}")
            for sku in rng.sample(SKUS, rng.randint(1, 3))
        ]
        shipping = f"{rng.randint(0, 1500) / 100:.2f}"
        tax = f"{rng.randint(0, 900) / 100:.2f}"
        orders.append(shopify_order(4_500_000_000_000 + n, lines=lines, shipping=shipping, tax=tax))
    return orders


@dataclass(frozen=True)
class Delivery:
    order: int
    delivery_id: str
    repeat: bool


def make_deliveries(rng: random.Random) -> list[Delivery]:
    """Every order once, then a fifth again: half with the same webhook id, half a new one."""
    deliveries = [Delivery(n, f"wh-{n}", False) for n in range(ORDERS)]
    for n in rng.sample(range(ORDERS), int(ORDERS * REPEAT_SHARE)):
        same_id = rng.random() < 0.5
        deliveries.append(Delivery(n, f"wh-{n}" if same_id else f"wh-{n}-again", True))
    rng.shuffle(deliveries)
    return deliveries


@dataclass
class Rig:
    """The two processes, restarted on the same ports and files, and what they went through."""

    tmp: Path
    sandbox: Process
    bridge: Process
    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    restart_seconds: list[float] = field(default_factory=list)

    def restart_sandbox(self, *flags: str) -> None:
        """Count what this sandbox injected, kill it (its state is on disk), start another."""
        self.faults.update(sandbox_stats(self.sandbox.url)["faults"])
        self.sandbox.kill()
        self.sandbox = sandbox_process(self.tmp, self.sandbox.port, *flags).start()

    def kill_bridge(self) -> None:
        self.bridge.kill()
        self.kills += 1
        started = time.monotonic()
        self.bridge.start()
        self.restart_seconds.append(time.monotonic() - started)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    sandbox = sandbox_process(tmp_path, free_port(), *FAULTS, "--fault-seed", str(SEED)).start()
    config = bridge_config(tmp_path, sandbox.port, {"server": {"drain_seconds": 2.0}})
    rig = Rig(tmp_path, sandbox, bridge_process(config, free_port(), ENV).start())
    yield rig
    rig.bridge.stop()
    rig.sandbox.stop(timeout=5)


def post_all(rig: Rig, orders: list[dict[str, Any]], deliveries: list[Delivery]) -> list[Delivered]:
    """Post every delivery at its moment in the stream, each until it gets a 2xx."""
    start = time.monotonic()
    spacing = POSTING_SECONDS / len(deliveries)

    def post(index: int) -> Delivered:
        delay = start + index * spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        delivery = deliveries[index]
        payload = body(orders[delivery.order])
        return deliver(
            rig.bridge.url, "shopify", payload, SECRET, delivery_id=delivery.delivery_id, timeout=10
        )

    with ThreadPoolExecutor(POSTERS) as pool:
        return list(pool.map(post, range(len(deliveries))))


def break_things(rig: Rig, rng: random.Random) -> None:
    """SIGKILL the bridge at random moments, restarting it each time; after the second kill,
    make the sandbox refuse every request for a few seconds."""
    for _ in range(KILLS):
        time.sleep(rng.uniform(1.0, 5.0))
        rig.kill_bridge()
        if rig.kills == OUTAGE_AFTER_KILL:
            rig.restart_sandbox("--fail-rate", "1", "--fault-seed", str(SEED + 1))
            time.sleep(REFUSE_ALL_SECONDS)
            rig.restart_sandbox(*FAULTS, "--fault-seed", str(SEED + 2))


def count_adopted(rig: Rig, events: list[dict[str, Any]]) -> int:
    """Events whose invoice was found in Luminous after an answer was lost, not sent again."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    adopted = 0
    with httpx.Client(base_url=rig.bridge.url, headers=headers, timeout=30) as client:
        for event in events:
            history = loads(client.get(f"/events/{event['event_id']}").content)["history"]
            adopted += any(step["outcome"] == "adopted" for step in history)
    return adopted


def all_finished(rig: Rig, expected: int) -> list[dict[str, Any]] | None:
    events = admin_events(rig.bridge.url, ADMIN)
    if len(events) == expected and all(event["status"] in FINISHED for event in events):
        return events
    return None


@pytest.mark.slow
def test_every_order_gets_exactly_one_invoice_under_faults_kills_and_an_outage(rig: Rig) -> None:
    rng = random.Random(SEED)
    orders = make_orders(rng)
    deliveries = make_deliveries(rng)
    expected_events = len({(d.order, d.delivery_id) for d in deliveries})
    started = time.monotonic()

    breaker = threading.Thread(target=break_things, args=(rig, random.Random(SEED)), daemon=True)
    breaker.start()
    delivered = post_all(rig, orders, deliveries)
    posted = time.monotonic()
    breaker.join()
    events = wait_until(lambda: all_finished(rig, expected_events), timeout=90, interval=0.5)
    wall = time.monotonic() - started

    # Read the outcome from a sandbox without faults (its state file kept every invoice).
    rig.restart_sandbox()
    invoices = sandbox_invoices(rig.sandbox.url)
    adopted = count_adopted(rig, events or [])
    by_po = Counter(invoice["customer_po_number"] for invoice in invoices)
    names = {order["name"] for order in orders}
    figures = {
        "orders": ORDERS,
        "deliveries": len(deliveries),
        "posts": sum(d.tries for d in delivered),
        "repeats": sum(d.repeat for d in deliveries),
        "repeats_new_id": sum(d.repeat and d.delivery_id.endswith("again") for d in deliveries),
        "kills": rig.kills,
        "faults": dict(+rig.faults),
        "invoices": len(invoices),
        "found_after_lost_answer": adopted,
        "duplicates": sum(count - 1 for count in by_po.values()),
        "possible_duplicates": sum(bool(e.get("possible_duplicate")) for e in events or []),
        "doubled_flagged": sum(bool(e.get("extra_invoice_ids")) for e in events or []),
        "missing": len(names - set(by_po)),
        "wall_seconds": round(wall, 1),
        "posting_seconds": round(posted - started, 1),
        "bridge_restart_seconds": round(max(rig.restart_seconds), 1),
    }
    print(f"\nchaos figures: {json.dumps(figures)}")

    statuses = Counter(event["status"] for event in events or admin_events(rig.bridge.url, ADMIN))
    assert events is not None, f"events unfinished after 90 s: {dict(statuses)}; {figures}"
    assert rig.kills == KILLS and sum(rig.faults.values()) > 0, figures
    assert figures["duplicates"] == 0 and figures["missing"] == 0, figures
    assert figures["doubled_flagged"] == 0, figures
    assert set(by_po) == names, figures
    assert statuses == {"created": expected_events}, f"{dict(statuses)}; {figures}"

    invoice_of = {invoice["customer_po_number"]: invoice for invoice in invoices}
    for order in orders:
        invoice = invoice_of[order["name"]]
        assert invoice["total"] == Decimal(order["total_price"]), (order["name"], figures)
    for event in events:
        assert event["invoice_id"] == invoice_of[event["order_name"]]["id"], (event, figures)
    for delivery, outcome in zip(deliveries, delivered, strict=True):
        answer = loads(outcome.answer.content)
        if answer["status"] == "created":
            order_name = orders[delivery.order]["name"]
            assert answer["invoice_id"] == invoice_of[order_name]["id"], (answer, figures)
        else:
            assert outcome.answer.status_code == 202, (answer, figures)
    assert httpx.get(rig.bridge.url + "/readyz").status_code == 200
