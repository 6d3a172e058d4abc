"""Resolution over real sockets: the bridge matches customers to Luminous companies and SKUs
to products in a separately running sandbox, as the resolution issue's checks describe, and
creates nothing in Luminous for an order it cannot send."""

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
from tests.conftest import ROOT
from tests.harness import Process, free_port, run_cli, sandbox_invoices, sign_and_post
from tests.orders import body, shopify_order

SECRET = "resolution-secret"
WOO_SECRET = "resolution-woo-secret"
ADMIN = "resolution-admin"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
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
        {"id": 8, "name": "Nested Goods"},
    ],
}
# The sandbox serves the records of its state file as they are: this contact names its
# company only as `company: {id, name}`, the shape Luminous's own CLI reads.
NESTED_CONTACT = {
    "id": 80,
    "status": "active",
    "first_name": "Nell",
    "last_name": "Nested",
    "full_name": "Nell Nested",
    "email": "nested@buyer.example",
    "company": {"id": 8, "name": "Nested Goods"},
}
API = "/external/api/v1"
AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process, Path]]:
    tmp = tmp_path_factory.mktemp("resolution")
    seed = tmp / "seed.json"
    seed.write_text(json.dumps(SEED))
    state = tmp / "sandbox-state.json"
    state.write_text(json.dumps({"format": 1, "contacts": [NESTED_CONTACT]}))
    sandbox_port, bridge_port = free_port(), free_port()
    sandbox = Process(
        [
            *("sandbox", "--port", str(sandbox_port), "--latency", "100"),
            *("--seed", str(seed), "--state", str(state)),
        ],
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

[sources.outlet]                # a second Shopify store, its customers matched by ID
mapping = "shopify"
secret_env = "SHOPIFY_WEBHOOK_SECRET"
[sources.outlet.options]
company = "match"
company_custom_field = "Outlet Customer ID"

[sources.woocommerce]
[sources.woocommerce.options]
company = "match"
company_custom_field = "WooCommerce Customer ID"
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
    seeded = {company["id"] for company in SEED["companies"]}
    created = [c for c in companies if c["id"] not in seeded]
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
    assert "would_create" not in printed
    resolved = run_cli("map", "shopify", str(order), "--resolve", "--config", str(config), env=ENV)
    assert resolved.returncode == 0, resolved.stderr
    printed = json.loads(resolved.stdout)
    assert printed["request"]["company_id"] == 7
    assert printed["request"]["items"][0]["product_id"] == 100
    assert printed["would_create"] == {"company": None, "contact": None, "products": []}


def records(sandbox: Process, path: str) -> list[dict[str, Any]]:
    """One of the sandbox's lists, whole (this module keeps each under a page)."""
    answer = httpx.get(f"{sandbox.url}{API}{path}", params={"per_page": 100}, headers=AUTH)
    listed = answer.json()
    assert listed["meta"]["last_page"] == 1, path
    data: list[dict[str, Any]] = listed["data"]
    return data


def snapshot(sandbox: Process) -> dict[str, list[dict[str, Any]]]:
    """Everything the sandbox holds that resolving an order could change."""
    held = {path: records(sandbox, path) for path in ("/companies", "/contacts", "/products")}
    return {**held, "/invoices": sandbox_invoices(sandbox.url)}


# A source like the shop's, but creating products for unknown SKUs too.
CREATING_SOURCE = """
[sources.creating]
mapping = "shopify"
secret_env = "SHOPIFY_WEBHOOK_SECRET"
[sources.creating.options]
company = "match"
unknown_sku = "create"
"""


def test_map_resolve_only_reads_and_prints_what_it_would_create(
    services: tuple[Process, Process, Path], tmp_path: Path
) -> None:
    _, sandbox, config = services
    order = tmp_path / "order.json"
    lines = [("MUG-WHT", 1, "9.95"), ("NEW-SKU-1", 2, "3.00")]
    order.write_bytes(order_from(9800, "Fresh@Buyer.example", lines))
    creating = tmp_path / "creating.toml"
    creating.write_text(config.read_text() + CREATING_SOURCE)
    before = snapshot(sandbox)
    shown = run_cli("map", "creating", str(order), "--resolve", "--config", str(creating), env=ENV)
    assert shown.returncode == 0, shown.stderr
    assert snapshot(sandbox) == before
    printed = json.loads(shown.stdout)
    assert printed["would_create"] == {
        "company": {"name": "Pat Lee"},
        "contact": {"first_name": "Pat", "last_name": "Lee", "email": "fresh@buyer.example"},
        "products": [{"sku": "NEW-SKU-1", "name": "Product NEW-SKU-1"}],
    }
    request = printed["request"]
    assert "company_id" not in request
    assert [item.get("product_id") for item in request["items"]] == [101, None]

    failing = run_cli("map", "shopify", str(order), "--resolve", "--config", str(config), env=ENV)
    assert failing.returncode == 2 and failing.stdout == ""
    assert "not sendable: unknown SKU NEW-SKU-1" in failing.stderr
    assert snapshot(sandbox) == before


def test_an_order_dead_on_an_unknown_sku_leaves_no_company_or_contact(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, _ = services
    before = {path: records(sandbox, path) for path in ("/companies", "/contacts")}
    for n in range(3):
        lines = [("MUG-WHT", 1, "9.95"), ("NO-SUCH-SKU", 1, "4.00")]
        payload = order_from(9600 + n, f"newcomer-{n}@buyer.example", lines)
        dead = sign_and_post(bridge.url, "shopify", payload, SECRET).json()
        assert dead["status"] == "dead" and "unknown SKU NO-SUCH-SKU" in dead["reason"], dead
    assert {path: records(sandbox, path) for path in ("/companies", "/contacts")} == before


def test_a_contact_naming_its_company_only_nested_lands_on_that_company(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, _ = services
    served = httpx.get(f"{sandbox.url}{API}/contacts/80", headers=AUTH).json()["data"]
    assert "company_id" not in served and served["company"]["id"] == 8
    companies = records(sandbox, "/companies")
    answer = sign_and_post(bridge.url, "shopify", order_from(9500, "Nested@Buyer.example"), SECRET)
    assert answer.status_code == 201, answer.text
    assert invoice(sandbox, answer.json()["invoice_id"])["customer"]["id"] == 8
    assert records(sandbox, "/companies") == companies


def woo_order(
    customer_id: int, email: str, first_name: str, last_name: str, order_id: int | None = None
) -> dict[str, Any]:
    """The shipped WooCommerce example, placed by the given customer."""
    woo: dict[str, Any] = json.loads((ROOT / "examples" / "woocommerce-order.json").read_text())
    if order_id is not None:
        woo["id"] = woo["number"] = order_id
    woo["customer_id"] = customer_id
    woo["billing"].update(email=email, first_name=first_name, last_name=last_name)
    return woo


def post_woo(bridge: Process, woo: dict[str, Any]) -> httpx.Response:
    return sign_and_post(
        bridge.url,
        "woocommerce",
        json.dumps(woo).encode(),
        WOO_SECRET,
        scheme="woocommerce-hmac",
        topic="order.created",
        shop="https://shop.example/",
    )


def test_one_customer_id_from_two_sources_is_two_companies(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, _ = services
    outlet = shopify_order(9700)
    outlet["email"] = "pat@outlet.example"
    outlet["customer"] = {"id": 123, "email": "pat@outlet.example", "first_name": "Pat"}
    first = sign_and_post(bridge.url, "outlet", body(outlet), SECRET, shop="outlet.myshopify.com")
    assert first.status_code == 201, first.text
    second = post_woo(bridge, woo_order(123, "sam@woo.example", "Sam", "Woo"))
    assert second.status_code == 201, second.text
    outlet_company = invoice(sandbox, first.json()["invoice_id"])["customer"]["id"]
    woo_company = invoice(sandbox, second.json()["invoice_id"])["customer"]["id"]
    assert outlet_company != woo_company
    companies = {company["id"]: company for company in records(sandbox, "/companies")}
    assert companies[outlet_company]["custom_fields"] == {"Outlet Customer ID": "123"}
    assert companies[woo_company]["custom_fields"] == {"WooCommerce Customer ID": "123"}
    assert companies[woo_company]["name"] == "Sam Woo"


def test_one_new_email_from_two_sources_at_once_makes_one_company(
    services: tuple[Process, Process, Path],
) -> None:
    bridge, sandbox, _ = services
    email = "lee@both.example"
    posts = []
    for n in range(4):
        outlet = shopify_order(9800 + n)
        outlet["email"] = email
        outlet["customer"] = {"id": 4400 + n, "email": email, "first_name": "Lee"}
        posts.append(
            lambda o=outlet: sign_and_post(
                bridge.url, "outlet", body(o), SECRET, shop="outlet.myshopify.com"
            )
        )
        woo = woo_order(5500 + n, email, "Lee", "Both", order_id=9800 + n)
        posts.append(lambda w=woo: post_woo(bridge, w))
    with ThreadPoolExecutor(max_workers=len(posts)) as pool:
        answers = list(pool.map(lambda post: post(), posts))
    assert [a.status_code for a in answers] == [201] * len(posts), [a.text for a in answers]
    customers = {invoice(sandbox, a.json()["invoice_id"])["customer"]["id"] for a in answers}
    contacts = httpx.get(
        f"{sandbox.url}{API}/contacts", params={"email[eq]": email}, headers=AUTH
    ).json()["data"]
    assert len(contacts) == 1 and customers == {int(contacts[0]["company_id"])}, customers
