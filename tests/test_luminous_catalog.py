"""The client's company, contact, product and tag calls, against a mock of Luminous's API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pydantic
import pytest

from bridge import wire
from bridge.catalog import Company, Contact, NewCompany, NewContact, Product
from bridge.errors import (
    NotFoundError,
    RetryableError,
    UnknownOutcome,
    ValidationError,
)
from bridge.luminous import LuminousClient
from bridge.sandbox import API_PREFIX, Sandbox, SandboxSettings, create_sandbox_app
from tests.test_sandbox_faults import served_over_a_socket

BASE_URL = "https://acme.api.joinluminous.com/external/api/v1"
TOKEN = "lum-test-7d1e-SECRET"
PAGE = "per_page=100&page=1"


def json_response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status, content=wire.dumps(body), headers={"Content-Type": "application/json"}
    )


class Recorder:
    """A mock Luminous that answers every request with the next prepared answer."""

    def __init__(self, *answers: httpx.Response | type[httpx.RequestError]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type):
            raise answer("lost", request=request)
        return answer

    @property
    def request(self) -> httpx.Request:
        [only] = self.requests
        return only

    def client(self) -> LuminousClient:
        return LuminousClient(
            BASE_URL, TOKEN, transport=httpx.MockTransport(self), max_requests_per_second=None
        )


def listing(*rows: Any, last_page: int = 1, page: int = 1) -> httpx.Response:
    return json_response(
        200, {"data": list(rows), "meta": {"current_page": page, "last_page": last_page}}
    )


def query(request: httpx.Request) -> str:
    return request.url.query.decode()


# ---- companies -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_companies_by_custom_field_encode_a_label_with_spaces() -> None:
    mock = Recorder(
        listing({"id": "42", "name": "Acme", "custom_fields": {"Shopify Customer ID": "7 8"}})
    )
    async with mock.client() as client:
        found = await client.find_companies_by_custom_field("Shopify Customer ID", "7 8")
    request = mock.request
    assert request.method == "GET"
    assert request.url.path == "/external/api/v1/companies"
    assert query(request) == f"custom_fields.Shopify%20Customer%20ID%5Beq%5D=7%208&{PAGE}"
    assert request.url.params["custom_fields.Shopify Customer ID[eq]"] == "7 8"
    assert found == [Company(id=42, name="Acme", custom_fields={"Shopify Customer ID": "7 8"})]


@pytest.mark.anyio
async def test_companies_by_name_escape_what_a_query_reserves() -> None:
    mock = Recorder(listing())
    async with mock.client() as client:
        assert await client.find_companies_by_name("Smith & Sons + Co/EU #1") == []
    assert query(mock.request) == (f"name%5Beq%5D=Smith%20%26%20Sons%20%2B%20Co%2FEU%20%231&{PAGE}")
    assert mock.request.url.params["name[eq]"] == "Smith & Sons + Co/EU #1"


@pytest.mark.anyio
async def test_company_searches_follow_every_page() -> None:
    mock = Recorder(
        listing({"id": 1}, last_page=2, page=1),
        listing({"id": 2, "custom_fields": None}, last_page=2, page=2),
    )
    async with mock.client() as client:
        found = await client.find_companies_by_name("Acme")
    assert [company.id for company in found] == [1, 2]
    assert [request.url.params["page"] for request in mock.requests] == ["1", "2"]
    assert found[1].custom_fields == {}


@pytest.mark.anyio
async def test_custom_fields_are_read_as_an_object_or_as_label_value_pairs() -> None:
    pairs = [{"label": "Region", "value": "EU"}, {"name": "Tier", "value": 2}, {"value": "x"}]
    assert Company.model_validate({"id": 1, "custom_fields": pairs}).custom_fields == {
        "Region": "EU",
        "Tier": 2,
    }


@pytest.mark.anyio
async def test_get_company_reads_one_and_a_404_is_not_found() -> None:
    mock = Recorder(json_response(200, {"data": {"id": 42, "name": "Acme", "phone": "555"}}))
    async with mock.client() as client:
        company = await client.get_company(42)
    assert mock.request.method == "GET"
    assert str(mock.request.url) == f"{BASE_URL}/companies/42"
    assert mock.request.content == b""
    assert company.name == "Acme"
    assert company.model_extra == {"phone": "555"}

    mock = Recorder(json_response(404, {"message": "Not found."}))
    async with mock.client() as client:
        with pytest.raises(NotFoundError, match="company 9"):
            await client.get_company(9)


@pytest.mark.anyio
async def test_create_company_posts_only_the_fields_given() -> None:
    mock = Recorder(json_response(201, {"data": {"id": 77, "name": "Ada Lovelace"}}))
    new = NewCompany(
        name="Ada Lovelace",
        address="1 Analytical Way",
        postal_code="N1 9GU",
        country="GB",
        custom_fields={"Shopify Customer ID": "207119551"},
    )
    async with mock.client() as client:
        company = await client.create_company(new)
    request = mock.request
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/companies"
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == (
        b'{"name":"Ada Lovelace","address":"1 Analytical Way","postal_code":"N1 9GU",'
        b'"country":"GB","custom_fields":{"Shopify Customer ID":"207119551"}}'
    )
    assert company.id == 77


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [httpx.ReadTimeout, httpx.RemoteProtocolError, json_response(503, {"message": "Down."})],
)
async def test_a_lost_company_or_contact_creation_is_an_unknown_outcome(answer: Any) -> None:
    mock = Recorder(answer)
    async with mock.client() as client:
        with pytest.raises(UnknownOutcome, match="new company 'Acme'"):
            await client.create_company(NewCompany(name="Acme"))
        with pytest.raises(UnknownOutcome, match="new contact for company 4"):
            await client.create_contact(NewContact(first_name="ada", company_id=4))


@pytest.mark.anyio
async def test_a_created_company_without_an_id_is_an_unknown_outcome() -> None:
    mock = Recorder(json_response(201, {"message": "Company successfully created"}))
    async with mock.client() as client:
        with pytest.raises(UnknownOutcome, match=r"no data\.id"):
            await client.create_company(NewCompany(name="Acme"))


def test_new_company_and_contact_refuse_what_luminous_would() -> None:
    with pytest.raises(pydantic.ValidationError):
        NewCompany(name="")
    with pytest.raises(pydantic.ValidationError):
        NewCompany(name="x" * 256)
    with pytest.raises(pydantic.ValidationError):
        NewCompany(name="Acme", zip="78701")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        NewContact(first_name="", company_id=1)
    with pytest.raises(pydantic.ValidationError):
        NewContact(first_name="Ada")  # type: ignore[call-arg]


# ---- contacts ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_contacts_by_email_parse_ids_sent_as_strings() -> None:
    mock = Recorder(
        listing(
            {
                "id": "789123",
                "email": "Ada+Shop@Example.com",
                "first_name": "Ada",
                "last_name": None,
                "company_id": "123456",
                "company": {"id": "123456", "name": "Acme"},
                "is_primary": True,
            },
            {"id": 5, "email": "ada+shop@example.com", "company_id": "", "company": {"id": 9}},
        )
    )
    async with mock.client() as client:
        found = await client.find_contacts_by_email("ada+shop@example.com")
    assert query(mock.request) == f"email%5Beq%5D=ada%2Bshop%40example.com&{PAGE}"
    assert mock.request.url.path == "/external/api/v1/contacts"
    first, second = found
    assert (first.id, first.company_id, first.owner_id) == (789123, 123456, 123456)
    assert first.company is not None and first.company.id == 123456
    assert first.model_extra == {"is_primary": True}
    assert (second.company_id, second.owner_id) == (None, 9)


@pytest.mark.anyio
async def test_create_contact_posts_its_fields_and_reads_the_contact() -> None:
    answer = {"data": {"id": "31", "email": "ada@example.com", "company_id": "77"}}
    mock = Recorder(json_response(201, answer))
    new = NewContact(first_name="Ada", email="ada@example.com", company_id=77)
    async with mock.client() as client:
        contact = await client.create_contact(new)
    assert str(mock.request.url) == f"{BASE_URL}/contacts"
    assert mock.request.method == "POST"
    assert mock.request.content == b'{"first_name":"Ada","email":"ada@example.com","company_id":77}'
    assert contact == Contact(id=31, email="ada@example.com", company_id=77)


@pytest.mark.anyio
async def test_a_taken_email_is_a_validation_error_with_luminous_messages() -> None:
    refusal = {
        "message": "The email has already been taken.",
        "errors": {"email": ["The email has already been taken."]},
    }
    mock = Recorder(json_response(422, refusal))
    async with mock.client() as client:
        with pytest.raises(ValidationError) as caught:
            await client.create_contact(NewContact(first_name="Ada", email="a@b.c", company_id=1))
    assert caught.value.errors == {"email": ["The email has already been taken."]}
    assert "email: The email has already been taken." in str(caught.value)


# ---- products ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_products_by_sku_read_both_shapes_of_alternate_skus() -> None:
    mock = Recorder(
        listing(
            {
                "id": 10,
                "sku": "MUG-RED",
                "name": "Red mug",
                "alternate_skus": [
                    {"id": 1, "sku": "SHOP MUG/R", "unit_conversion_rule_id": None},
                    "LEGACY-MUG",
                    {"id": 2, "sku": None},
                ],
            },
            {"id": "11", "sku": "MUG-RED-2", "alternate_skus": None},
        )
    )
    async with mock.client() as client:
        found = await client.find_products_by_sku("SHOP MUG/R")
    assert query(mock.request) == f"sku%5Beq%5D=SHOP%20MUG%2FR&{PAGE}"
    assert mock.request.url.path == "/external/api/v1/products"
    assert found[0].alternate_skus == ["SHOP MUG/R", "LEGACY-MUG"]
    assert found[0].skus == ["MUG-RED", "SHOP MUG/R", "LEGACY-MUG"]
    assert found[1] == Product(id=11, sku="MUG-RED-2", alternate_skus=[])


@pytest.mark.anyio
async def test_a_listed_row_without_an_id_is_plainly_retryable() -> None:
    mock = Recorder(listing({"sku": "MUG"}))
    async with mock.client() as client:
        with pytest.raises(RetryableError, match=r"no data\.id") as caught:
            await client.find_products_by_sku("MUG")
    assert not isinstance(caught.value, UnknownOutcome)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 201])
async def test_upsert_product_patches_by_sku(status: int) -> None:
    mock = Recorder(json_response(status, {"data": {"id": 12, "sku": "CAP-1", "name": "Cap"}}))
    async with mock.client() as client:
        product = await client.upsert_product("CAP-1", "Cap")
    assert mock.request.method == "PATCH"
    assert str(mock.request.url) == f"{BASE_URL}/products"
    assert mock.request.content == b'{"sku":"CAP-1","name":"Cap"}'
    assert product == Product(id=12, sku="CAP-1", name="Cap")


@pytest.mark.anyio
async def test_a_lost_upsert_or_tagging_is_plainly_retryable() -> None:
    # Both are keyed (by SKU, by tag name), so sending them again does no harm.
    mock = Recorder(httpx.ReadTimeout)
    async with mock.client() as client:
        with pytest.raises(RetryableError) as upsert:
            await client.upsert_product("CAP-1", "Cap")
        with pytest.raises(RetryableError) as tagging:
            await client.add_invoice_tags(5, ["paid"])
    assert not isinstance(upsert.value, UnknownOutcome)
    assert not isinstance(tagging.value, UnknownOutcome)


# ---- invoice tags --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_add_invoice_tags_attaches_and_returns_every_name() -> None:
    answer = {
        "message": "Tags attached successfully",
        "tags": [{"id": 1, "name": "web", "color": None}, {"id": 2, "name": "shopify"}, "bare"],
    }
    mock = Recorder(json_response(200, answer))
    async with mock.client() as client:
        names = await client.add_invoice_tags(2**53 + 1, ["shopify"])
    assert mock.request.method == "POST"
    assert str(mock.request.url) == f"{BASE_URL}/invoices/9007199254740993/tags"
    assert mock.request.content == b'{"tags":["shopify"]}'
    assert names == ["web", "shopify", "bare"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        json_response(200, {"message": "ok"}),
        json_response(201, {"data": {"id": 5, "tags": ["paid", "web"]}}),
        httpx.Response(204),
    ],
)
async def test_any_success_from_the_tag_endpoint_means_tagged(answer: httpx.Response) -> None:
    # Luminous's own CLI treats every 2xx as attached; retrying would re-tag for 24 hours.
    mock = Recorder(answer)
    async with mock.client() as client:
        names = await client.add_invoice_tags(5, ["paid"])
    assert "paid" in names


# ---- the client against the sandbox -------------------------------------------------------

SEED = {
    "products": [{"id": 10, "sku": "MUG-RED", "name": "Red mug", "alternate_skus": ["SHOP-MUG"]}],
    "companies": [
        {
            "id": 42,
            "name": "Acme Retail",
            "contacts": [{"id": 7, "email": "Ops@Acme.test", "first_name": "Ada"}],
            "custom_fields": {"Shopify Customer ID": "1001"},
        }
    ],
}


def sandbox_client(app: Any, **options: Any) -> LuminousClient:
    return LuminousClient(
        f"http://sandbox.test{API_PREFIX}",
        TOKEN,
        transport=httpx.ASGITransport(app=app),
        max_requests_per_second=None,
        **options,
    )


@pytest.mark.anyio
async def test_every_catalog_call_works_against_the_sandbox(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_bytes(wire.dumps(SEED))
    app = create_sandbox_app(SandboxSettings(seed=seed))
    sandbox: Sandbox = app.state.sandbox
    order = {
        "company_id": 42,
        "order_date": "2024-05-01",
        "payment_terms": "Net 30",
        "items": [{"quantity": 1, "unit_price": 5, "sku": "SHOP-MUG"}],
        "tags": ["web"],
    }
    invoice_id = sandbox.create_invoice(order)["id"]
    label = "Shopify Customer ID"
    async with sandbox_client(app) as client:
        [known] = await client.find_companies_by_custom_field(label, "1001")
        assert (known.id, known.custom_fields) == (42, {label: "1001"})
        assert await client.find_companies_by_custom_field(label, "2002") == []

        new = NewCompany(name="Grace Hopper", city="Arlington", custom_fields={label: "2002"})
        created = await client.create_company(new)
        assert await client.get_company(created.id) == created
        assert [c.id for c in await client.find_companies_by_custom_field(label, "2002")] == [
            created.id
        ]
        assert [c.id for c in await client.find_companies_by_name("Grace Hopper")] == [created.id]
        with pytest.raises(NotFoundError):
            await client.get_company(999)

        contact = await client.create_contact(
            NewContact(first_name="Grace", email="grace@navy.test", company_id=created.id)
        )
        assert (contact.company_id, contact.email) == (created.id, "grace@navy.test")
        [found] = await client.find_contacts_by_email("GRACE@navy.test")
        assert found == contact
        [seeded] = await client.find_contacts_by_email("ops@acme.test")
        assert (seeded.id, seeded.owner_id) == (7, 42)
        with pytest.raises(ValidationError) as taken:
            await client.create_contact(
                NewContact(first_name="G", email="Grace@Navy.test", company_id=42)
            )
        assert taken.value.errors == {"email": ["The email has already been taken."]}
        with pytest.raises(ValidationError) as unknown:
            await client.create_contact(NewContact(first_name="G", company_id=999))
        assert unknown.value.errors == {"company_id": ["The selected company id is invalid."]}

        [mug] = await client.find_products_by_sku("SHOP-MUG")
        assert (mug.id, mug.sku, mug.alternate_skus) == (10, "MUG-RED", ["SHOP-MUG"])
        cap = await client.upsert_product("CAP 1", "Cap")
        renamed = await client.upsert_product("CAP 1", "Blue cap")
        assert (renamed.id, renamed.sku, renamed.name) == (cap.id, "CAP 1", "Blue cap")
        assert [p.id for p in await client.find_products_by_sku("CAP 1")] == [cap.id]

        tags = await client.add_invoice_tags(invoice_id, ["shopify", "web"])
        assert tags == ["web", "shopify"]
        assert [tag["name"] for tag in sandbox.invoices[invoice_id]["tags"]] == tags

    assert sandbox.companies[created.id]["custom_fields"] == {label: "2002"}
    assert sandbox.contacts[contact.id]["company"] == {"id": created.id, "name": "Grace Hopper"}


def test_a_company_whose_answer_was_dropped_is_unknown_then_found() -> None:
    app = create_sandbox_app(
        SandboxSettings(
            timeout_after_commit_rate=1.0, timeout_after_commit_paths=frozenset({"/companies"})
        )
    )
    app.state.sandbox.drop_share = 1

    async def create_then_look() -> list[Company]:
        async with LuminousClient(base_url, TOKEN, max_requests_per_second=None) as client:
            with pytest.raises(UnknownOutcome, match="may have taken effect"):
                await client.create_company(NewCompany(name="Acme", custom_fields={"Id": "9"}))
            return await client.find_companies_by_custom_field("Id", "9")

    with served_over_a_socket(app) as base_url:
        found = anyio.run(create_then_look)
    assert [company.name for company in found] == ["Acme"]
