"""An order's later life over real sockets: a cancellation tags the order's invoice and
creates nothing, also when it arrives before the invoice exists."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Process, free_port, sandbox_invoices, sign_and_post
from tests.orders import body, seed, shopify_order

SECRET = "later-life-secret"
ADMIN = "later-life-admin"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": "test-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process]]:
    tmp = tmp_path_factory.mktemp("later-life")
    seed_file = tmp / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    sandbox_port, bridge_port = free_port(), free_port()
    sandbox = Process(
        ["sandbox", "--port", str(sandbox_port), "--seed", str(seed_file)],
        sandbox_port,
        tmp / "sandbox.log",
    ).start()
    config = tmp / "bridge.toml"
    config.write_text(
        f"""
[server]
respond_within = 1.0
[store]
url = "sqlite:///{tmp / "bridge.db"}"
[luminous]
base_url = "http://127.0.0.1:{sandbox_port}/external/api/v1"
max_requests_per_second = 0
[retry]
base_delay = 0.05
max_delay = 0.3
[sources.shopify]
topics = ["orders/create", "orders/updated"]
[sources.shopify.options]
company_id = 1
[sources.shopify.tag_topics]
"orders/cancelled" = "cancelled"
"refunds/create" = "refunded"
partially_refunded = "partially-refunded"
"""
    )
    bridge = Process(
        ["serve", "--config", str(config), "--port", str(bridge_port)],
        bridge_port,
        tmp / "bridge.log",
        env=ENV,
    ).start()
    yield bridge, sandbox
    bridge.stop()
    sandbox.stop()


def cancelled(order: dict[str, Any]) -> bytes:
    return body({**order, "cancelled_at": "2026-11-21T09:00:00-05:00", "cancel_reason": "customer"})


def tags_of(sandbox: Process, invoice_id: int) -> list[str]:
    answer = httpx.get(
        f"{sandbox.url}/external/api/v1/invoices/{invoice_id}",
        headers={"Authorization": "Bearer test-token"},
    )
    return [tag["name"] for tag in answer.json()["data"]["tags"]]


def wait_for(bridge: Process, event_id: int, status: str) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for _ in range(100):
        event = httpx.get(
            f"{bridge.url}/events/{event_id}", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()
        if event["status"] == status:
            break
        time.sleep(0.1)
    return event


def test_a_cancellation_after_the_invoice_tags_it(services: tuple[Process, Process]) -> None:
    bridge, sandbox = services
    order = shopify_order(6001)
    created = sign_and_post(bridge.url, "shopify", body(order), SECRET).json()
    assert created["status"] == "created"
    answer = sign_and_post(
        bridge.url, "shopify", cancelled(order), SECRET, topic="orders/cancelled"
    )
    assert answer.status_code == 200, answer.text
    tagged = answer.json()
    assert tagged["status"] == "tagged" and tagged["invoice_id"] == created["invoice_id"]
    assert "cancelled" in tags_of(sandbox, created["invoice_id"])
    mine = [i for i in sandbox_invoices(sandbox.url) if i["customer_po_number"] == order["name"]]
    assert len(mine) == 1


def test_a_refund_names_its_order(services: tuple[Process, Process]) -> None:
    bridge, sandbox = services
    order = shopify_order(6002)
    created = sign_and_post(bridge.url, "shopify", body(order), SECRET).json()
    refund = {"id": 777001, "order_id": 6002, "refund_line_items": [], "transactions": []}
    answer = sign_and_post(bridge.url, "shopify", body(refund), SECRET, topic="refunds/create")
    assert answer.json()["status"] == "tagged", answer.text
    assert "refunded" in tags_of(sandbox, created["invoice_id"])


def test_a_cancellation_before_the_invoice_waits_for_it(services: tuple[Process, Process]) -> None:
    bridge, sandbox = services
    order = shopify_order(6003)
    early = sign_and_post(bridge.url, "shopify", cancelled(order), SECRET, topic="orders/cancelled")
    assert early.status_code == 202, early.text
    assert early.json()["status"] == "retrying"
    created = sign_and_post(bridge.url, "shopify", body(order), SECRET).json()
    assert created["status"] == "created"
    event = wait_for(bridge, early.json()["event_id"], "tagged")
    assert event["status"] == "tagged" and event["invoice_id"] == created["invoice_id"]
    assert "cancelled" in tags_of(sandbox, created["invoice_id"])
    mine = [i for i in sandbox_invoices(sandbox.url) if i["customer_po_number"] == order["name"]]
    assert len(mine) == 1


def test_an_update_to_partially_refunded_tags_and_other_updates_are_duplicates(
    services: tuple[Process, Process],
) -> None:
    bridge, sandbox = services
    order = shopify_order(6004)
    created = sign_and_post(bridge.url, "shopify", body(order), SECRET).json()
    note_added = sign_and_post(
        bridge.url, "shopify", body({**order, "note": "gift"}), SECRET, topic="orders/updated"
    )
    assert note_added.status_code == 200 and note_added.json()["duplicate"] is True
    refunded = {**order, "financial_status": "partially_refunded"}
    answer = sign_and_post(bridge.url, "shopify", body(refunded), SECRET, topic="orders/updated")
    assert answer.json()["status"] == "tagged", answer.text
    assert "partially-refunded" in tags_of(sandbox, created["invoice_id"])
    mine = [i for i in sandbox_invoices(sandbox.url) if i["customer_po_number"] == order["name"]]
    assert len(mine) == 1
