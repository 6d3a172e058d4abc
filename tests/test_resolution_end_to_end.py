"""Resolution over real sockets: the bridge matches customers to Luminous companies and SKUs
to products in a separately running sandbox, as the resolution issue's checks describe."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.wire import loads
from tests.harness import Process, free_port, run_cli, sandbox_invoices, sign_and_post
from tests.orders import body, shopify_order

SECRET = "resolution-secret"
ADMIN = "resolution-admin"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": "test-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}
SEED = {
    "products": [
        {"id": 100, "sku": "TEE-BLK-M", "name": "Tee", "alternate_skus": ["TEE-BLACK-M"]},
        {"id": 101, "sku": "MUG-WHT", "name": "Mug"},
    ],
    "companies": [
        {"id": 1, "name": "Online Store Customers"},
        {
            "id": 7,
            "name": "Acme Retail",
            "contacts": [
                {"id": 70, "email": "buyer@acme.example", "first_name": "Ann", "last_name": "Buyer"}
            ],
        },
    ],
}
API = "/external/api/v1"
AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process, Path]]:
    tmp = tmp_path_factory.mktemp("resolution")
    seed = tmp / "seed.json"
    seed.write_text(json.dumps(SEED))
    sandbox_port, bridge_port = free_port(), free_port()
    sandbox = Process(
        ["sandbox", "--port", str(sandbox_port), "--seed", str(seed), "--latency", "100"],
        sandbox_port,
        tmp / "sandbox.log",
    ).start()
    config = tmp / "bridge.toml"
    config.write_text(
        f"""
[server]
respond_within = 15.0
[store]
url = "sqlite:///{tmp / "bridge.db"}"
[luminous]
base_url = "http://127.0.0.1:{sandbox_port}{API}"
max_concurrency = 8
max_requests_per_second = 0
[retry]
base_delay = 0.05
max_delay = 0.3
[sources.shopify.options]
company = "match"
default_company_id = 1
create_companies = true
"""
    )
    bridge = Process(
        ["serve", "--config", str(config), "--port", str(bridge_port)],
        bridge_port,
        tmp / "bridge.log",
        env=ENV,
    ).start()
    yield bridge, sandbox, config
    bridge.stop()
    sandbox.stop()


def order_from(
    order_id: int, email: str | None, lines: list[tuple[str | None, int, str]] | None = None
) -> bytes:
    order = shopify_order(order_id, lines=lines)
    order["email"] = email
    if email:
        order["customer"] = {
            "id": order_id * 10,
            "email": email,
            "first_name": "Pat",
            "last_name": "Lee",
        }
    return body(order)


def invoice(sandbox: Process, invoice_id: int) -> dict[str, Any]:
    """The sandbox's invoice, money read exactly."""
    answer = httpx.get(f"{sandbox.url}{API}/invoices/{invoice_id}", headers=AUTH)
    found: dict[str, Any] = loads(answer.content)["data"]
    return found


def test_a_seeded_contacts_email_lands_on_its_company(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, _ = services
    answer = sign_and_post(bridge.url, "shopify", order_from(9001, "Buyer@Acme.example"), SECRET)
    assert answer.status_code == 201, answer.text
    assert invoice(sandbox, answer.json()["invoice_id"])["customer"]["id"] == 7


def test_a_guest_lands_on_the_default_company(services: tuple[Process, Process, Path]) -> None:
    bridge, sandbox, _ = services
    answer = sign_and_post(bridge.url, "shopify", order_from(9002, None), SECRET)
    assert answer.status_code == 201, answer.text
    assert invoice(sandbox, answer.json()["invoice_id"])["customer"]["id"] == 1


def test_an_alternate_sku_resolves_to_its_product(services: tuple[Process, Process, Path]) -> None:
    bridge, sandbox, _ = services
    payload = order_from(9003, None, [("TEE-BLACK-M", 1, "20.00")])
    answer = sign_and_post(bridge.url, "shopify", payload, SECRET)
    assert answer.status_code == 201, answer.text
    created = invoice(sandbox, answer.json()["invoice_id"])
    assert [item["product_id"] for item in created["items"]] == [100]
    assert created["total"] == Decimal(loads(payload)["total_price"])


def test_twenty_concurrent_orders_from_one_new_email_make_one_company(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, _ = services
    email = "first-time@buyer.example"
    payloads = [order_from(9100 + n, email) for n in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda p: sign_and_post(bridge.url, "shopify", p, SECRET), payloads)
        )
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers]
    companies = httpx.get(
        f"{sandbox.url}{API}/companies", params={"per_page": 100}, headers=AUTH
    ).json()["data"]
    created = [c for c in companies if c["id"] not in (1, 7)]
    assert len(created) == 1, companies
    contacts = httpx.get(
        f"{sandbox.url}{API}/contacts", params={"email[eq]": email}, headers=AUTH
    ).json()["data"]
    assert len(contacts) == 1 and int(contacts[0]["company_id"]) == created[0]["id"]
    numbers = {f"#{1000 + (9100 + n) % 100000}" for n in range(20)}
    on_company = [
        i for i in sandbox_invoices(sandbox.url) if i["customer"]["id"] == created[0]["id"]
    ]
    assert {i["customer_po_number"] for i in on_company} == numbers and len(on_company) == 20
    total_of = {loads(p)["name"]: Decimal(loads(p)["total_price"]) for p in payloads}
    assert all(i["total"] == total_of[i["customer_po_number"]] for i in on_company)


def test_an_unknown_sku_is_dead_until_the_product_exists_then_replays(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, config = services
    payload = order_from(9200, None, [("GLOVE-L", 1, "30.00"), ("HAT-S", 2, "5.00")])
    dead = sign_and_post(bridge.url, "shopify", payload, SECRET).json()
    assert dead["status"] == "dead" and "unknown SKU GLOVE-L, HAT-S" in dead["reason"]
    for sku in ("GLOVE-L", "HAT-S"):
        added = httpx.patch(
            f"{sandbox.url}{API}/products", json={"sku": sku, "name": sku}, headers=AUTH
        )
        assert added.status_code in (200, 201), added.text
    replay = run_cli("events", "replay", str(dead["event_id"]), "--config", str(config), env=ENV)
    assert replay.returncode == 0, replay.stderr
    headers = {"Authorization": f"Bearer {ADMIN}"}
    event: dict[str, Any] = {}
    for _ in range(100):
        event = httpx.get(f"{bridge.url}/events/{dead['event_id']}", headers=headers).json()
        if event["status"] == "created":
            break
        time.sleep(0.1)
    assert event["status"] == "created", event
    skus = [item["sku"] for item in invoice(sandbox, event["invoice_id"])["items"]]
    assert skus == ["GLOVE-L", "HAT-S"]


def test_map_shows_references_and_resolves_on_request(
    services: tuple[Process, Process, Path], tmp_path: Path
) -> None:
    _, _, config = services
    order = tmp_path / "order.json"
    order.write_bytes(order_from(9300, "buyer@acme.example", [("TEE-BLACK-M", 1, "20.00")]))
    offline = run_cli("map", "shopify", str(order), "--config", str(config), env=ENV)
    assert offline.returncode == 0, offline.stderr
    printed = json.loads(offline.stdout)
    assert printed["references"]["customer"]["email"] == "buyer@acme.example"
    assert printed["references"]["skus"] == ["TEE-BLACK-M"]
    assert (
        "company_id" not in printed["request"]
        and "product_id" not in printed["request"]["items"][0]
    )
    resolved = run_cli("map", "shopify", str(order), "--resolve", "--config", str(config), env=ENV)
    assert resolved.returncode == 0, resolved.stderr
    request = json.loads(resolved.stdout)["request"]
    assert request["company_id"] == 7 and request["items"][0]["product_id"] == 100
