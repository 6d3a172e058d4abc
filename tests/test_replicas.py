"""Scale-out: two `bridge serve` replicas sharing one PostgreSQL database and one Luminous.

Orders arrive at either replica, are repeated to the other, and sometimes reach both at the
same instant; every order still gets exactly one invoice and each new customer one company.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import psycopg
import pytest

from bridge.store import PostgresStore
from bridge.store.base import DEAD, FINISHED, SCHEMA_VERSION, NewDelivery
from bridge.store.postgres import redact
from bridge.wire import loads
from tests.conftest import postgres_unreachable
from tests.harness import (
    Delivered,
    Process,
    admin_events,
    bridge_config,
    bridge_process,
    deliver,
    free_port,
    run_cli,
    sandbox_invoices,
    sandbox_process,
    wait_until,
    write_config,
)
from tests.orders import SKUS, body, shopify_order

# The server these tests use; each test creates a database of its own there and drops it.
POSTGRES = os.environ.get("BRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

SECRET = "replicas-shopify-secret"
ADMIN = "replicas-admin-token"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": "replicas-luminous-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}
SEED = 20261128
ORDERS = 200
REPEAT_SHARE = 0.2  # repeated to the other replica, half with the same webhook id
RACED_SHARE = 0.1  # sent to both replicas at the same instant, half with the same webhook id
CUSTOMERS = 15  # new e-mails (odd: each reaches both replicas), one company each
POSTERS = 8


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        postgres_unreachable(f"PostgreSQL is not reachable at {redact(POSTGRES)}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(POSTGRES)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# -- the CLI on a PostgreSQL store --------------------------------------------------


def test_migrate_and_events_work_on_a_postgresql_store(tmp_path: Path) -> None:
    with scratch_database() as url:
        config = write_config(tmp_path / "bridge.toml", {"store": {"url": url}})
        before = run_cli("events", "list", "--config", str(config))
        assert before.returncode == 1 and "bridge migrate" in before.stderr
        for _ in range(2):
            migrated = run_cli("migrate", "--config", str(config))
            assert migrated.returncode == 0, migrated.stderr
            assert f"version {SCHEMA_VERSION}" in migrated.stdout

        async def record_a_dead_event() -> int:
            store = PostgresStore(url)
            try:
                event, _ = await store.record(
                    NewDelivery("shopify", "cli-1", "acme.myshopify.com", None, {}, b"{}")
                )
                claimed = await store.claim(event.id, "test", 30)
                assert claimed is not None
                await store.finish(event.id, claimed.generation, DEAD, reason="unknown SKU NOPE")
                return event.id
            finally:
                await store.close()

        event_id = anyio.run(record_a_dead_event)
        listed = run_cli("events", "list", "--status", "dead", "--config", str(config))
        assert listed.returncode == 0 and "unknown SKU NOPE" in listed.stdout, listed
        replayed = run_cli("events", "replay", str(event_id), "--config", str(config))
        assert replayed.returncode == 0, replayed.stderr
        shown = run_cli("events", "show", str(event_id), "--config", str(config))
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        assert view["status"] == "received"
        assert [step["outcome"] for step in view["history"]] == ["dead", "replayed"]


# -- two replicas ---------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    order: int
    replica: int
    delivery_id: str
    kind: str  # first | repeat | raced


def make_orders(rng: random.Random) -> list[dict[str, Any]]:
    """Distinct orders; most from a few new customers, whose companies do not exist yet."""
    orders = []
    for n in range(ORDERS):
        lines: list[tuple[str | None, int, str]] = [
            (sku, rng.randint(1, 4), f"{rng.randint(100, 9999) / 100:.2f}")
            for sku in rng.sample(SKUS, rng.randint(1, 3))
        ]
        order = shopify_order(
            7_100_000_000_000 + n, lines=lines, tax=f"{rng.randint(0, 900) / 100:.2f}"
        )
        email = f"buyer{n % CUSTOMERS}@replicas.example"
        order["email"] = email
        customer = {
            "id": 500 + n % CUSTOMERS,
            "email": email,
            "first_name": f"Buyer{n % CUSTOMERS}",
        }
        order["customer"] = customer
        orders.append(order)
    return orders


def make_units(rng: random.Random) -> list[list[Post]]:
    """What arrives, in order: a unit of one post, or of two posts sent at the same instant."""
    units = [[Post(n, n % 2, f"wh-{n}", "first")] for n in range(ORDERS)]
    picked = rng.sample(range(ORDERS), int(ORDERS * (REPEAT_SHARE + RACED_SHARE)))
    repeated, raced = picked[: int(ORDERS * REPEAT_SHARE)], picked[int(ORDERS * REPEAT_SHARE) :]
    for index, n in enumerate(repeated):
        delivery_id = f"wh-{n}" if index % 2 else f"wh-{n}-again"
        units.append([Post(n, 1 - n % 2, delivery_id, "repeat")])
    for index, n in enumerate(raced):
        ids = [f"wh-{n}-race"] * 2 if index % 2 else [f"wh-{n}-race-{r}" for r in (0, 1)]
        units.append([Post(n, replica, ids[replica], "raced") for replica in (0, 1)])
    rng.shuffle(units)
    return units


@dataclass
class Answered:
    post: Post
    delivered: Delivered
    seconds: float


@dataclass
class Rig:
    sandbox: Process
    bridges: list[Process]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with scratch_database() as url:
        sandbox = sandbox_process(tmp_path, free_port(), "--latency", "50").start()
        bridges = []
        try:
            for replica in (0, 1):
                directory = tmp_path / f"replica{replica}"
                directory.mkdir()
                config = bridge_config(
                    directory,
                    sandbox.port,
                    {
                        "store": {"url": url},
                        "luminous": {"max_concurrency": 8},
                        "sources.shopify.options": {
                            "company": "match",
                            "default_company_id": 1,
                            "create_companies": True,
                        },
                    },
                )
                bridges.append(bridge_process(config, free_port(), ENV).start())
            yield Rig(sandbox, bridges)
        finally:
            for bridge in bridges:
                bridge.stop()
            sandbox.stop(timeout=5)


def post_all(rig: Rig, orders: list[dict[str, Any]], units: list[list[Post]]) -> list[Answered]:
    answers: list[Answered] = []

    def send(post: Post, start: threading.Barrier | None = None) -> None:
        payload = body(orders[post.order])
        if start:
            start.wait()
        began = time.monotonic()
        url = rig.bridges[post.replica].url
        delivered = deliver(url, "shopify", payload, SECRET, delivery_id=post.delivery_id)
        answers.append(Answered(post, delivered, time.monotonic() - began))

    def send_unit(unit: list[Post]) -> None:
        if len(unit) == 1:
            send(unit[0])
            return
        start = threading.Barrier(len(unit))
        pair = [threading.Thread(target=send, args=(post, start)) for post in unit]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()

    with ThreadPoolExecutor(POSTERS) as pool:
        list(pool.map(send_unit, units))
    return answers


def all_finished(rig: Rig, expected: int) -> list[dict[str, Any]] | None:
    events = admin_events(rig.bridges[0].url, ADMIN)
    if len(events) == expected and all(event["status"] in FINISHED for event in events):
        return events
    return None


def invoices_created_by(bridge: Process) -> int:
    """Invoices this replica's worker created (not adopted as an order's duplicate)."""
    created = 0
    for line in bridge.output().splitlines():  # JSON lines: the bridge's stderr is no terminal
        try:
            record = json.loads(line)
        except ValueError:
            continue
        created += (
            isinstance(record, dict)
            and record.get("logger") == "bridge.worker"
            and record.get("status") == "created"
            and "duplicate_of" not in record
        )
    return created


@pytest.mark.slow
def test_two_replicas_on_one_database_make_one_invoice_per_order(rig: Rig) -> None:
    rng = random.Random(SEED)
    orders = make_orders(rng)
    units = make_units(rng)
    posts = [post for unit in units for post in unit]
    expected_events = len({(post.order, post.delivery_id) for post in posts})
    started = time.monotonic()
    answers = post_all(rig, orders, units)
    posted = time.monotonic()
    events = wait_until(lambda: all_finished(rig, expected_events), timeout=90, interval=0.3)
    wall = time.monotonic() - started

    invoices = sandbox_invoices(rig.sandbox.url)
    by_po = Counter(invoice["customer_po_number"] for invoice in invoices)
    companies = httpx.get(
        f"{rig.sandbox.url}/external/api/v1/companies",
        params={"per_page": 100},
        headers={"Authorization": "Bearer replicas-luminous-token"},
    ).json()["data"]
    new_companies = Counter(company["name"] for company in companies if company["id"] != 1)
    latencies = sorted(answer.seconds for answer in answers)
    by_replica = [invoices_created_by(bridge) for bridge in rig.bridges]
    figures = {
        "orders": ORDERS,
        "posts": len(posts),
        "repeats": sum(post.kind == "repeat" for post in posts),
        "raced_pairs": sum(len(unit) == 2 for unit in units),
        "events": expected_events,
        "answers": dict(Counter(str(a.delivered.answer.status_code) for a in answers)),
        "duplicate_answers": sum(
            bool(loads(a.delivered.answer.content).get("duplicate")) for a in answers
        ),
        "invoices": len(invoices),
        "duplicates": sum(count - 1 for count in by_po.values()),
        "missing": len({order["name"] for order in orders} - set(by_po)),
        "invoices_by_replica": by_replica,
        "new_companies": len(new_companies),
        "post_p50_ms": round(statistics.median(latencies) * 1000),
        "post_p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000),
        "posting_seconds": round(posted - started, 1),
        "wall_seconds": round(wall, 1),
    }
    print(f"\nreplica figures: {json.dumps(figures)}")

    statuses = Counter(event["status"] for event in events or [])
    assert events is not None, f"events unfinished after 90 s; {figures}"
    assert statuses == {"created": expected_events}, f"{dict(statuses)}; {figures}"
    assert figures["duplicates"] == 0 and figures["missing"] == 0, figures
    assert len(invoices) == ORDERS, figures
    assert sum(by_replica) == ORDERS and min(by_replica) > 0, figures
    assert len(new_companies) == CUSTOMERS and max(new_companies.values()) == 1, figures

    invoice_of = {invoice["customer_po_number"]: invoice for invoice in invoices}
    for order in orders:
        assert invoice_of[order["name"]]["total"] == Decimal(order["total_price"]), order["name"]
    for event in events:
        assert event["invoice_id"] == invoice_of[event["order_name"]]["id"], event
    for answer in answers:
        result = loads(answer.delivered.answer.content)
        if result["status"] == "created":
            order_name = orders[answer.post.order]["name"]
            assert result["invoice_id"] == invoice_of[order_name]["id"], result
        else:
            assert answer.delivered.answer.status_code == 202, result
    for bridge in rig.bridges:
        assert httpx.get(bridge.url + "/readyz").status_code == 200, bridge.output()[-2000:]
