"""The sandbox's companies, contacts, products and invoice tags, over its HTTP API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import wire
from bridge.sandbox import API_PREFIX, Sandbox, SandboxSettings, create_sandbox_app
from bridge.sandbox.rules import Invalid

AUTH = {"Authorization": "Bearer test-token"}
SEED = {
    "products": [
        {"id": 10, "sku": "MUG-RED", "name": "Red mug", "alternate_skus": ["SHOP-MUG-R"]},
    ],
    "companies": [
        {
            "id": 42,
            "name": "Acme Retail",
            "contacts": [
                {"id": 7, "email": "Ops@Acme.test", "first_name": "Ada", "last_name": "Byron"}
            ],
            "custom_fields": {"Shopify Customer ID": "1001"},
        },
        {"id": 43, "name": "Beta Stores", "custom_fields": {"Shopify Customer ID": 1002}},
    ],
}


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    return path


@asynccontextmanager
async def serving(settings: SandboxSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Sandbox]]:
    app = create_sandbox_app(settings)
    transport = httpx.ASGITransport(app=app)
    base_url = f"http://sandbox.test{API_PREFIX}"
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=AUTH) as client:
        yield client, app.state.sandbox


def without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """A body with the fields a case sets to None left out."""
    return {key: value for key, value in body.items() if value is not None}


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


# ---- companies -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_company_is_created_in_the_documented_shape(seed_file: Path) -> None:
    body = {
        "name": "Ada Lovelace",
        "address": "123 Main St",
        "address_line_2": "Suite 500",
        "city": "Austin",
        "state": "TX",
        "postal_code": "78701",
        "country": "USA",
        "phone": " 555-123-4567 ",
        "tags": ["web", "web"],
        "custom_fields": {"Shopify Customer ID": "207119551", "Tier": 2},
        "client_type": {"name": "Retail"},
        "shipping_addresses": [{"address_1": "456 Blvd", "zip": "78745", "is_default": True}],
    }
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        created = await client.post("/companies", json=body)
        fetched = await client.get("/companies/44")
    assert created.status_code == 201
    company = created.json()["data"]
    assert company["id"] == 44  # after the seeded ones
    assert fetched.json()["data"] == company
    assert sandbox.companies[44] == company
    assert company["phone"] == "555-123-4567"
    assert company["full_address"] == "123 Main St, Suite 500, Austin, TX 78701, USA"
    assert company["custom_fields"] == {"Shopify Customer ID": "207119551", "Tier": 2}
    assert [tag["name"] for tag in company["tags"]] == ["web"]
    assert company["type"] == "Retail"
    [address] = company["shipping_addresses"]
    assert (address["address_1"], address["zip"], address["is_default"]) == (
        "456 Blvd",
        "78745",
        True,
    )
    assert address["company_id"] == 44
    assert company["status"] == "active"
    assert company["created_at"].endswith("Z")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("changes", "path", "rule"),
    [
        ({"name": None}, "name", "The name field is required."),
        ({"name": "  "}, "name", "The name field is required."),
        ({"name": 5}, "name", "The name field must be a string."),
        ({"name": "x" * 256}, "name", "must not be greater than 255 characters"),
        ({"address": 12}, "address", "The address field must be a string."),
        ({"zip": "78701"}, "zip", "unknown field"),
        ({"address_1": "1 Way"}, "address_1", "unknown field"),
        ({"custom_fields": ["x"]}, "custom_fields", "must be an object"),
        ({"custom_fields": {"A": {"b": 1}}}, "custom_fields.A", "a string, a number"),
        ({"tax_exempt": "yes"}, "tax_exempt", "must be true or false"),
        ({"due_date_days": -1}, "due_date_days", "must be at least 0"),
        ({"parent_company_id": 99}, "parent_company_id", "The selected parent company id"),
        ({"tags": "web"}, "tags", "must be an array"),
        ({"client_type": {}}, "client_type", "must have an id or a name"),
        ({"shipping_addresses": [{"address": "x"}]}, "shipping_addresses.0.address", "unknown"),
    ],
)
async def test_company_fields_are_validated(changes: dict[str, Any], path: str, rule: str) -> None:
    body = without_nulls({"name": "Acme", **changes})
    async with serving(SandboxSettings()) as (client, sandbox):
        response = await client.post("/companies", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert rule in errors[path][0], errors
    assert list(sandbox.companies) == [Sandbox.DEFAULT_COMPANY_ID]


@pytest.mark.anyio
async def test_companies_are_found_by_name_or_custom_field(seed_file: Path) -> None:
    label = "custom_fields.Shopify Customer ID[eq]"
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        await client.post("/companies", json={"name": "Beta Stores"})
        by_name = await client.get("/companies", params={"name[eq]": "Beta Stores"})
        by_field = await client.get("/companies", params={label: "1001"})
        by_number = await client.get("/companies", params={label: "1002"})
        # Spaces as %20, as the bridge's client sends them, and as + (form encoding).
        encoded = await client.get(
            "/companies?custom_fields.Shopify%20Customer%20ID%5Beq%5D=1001&per_page=100"
        )
        plus = await client.get("/companies?custom_fields.Shopify+Customer+ID%5Beq%5D=1001")
        unset = await client.get(
            "/companies", params={"custom_fields.Shopify Customer ID[notset]": ""}
        )
        paged = await client.get("/companies", params={"per_page": 1, "page": 2})
    assert ids(by_name) == [43, 44]
    assert ids(by_field) == ids(encoded) == ids(plus) == [42]
    assert ids(by_number) == [43]
    assert ids(unset) == [44]
    assert ids(paged) == [43]
    assert paged.json()["meta"] == {
        "current_page": 2,
        "from": 2,
        "last_page": 3,
        "per_page": 1,
        "to": 2,
        "total": 3,
    }


# ---- contacts ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_contact_is_created_in_the_documented_shape(seed_file: Path) -> None:
    body = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@navy.test",
        "company_id": 43,
        "phone_1": "555-0100",
        "is_primary": 1,
        "tags": ["vip"],
    }
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        created = await client.post("/contacts", json=body)
        fetched = await client.get("/contacts/8")
        missing = await client.get("/contacts/99")
    assert created.status_code == 201
    contact = created.json()["data"]
    assert fetched.json()["data"] == contact == sandbox.contacts[8]
    assert contact["id"] == 8  # after the seeded contact 7
    assert contact["full_name"] == "Grace Hopper"
    assert (contact["company_id"], contact["company"]) == (43, {"id": 43, "name": "Beta Stores"})
    assert contact["companies"] == [{"id": 43, "name": "Beta Stores"}]
    assert (contact["phone"], contact["is_primary"], contact["status"]) == (
        "555-0100",
        True,
        "active",
    )
    assert [tag["name"] for tag in contact["tags"]] == ["vip"]
    assert contact["has_portal_login"] is False
    assert missing.status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("changes", "path", "rule"),
    [
        ({"first_name": None}, "first_name", "The first name field is required."),
        ({"company_id": None}, "company_id", "required when company ids is not present"),
        ({"company_id": "42"}, "company_id", "must be an integer"),
        ({"company_id": 99}, "company_id", "The selected company id is invalid."),
        ({"company_ids": [42]}, "company_id", "prohibits company ids from being present"),
        ({"company_id": None, "company_ids": [42, 99]}, "company_ids.1", "is invalid"),
        ({"company_id": None, "company_ids": []}, "company_ids", "at least 1 item"),
        ({"email": "not an email"}, "email", "The email field must be a valid email address."),
        ({"email": "ops@acme.test"}, "email", "The email has already been taken."),
        ({"email": "OPS@ACME.TEST"}, "email", "The email has already been taken."),
        ({"password": "short", "email": "p@q.r"}, "password", "at least 8 characters"),
        ({"password": "long enough"}, "email", "required when password is present"),
        ({"is_primary": "yes"}, "is_primary", "must be true or false"),
        ({"company": {"id": 42}}, "company", "unknown field"),
    ],
)
async def test_contact_fields_are_validated(
    seed_file: Path, changes: dict[str, Any], path: str, rule: str
) -> None:
    body = without_nulls({"first_name": "Ada", "company_id": 42, **changes})
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        response = await client.post("/contacts", json=body)
    assert response.status_code == 422, response.text
    assert rule in response.json()["errors"][path][0]
    assert list(sandbox.contacts) == [7]


@pytest.mark.anyio
async def test_a_contact_may_belong_to_several_companies(seed_file: Path) -> None:
    body = {"first_name": "Ada", "company_ids": [43, 42], "email": "ada@multi.test"}
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        created = await client.post("/contacts", json=body)
        of_acme = await client.get("/companies/42/contacts")
        of_beta = await client.get("/companies/43/contacts")
        by_company = await client.get("/contacts", params={"company_id[eq]": "42"})
    assert created.json()["data"]["company_id"] == 43
    assert ids(of_acme) == [7, 8]
    assert ids(of_beta) == [8]
    assert ids(by_company) == [7, 8]


@pytest.mark.anyio
async def test_contacts_are_found_by_email_whatever_its_case(seed_file: Path) -> None:
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        exact = await client.get("/contacts", params={"email[eq]": "Ops@Acme.test"})
        other_case = await client.get("/contacts", params={"email[eq]": "ops@ACME.test"})
        plain = await client.get("/contacts", params={"email": " OPS@acme.test "})
        other = await client.get("/contacts", params={"email[eq]": "ops@acme.test.evil"})
        by_first_name = await client.get("/contacts", params={"first_name[eq]": "ada"})
    assert ids(exact) == ids(other_case) == ids(plain) == [7]
    assert ids(other) == []
    assert ids(by_first_name) == []  # only e-mail addresses compare without case
    seeded = exact.json()["data"][0]
    assert seeded["email"] == "Ops@Acme.test"
    assert seeded["full_name"] == "Ada Byron"
    assert seeded["company"] == {"id": 42, "name": "Acme Retail"}


@pytest.mark.anyio
async def test_a_companys_contacts_page_with_limit(seed_file: Path) -> None:
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        for n in range(3):
            sandbox.create_contact(
                {"first_name": f"C{n}", "email": f"c{n}@beta.test", "company_id": 43}
            )
        page = await client.get("/companies/43/contacts", params={"limit": 2, "page": 2})
        by_email = await client.get("/companies/43/contacts", params={"email": "C1@beta.test"})
        elsewhere = await client.get("/companies/42/contacts", params={"email": "c1@beta.test"})
        too_many = await client.get("/companies/43/contacts", params={"limit": 101})
        too_few = await client.get("/companies/43/contacts", params={"limit": 0})
        unknown = await client.get("/companies/99/contacts")
    assert ids(page) == [10]
    assert page.json()["meta"]["per_page"] == 2
    assert page.json()["meta"]["total"] == 3
    assert ids(by_email) == [9]
    assert ids(elsewhere) == []
    assert too_many.json()["errors"] == {"limit": ["The limit field must not be greater than 100."]}
    assert too_few.json()["errors"] == {"limit": ["The limit field must be at least 1."]}
    assert unknown.status_code == 404


@pytest.mark.anyio
async def test_a_contact_kept_in_the_nested_shape_is_served_and_counted_as_it_is(
    tmp_path: Path, seed_file: Path
) -> None:
    # Luminous's own CLI reads contacts that name their company only as `company: {id, name}`.
    nested = {"id": 30, "email": "nested@beta.test", "first_name": "Nell"}
    nested["company"] = {"id": 43, "name": "Beta Stores"}
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"format": 1, "contacts": [nested]}))
    invoice = {
        "company_id": 43,
        "order_date": "2024-05-01",
        "payment_terms": "Net 30",
        "items": [{"quantity": 1, "unit_price": 5, "sku": "MUG-RED"}],
    }
    async with serving(SandboxSettings(seed=seed_file, state=state)) as (client, sandbox):
        served = await client.get("/contacts", params={"email[eq]": "nested@beta.test"})
        of_beta = await client.get("/companies/43/contacts")
        by_company = await client.get("/contacts", params={"company_id[eq]": "43"})
        sandbox.create_invoice(invoice)
        shown = await client.get("/invoices/1")
    assert served.json()["data"] == [nested]
    assert ids(of_beta) == ids(by_company) == [30]
    assert shown.json()["data"]["customer"]["email"] == "nested@beta.test"


def test_seeded_contacts_must_have_distinct_emails(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    contacts = [
        {"id": 1, "email": "a@b.test", "first_name": "A"},
        {"id": 2, "email": "A@B.test", "first_name": "B"},
    ]
    path.write_text(json.dumps({"companies": [{"id": 1, "name": "X", "contacts": contacts}]}))
    with pytest.raises(ValueError, match=r"contacts: e-mail 'a@b\.test' appears more than once"):
        Sandbox(SandboxSettings(seed=path))


# ---- products ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_upsert_is_keyed_by_main_sku_and_found_by_any_sku(seed_file: Path) -> None:
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        created = await client.patch("/products", json={"sku": "CAP-1", "name": "Cap"})
        again = await client.patch("/products", json={"sku": "CAP-1", "name": "Blue cap"})
        by_alternate = await client.patch("/products", json={"sku": "SHOP-MUG-R", "name": "x"})
        found = await client.get("/products", params={"sku[eq]": "CAP-1"})
        alternate = await client.get("/products", params={"sku[eq]": "SHOP-MUG-R"})
    assert (created.status_code, again.status_code) == (201, 200)
    assert created.json()["data"]["id"] == again.json()["data"]["id"] == 11
    assert again.json()["data"]["name"] == "Blue cap"
    assert again.json()["data"]["alternate_skus"] == []
    # An alternate SKU is another product's: upserting it would take it, so it is refused.
    assert by_alternate.json()["errors"] == {"sku": ["The sku has already been taken."]}
    assert sandbox.products[10]["name"] == "Red mug"
    assert ids(found) == [11]
    assert ids(alternate) == [10]
    assert alternate.json()["data"][0]["alternate_skus"][0]["sku"] == "SHOP-MUG-R"


# ---- invoice tags --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_attached_tags_show_on_the_invoice(seed_file: Path) -> None:
    invoice = {
        "company_id": 42,
        "order_date": "2024-05-01",
        "payment_terms": "Net 30",
        "items": [{"quantity": 1, "unit_price": 5, "sku": "MUG-RED"}],
        "tags": ["web"],
    }
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        sandbox.create_invoice(invoice)
        attached = await client.post("/invoices/1/tags", json={"tags": ["shopify", "web"]})
        shown = await client.get("/invoices/1")
        listed = await client.get("/invoices/1/tags")
    assert attached.status_code == 200
    body = attached.json()
    assert body["message"] == "Tags attached successfully"
    assert [set(tag) for tag in body["tags"]] == [
        {"id", "name", "description", "icon", "color"}
    ] * 2
    assert [tag["name"] for tag in body["tags"]] == ["web", "shopify"]
    assert shown.json()["data"]["tags"] == body["tags"]
    assert listed.json()["data"] == body["tags"]
    assert shown.json()["data"]["customer"]["email"] == "Ops@Acme.test"


# ---- state ---------------------------------------------------------------------------------


def test_companies_contacts_and_products_survive_a_restart(tmp_path: Path, seed_file: Path) -> None:
    path = tmp_path / "state.json"
    settings = SandboxSettings(seed=seed_file, state=path)
    first = Sandbox(settings)
    company = first.create_company({"name": "Kept", "custom_fields": {"Shopify Customer ID": "9"}})
    contact = first.create_contact({"first_name": "K", "email": "k@kept.test", "company_id": 44})

    second = Sandbox(settings)
    assert second.companies[44] == company
    assert second.contacts[8] == contact
    assert wire.loads(path.read_bytes())["contacts"][1] == contact
    # The e-mail stays taken and the counters go on from where they were.
    with pytest.raises(Invalid) as taken:
        second.create_contact({"first_name": "K", "email": "K@KEPT.test", "company_id": 44})
    assert taken.value.errors == {"email": ["The email has already been taken."]}
    assert second.create_company({"name": "Next"})["id"] == 45
    assert second.create_contact({"first_name": "N", "company_id": 45})["id"] == 9
