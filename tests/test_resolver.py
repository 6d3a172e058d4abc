"""Resolution against the sandbox's Luminous API: companies per customer, products per SKU."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.invoice import InvoiceRequest
from bridge.luminous import LuminousClient
from bridge.mapping import CustomerRef, Draft, InvoiceOptions
from bridge.resolver import KeyLocks, LocalLocks, ResolutionError, Resolver, TTLCache
from bridge.sandbox import Sandbox, SandboxSettings, create_sandbox_app
from bridge.store.postgres import PostgresStore
from tests.test_store import scratch_schema

pytestmark = pytest.mark.anyio

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
            "custom_fields": {"Shopify Customer ID": "555"},
        },
    ],
}


SHOP = "shopify/acme.myshopify.com"


class Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        # An in-process app answers without ever yielding; a network round trip lets other
        # tasks run, which is what the single-flight tests need.
        await asyncio.sleep(0.001)
        return await self.inner.handle_async_request(request)


class Rig:
    def __init__(self, sandbox: Sandbox, transport: Counting, resolver: Resolver) -> None:
        self.sandbox = sandbox
        self.transport = transport
        self.resolver = resolver

    async def resolve(
        self, order: Draft, options: InvoiceOptions, namespace: str = SHOP
    ) -> InvoiceRequest:
        return await self.resolver.resolve(order, options, namespace=namespace)

    def changes(self) -> list[str]:
        """The requests made so far that could have changed Luminous."""
        return [call for call in self.transport.calls if not call.startswith("GET ")]

    def counts(self) -> tuple[int, int, int]:
        return len(self.sandbox.companies), len(self.sandbox.contacts), len(self.sandbox.products)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    app = create_sandbox_app(SandboxSettings(seed=seed))
    transport = Counting(httpx.ASGITransport(app=app))
    client = LuminousClient(
        "http://sandbox/external/api/v1", "t", transport=transport, max_requests_per_second=None
    )
    yield Rig(app.state.sandbox, transport, Resolver(client))
    await client.aclose()


def draft(customer: CustomerRef | None, *skus: str | None) -> Draft:
    items = [
        {"quantity": 1, "unit_price": Decimal("10.00"), "sku": sku} for sku in skus or ("MUG-WHT",)
    ]
    request = InvoiceRequest(order_date="2026-11-20", payment_terms="Net 30", items=items)
    return Draft(
        order_id="1", request=request, expected_total=Decimal(10 * len(items)), customer=customer
    )


MATCH = InvoiceOptions(company="match", default_company_id=1)


async def test_fixed_company(rig: Rig) -> None:
    request = await rig.resolve(draft(None), InvoiceOptions(company_id=7))
    assert request.company_id == 7 and request.items[0].product_id == 101
    with pytest.raises(ResolutionError, match="company_id is not set"):
        await rig.resolve(draft(None), InvoiceOptions())


async def test_a_known_email_lands_on_its_contacts_company(rig: Rig) -> None:
    customer = CustomerRef(email="Buyer@Acme.example")
    assert (await rig.resolve(draft(customer), MATCH)).company_id == 7
    calls = len(rig.transport.calls)
    assert (await rig.resolve(draft(customer), MATCH)).company_id == 7
    assert len(rig.transport.calls) == calls  # cached: no second lookup


async def test_the_custom_field_is_looked_up_first(rig: Rig) -> None:
    options = InvoiceOptions(company="match", company_custom_field="Shopify Customer ID")
    customer = CustomerRef(email="someone-else@example.com", customer_id="555")
    assert (await rig.resolve(draft(customer), options)).company_id == 7


async def test_guests_use_the_default_company(rig: Rig) -> None:
    assert (await rig.resolve(draft(None), MATCH)).company_id == 1
    with pytest.raises(ResolutionError, match=r"guest order and no options\.default_company_id"):
        await rig.resolve(draft(None), InvoiceOptions(company="match"))


async def test_a_new_customer_gets_one_company_and_contact(rig: Rig) -> None:
    options = InvoiceOptions(company="match", company_custom_field="Shopify Customer ID")
    customer = CustomerRef(
        email="new@shop.example", customer_id="901", first_name="Nia", last_name="New"
    )
    company_id = (await rig.resolve(draft(customer), options)).company_id
    company = rig.sandbox.companies[company_id]
    assert company["name"] == "Nia New"
    assert company["custom_fields"] == {"Shopify Customer ID": "901"}
    contacts = [c for c in rig.sandbox.contacts.values() if c["email"] == "new@shop.example"]
    assert len(contacts) == 1 and int(contacts[0]["company_id"]) == company_id


async def test_unmatched_customers_fall_back_when_not_creating(rig: Rig) -> None:
    options = InvoiceOptions(company="match", create_companies=False, default_company_id=1)
    customer = CustomerRef(email="stranger@example.com")
    assert (await rig.resolve(draft(customer), options)).company_id == 1
    assert len(rig.sandbox.companies) == 2


async def test_twenty_simultaneous_orders_create_one_company(rig: Rig) -> None:
    customer = CustomerRef(email="rush@example.com", first_name="Rush")
    results = await asyncio.gather(*(rig.resolve(draft(customer), MATCH) for _ in range(20)))
    assert len({request.company_id for request in results}) == 1
    assert len(rig.sandbox.companies) == 3
    assert rig.transport.calls.count("POST /external/api/v1/companies") == 1
    assert rig.transport.calls.count("POST /external/api/v1/contacts") == 1
    # One lookup for the twenty plans, one more just before the company is created.
    assert rig.transport.calls.count("GET /external/api/v1/contacts") == 2


async def test_skus_and_alternate_skus_resolve_to_products(rig: Rig) -> None:
    request = await rig.resolve(draft(None, "TEE-BLACK-M", "MUG-WHT"), InvoiceOptions(company_id=1))
    assert [(item.sku, item.product_id) for item in request.items] == [
        ("TEE-BLACK-M", 100),
        ("MUG-WHT", 101),
    ]


async def test_unknown_skus_are_all_named(rig: Rig) -> None:
    with pytest.raises(ResolutionError) as caught:
        await rig.resolve(draft(None, "NOPE-1", "MUG-WHT", "NOPE-2"), InvoiceOptions(company_id=1))
    assert "NOPE-1, NOPE-2" in str(caught.value)


async def test_unknown_skus_are_created_when_configured(rig: Rig) -> None:
    options = InvoiceOptions(company_id=1, unknown_sku="create")
    request = await rig.resolve(draft(None, "BRAND-NEW"), options)
    product = rig.sandbox.products[request.items[0].product_id]
    assert product["sku"] == "BRAND-NEW"


async def test_lines_without_sku_use_the_fallback(rig: Rig) -> None:
    with pytest.raises(ResolutionError, match="line 1 has no SKU"):
        await rig.resolve(draft(None, "MUG-WHT", None), InvoiceOptions(company_id=1))
    options = InvoiceOptions(company_id=1, fallback_sku="MUG-WHT")
    request = await rig.resolve(draft(None, "TEE-BLK-M", None), options)
    assert [item.product_id for item in request.items] == [100, 101]


def test_ttl_cache_expires_and_stays_bounded() -> None:
    now = [0.0]
    cache: TTLCache[int] = TTLCache(size=2, ttl=10, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2
    now[0] = 11
    assert cache.get("a") is None


async def test_local_locks_serialise_one_key_only() -> None:
    locks = LocalLocks()
    order: list[Any] = []

    async def hold(key: str, tag: str) -> None:
        async with locks.hold(key):
            order.append(("in", tag))
            await asyncio.sleep(0.01)
            order.append(("out", tag))

    await asyncio.gather(hold("k", "1"), hold("k", "2"), hold("j", "3"))
    first_two = [tag for step, tag in order if tag in "12"]
    assert first_two in (["1", "1", "2", "2"], ["2", "2", "1", "1"])
    assert locks._locks == {}


async def test_local_locks_take_several_keys_in_one_order() -> None:
    locks = LocalLocks()
    inside: list[str] = []

    async def hold(tag: str, *keys: str) -> None:
        async with locks.hold(*keys):
            inside.append(tag)
            assert len(inside) == 1, f"{inside} hold a key at once"
            await asyncio.sleep(0.01)
            inside.remove(tag)

    # Named in opposite orders, each pair of holders shares a key: taken as named, the
    # first two would each hold one key and wait for the other's.
    await asyncio.wait_for(
        asyncio.gather(hold("1", "a", "b"), hold("2", "b", "a"), hold("3", "b", "b")), 2
    )
    assert locks._locks == {}


# -- plan, then apply: nothing is created for an order that cannot be sent -----------------

NEW_CUSTOMER = CustomerRef(
    email="New@Shop.example", customer_id="901", first_name="Nia", last_name="New"
)
BY_FIELD = InvoiceOptions(company="match", company_custom_field="Shopify Customer ID")


async def test_a_plan_only_reads_and_names_what_it_would_create(rig: Rig) -> None:
    before = rig.counts()
    options = BY_FIELD.model_copy(update={"unknown_sku": "create"})
    plan = await rig.resolver.plan(
        draft(NEW_CUSTOMER, "MUG-WHT", "BRAND-NEW"), options, namespace=SHOP
    )
    assert rig.changes() == [] and rig.counts() == before
    assert plan.creations() == {
        "company": {"name": "Nia New", "custom_fields": {"Shopify Customer ID": "901"}},
        "contact": {"first_name": "Nia", "last_name": "New", "email": "new@shop.example"},
        "products": [{"sku": "BRAND-NEW", "name": "BRAND-NEW"}],
    }
    assert plan.request.company_id is None
    assert [item.product_id for item in plan.request.items] == [101, None]

    request = await rig.resolver.apply(plan)
    assert rig.counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
    company = rig.sandbox.companies[request.company_id]
    assert company["custom_fields"] == {"Shopify Customer ID": "901"}
    product = rig.sandbox.products[request.items[1].product_id]
    assert product["sku"] == "BRAND-NEW" and request.items[0].product_id == 101
    contact = rig.sandbox.state.contact_by_email("new@shop.example")
    assert contact is not None and contact["company_id"] == request.company_id


async def test_an_unknown_sku_leaves_no_company_or_contact_behind(rig: Rig) -> None:
    before = rig.counts()
    with pytest.raises(ResolutionError, match="unknown SKU NOPE-1"):
        await rig.resolve(draft(NEW_CUSTOMER, "MUG-WHT", "NOPE-1"), BY_FIELD)
    assert rig.changes() == [] and rig.counts() == before


async def test_a_company_luminous_would_refuse_is_not_attempted(rig: Rig) -> None:
    customer = CustomerRef(email="long@shop.example", name="x" * 256)
    with pytest.raises(ResolutionError, match=r"cannot create a Luminous company.*name"):
        await rig.resolve(draft(customer), MATCH)
    assert rig.changes() == []


# -- customers are per source and shop -----------------------------------------------------


async def test_one_customer_id_from_two_sources_is_two_companies(rig: Rig) -> None:
    shopify = CustomerRef(email="pat@shop.example", customer_id="123", first_name="Pat")
    woo = CustomerRef(email="sam@woo.example", customer_id="123", first_name="Sam")
    woo_options = InvoiceOptions(company="match", company_custom_field="WooCommerce Customer ID")
    first = await rig.resolve(draft(shopify), BY_FIELD, namespace="shopify/acme.myshopify.com")
    second = await rig.resolve(draft(woo), woo_options, namespace="woocommerce/https://b.example")
    assert first.company_id != second.company_id
    assert rig.sandbox.companies[second.company_id]["name"] == "Sam"
    assert rig.sandbox.companies[second.company_id]["custom_fields"] == {
        "WooCommerce Customer ID": "123"
    }


async def test_the_cache_is_kept_per_namespace(rig: Rig) -> None:
    customer = CustomerRef(customer_id="555")
    options = BY_FIELD.model_copy(update={"create_companies": False, "default_company_id": 1})
    assert (await rig.resolve(draft(customer), options, namespace="shopify/a")).company_id == 7
    lookups = rig.transport.calls.count("GET /external/api/v1/companies")
    assert (await rig.resolve(draft(customer), options, namespace="shopify/a")).company_id == 7
    assert rig.transport.calls.count("GET /external/api/v1/companies") == lookups
    await rig.resolve(draft(customer), options, namespace="shopify/b")
    assert rig.transport.calls.count("GET /external/api/v1/companies") == lookups + 1


# -- contacts in Luminous's nested shape -------------------------------------------------


async def test_a_contact_naming_its_company_only_nested_is_matched(rig: Rig) -> None:
    contact = rig.sandbox.contacts[70]
    del contact["company_id"], contact["companies"]  # answered as {"company": {"id", "name"}}
    assert contact["company"] == {"id": 7, "name": "Acme Retail"}
    before = rig.counts()
    assert (
        await rig.resolve(draft(CustomerRef(email="buyer@acme.example")), MATCH)
    ).company_id == 7
    assert rig.changes() == [] and rig.counts() == before


async def test_a_contact_with_no_company_at_all_stops_resolution(rig: Rig) -> None:
    contact = rig.sandbox.contacts[70]
    del contact["company_id"], contact["companies"], contact["company"]
    with pytest.raises(ResolutionError, match=r"contact 70 .* names no company"):
        await rig.resolve(draft(CustomerRef(email="buyer@acme.example")), MATCH)
    assert rig.changes() == []


# -- one creation per customer, also across replicas -------------------------------------


@pytest.fixture(params=["in-process", "postgres"])
async def shared_locks(request: pytest.FixtureRequest) -> AsyncIterator[list[KeyLocks]]:
    """Locks two replicas share: one lock table in-process, or advisory locks in PostgreSQL."""
    if request.param == "in-process":
        locks = LocalLocks()
        yield [locks, locks]
        return
    with scratch_schema() as url:
        stores = [PostgresStore(url), PostgresStore(url)]
        try:
            yield [store.key_locks() for store in stores]
        finally:
            for store in stores:
                await store.close()


async def test_replicas_with_their_own_caches_create_one_company(
    rig: Rig, shared_locks: list[KeyLocks]
) -> None:
    replicas = [Resolver(rig.resolver.client, locks=locks) for locks in shared_locks]
    customer = CustomerRef(email="twice@example.com", first_name="Twice")
    results = await asyncio.gather(
        *(
            replica.resolve(draft(customer), MATCH, namespace=SHOP)
            for _ in range(10)
            for replica in replicas
        )
    )
    assert len({request.company_id for request in results}) == 1
    assert rig.transport.calls.count("POST /external/api/v1/companies") == 1
    assert rig.transport.calls.count("POST /external/api/v1/contacts") == 1


@pytest.mark.parametrize("options", [MATCH, BY_FIELD], ids=["by e-mail", "by custom field"])
async def test_one_new_email_from_two_sources_at_once_makes_one_company(
    rig: Rig, shared_locks: list[KeyLocks], options: InvoiceOptions
) -> None:
    # Luminous refuses a second contact with one e-mail, whichever source the order came from.
    replicas = [Resolver(rig.resolver.client, locks=locks) for locks in shared_locks]
    customer = CustomerRef(email="Both@Example.com", customer_id="77", first_name="Bo")
    sources = (SHOP, "woocommerce/shop.example")
    results = await asyncio.gather(
        *(
            replica.resolve(draft(customer), options, namespace=namespace)
            for _ in range(3)
            for replica in replicas
            for namespace in sources
        )
    )
    assert len({request.company_id for request in results}) == 1
    assert rig.transport.calls.count("POST /external/api/v1/companies") == 1
    assert rig.transport.calls.count("POST /external/api/v1/contacts") == 1
