"""The Luminous sandbox: auth, validation, totals, listing, catalogue, seed and state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
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
        {"id": 11, "sku": "TEE-M", "name": "T-shirt M"},
    ],
    "companies": [
        {
            "id": 42,
            "name": "Acme Retail",
            "contacts": [{"id": 7, "email": "ops@acme.test", "first_name": "Ada"}],
        },
        {"id": 43, "name": "Beta Stores"},
    ],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    return path


@asynccontextmanager
async def serving(
    settings: SandboxSettings | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Sandbox]]:
    app = create_sandbox_app(settings or SandboxSettings(auto_products=True))
    transport = httpx.ASGITransport(app=app)
    base_url = f"http://sandbox.test{API_PREFIX}"
    async with httpx.AsyncClient(
        transport=transport, base_url=base_url, headers=AUTH if headers is None else headers
    ) as client:
        yield client, app.state.sandbox


def invoice_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "company_id": 1,
        "order_date": "2024-05-01",
        "payment_terms": "Net 30",
        "items": [{"quantity": 2, "unit_price": Decimal("10.50"), "sku": "MUG-RED"}],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


async def post_invoice(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """Post with exact numbers: httpx's own `json=` would turn Decimals into floats."""
    return await client.post(
        "/invoices", content=wire.dumps(body), headers={"Content-Type": "application/json"}
    )


def exact(response: httpx.Response) -> Any:
    return wire.loads(response.content)


# ---- auth and plumbing ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}, {"Authorization": "abc"}],
)
async def test_requests_without_a_bearer_token_are_unauthenticated(headers: dict[str, str]) -> None:
    async with serving(headers=headers) as (client, _):
        response = await client.get("/invoices")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Unauthenticated."}


@pytest.mark.anyio
async def test_any_token_is_accepted_unless_one_is_configured() -> None:
    async with serving(headers={"Authorization": "bearer anything"}) as (client, _):
        assert (await client.get("/invoices")).status_code == 200
    settings = SandboxSettings(token="s3cret")
    async with serving(settings, headers={"Authorization": "Bearer wrong"}) as (client, _):
        assert (await client.get("/invoices")).status_code == 401
        accepted = await client.get("/invoices", headers={"Authorization": "Bearer s3cret"})
        assert accepted.status_code == 200


@pytest.mark.anyio
async def test_unknown_paths_and_methods_answer_json() -> None:
    async with serving() as (client, _):
        missing = await client.get("/nothing/here")
        no_invoice = await client.get("/invoices/999")
        wrong_method = await client.delete("/invoices")
        outside = await client.get("http://sandbox.test/elsewhere")
        health = await client.get("http://sandbox.test/healthz", headers={"Authorization": ""})
    for response in (missing, no_invoice, outside):
        assert response.status_code == 404
        assert response.json() == {"message": "Not found."}
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, POST"
    assert wrong_method.json() == {"message": "Method not allowed."}
    assert health.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"company_id": 1,', "application/json", 400),
        (b'{"total_shipping": NaN}', "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"company_id=1", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_bodies_that_are_not_a_json_object_are_refused(
    content: bytes, content_type: str, status: int
) -> None:
    async with serving() as (client, sandbox):
        response = await client.post(
            "/invoices", content=content, headers={"Content-Type": content_type}
        )
    assert response.status_code == status
    assert set(response.json()) == {"message"}
    assert not sandbox.invoices


# ---- validation ----------------------------------------------------------------------------

# Laravel's messages; `{}` is the field as Laravel names it (`items.0.unit price`).
RULES = {
    "required": "The {} field is required.",
    "integer": "The {} field must be an integer.",
    "string": "The {} field must be a string.",
    "number": "The {} field must be a number.",
    "array": "The {} field must be an array.",
    "object": "The {} field must be an object.",
    "format": "The {} field must match the format Y-m-d.",
    "date": "The {} field must be a valid date.",
    "exists": "The selected {} is invalid.",
    "min0": "The {} field must be at least 0.",
    "gt0": "The {} field must be greater than 0.",
    "2places": "The {} field must have 0-2 decimal places.",
    "6places": "The {} field must have 0-6 decimal places.",
    "max255": "The {} field must not be greater than 255 characters.",
    "huge": "The {} field must not be greater than 999999999.",
    "min1items": "The {} field must have at least 1 items.",
    "mismatch": "The {} field does not match product 10.",
    "unknown": "unknown field",
    "not found": "not found",
}


def expected_message(path: str, rule: str) -> str:
    return RULES[rule].format(path.replace("_", " "))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("changes", "path", "rule"),
    [
        ({"company_id": ...}, "company_id", "required"),
        ({"company_id": "1"}, "company_id", "integer"),
        ({"company_id": True}, "company_id", "integer"),
        ({"company_id": Decimal("1.0")}, "company_id", "integer"),
        ({"company_id": 999}, "company_id", "exists"),
        ({"order_date": ...}, "order_date", "required"),
        ({"order_date": "01/05/2024"}, "order_date", "format"),
        ({"order_date": 20240501}, "order_date", "format"),
        ({"order_date": "2024-02-30"}, "order_date", "date"),
        ({"ship_by_date": "2024-13-01"}, "ship_by_date", "date"),
        ({"payment_terms": ...}, "payment_terms", "required"),
        ({"payment_terms": "   "}, "payment_terms", "required"),
        ({"payment_terms": 30}, "payment_terms", "string"),
        ({"items": ...}, "items", "required"),
        ({"items": []}, "items", "min1items"),
        ({"items": {"sku": "MUG-RED"}}, "items", "array"),
        ({"items": ["MUG-RED"]}, "items.0", "object"),
        ({"total_shipping": "5.00"}, "total_shipping", "number"),
        ({"total_shipping": -1}, "total_shipping", "min0"),
        ({"total_shipping": Decimal("4.995")}, "total_shipping", "2places"),
        ({"tax_amount": "1"}, "tax_amount", "number"),
        ({"tax_amount": True}, "tax_amount", "number"),
        ({"order_discount_amount": Decimal("-0.01")}, "order_discount_amount", "min0"),
        ({"warehouse_id": "3"}, "warehouse_id", "integer"),
        ({"sales_channel_id": Decimal("1.5")}, "sales_channel_id", "integer"),
        ({"revenue_account_id": [1]}, "revenue_account_id", "integer"),
        ({"invoice_export_template_id": "x"}, "invoice_export_template_id", "integer"),
        ({"customer_po_number": "x" * 256}, "customer_po_number", "max255"),
        ({"customer_po_number": 1001}, "customer_po_number", "string"),
        ({"public_note": ["a"]}, "public_note", "string"),
        ({"private_note": 1}, "private_note", "string"),
        ({"alternate_ids": "A-1"}, "alternate_ids", "array"),
        ({"alternate_ids": [1]}, "alternate_ids.0", "string"),
        ({"tags": ["web", 5]}, "tags.1", "string"),
        ({"custom_fields": ["a"]}, "custom_fields", "object"),
        ({"ship_to": "Main St"}, "ship_to", "object"),
        ({"ship_to": {"city": 5}}, "ship_to.city", "string"),
        ({"ship_to": {"street": "Main"}}, "ship_to.street", "unknown"),
        ({"company": 1}, "company", "unknown"),
        ({"customer_po": "#1001"}, "customer_po", "unknown"),
    ],
)
async def test_invoice_fields_are_validated(changes: dict[str, Any], path: str, rule: str) -> None:
    text = expected_message(path, rule)
    async with serving() as (client, sandbox):
        response = await post_invoice(client, invoice_body(**changes))
    assert response.status_code == 422, response.text
    assert response.json() == {"message": text, "errors": {path: [text]}}
    assert not sandbox.invoices


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("item", "field", "rule"),
    [
        ({"quantity": ...}, "quantity", "required"),
        ({"quantity": 0}, "quantity", "gt0"),
        ({"quantity": -1}, "quantity", "gt0"),
        ({"quantity": "1"}, "quantity", "number"),
        ({"quantity": Decimal("1E+10")}, "quantity", "huge"),
        ({"unit_price": ...}, "unit_price", "required"),
        ({"unit_price": "9.99"}, "unit_price", "number"),
        ({"unit_price": Decimal("-0.01")}, "unit_price", "min0"),
        ({"unit_price": Decimal("1.1234567")}, "unit_price", "6places"),
        ({"product_id": "10", "sku": None}, "product_id", "integer"),
        ({"product_id": 999, "sku": None}, "product_id", "exists"),
        ({"product_id": 10, "sku": "TEE-M"}, "sku", "mismatch"),
        ({"sku": 10}, "sku", "string"),
        ({"description": 10}, "description", "string"),
        ({"qty": 1}, "qty", "unknown"),
        ({"sku": "NOPE"}, "product", "not found"),
        ({"sku": None}, "product", "not found"),
        ({"sku": "   "}, "product", "not found"),
    ],
)
async def test_invoice_items_are_validated(
    seed_file: Path, item: dict[str, Any], field: str, rule: str
) -> None:
    path = f"items.0.{field}"
    text = expected_message(path, rule)
    line = {"quantity": 1, "unit_price": 1, "sku": "TEE-M", **item}
    line = {key: value for key, value in line.items() if value is not ...}
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        response = await post_invoice(client, invoice_body(company_id=42, items=[line]))
    assert response.status_code == 422, response.text
    assert response.json() == {"message": text, "errors": {path: [text]}}
    assert not sandbox.invoices


@pytest.mark.anyio
async def test_every_problem_is_reported_with_a_summary() -> None:
    body = {"company_id": "x", "items": [{"quantity": 0, "unit_price": 1, "sku": "NOPE"}]}
    async with serving(SandboxSettings()) as (client, _):
        response = await post_invoice(client, body)
    async with serving() as (client, _):
        one_more = await post_invoice(client, invoice_body(order_date=..., payment_terms=...))
    assert response.status_code == 422
    assert response.json() == {
        "message": "The company id field must be an integer. (and 4 more errors)",
        "errors": {
            "company_id": ["The company id field must be an integer."],
            "order_date": ["The order date field is required."],
            "payment_terms": ["The payment terms field is required."],
            "items.0.quantity": ["The items.0.quantity field must be greater than 0."],
            "items.0.product": ["not found"],
        },
    }
    assert one_more.json()["message"] == "The order date field is required. (and 1 more error)"


@pytest.mark.anyio
async def test_unknown_sku_is_refused_like_luminous(seed_file: Path) -> None:
    items = [
        {"quantity": 1, "unit_price": 5, "sku": "MUG-RED"},
        {"quantity": 1, "unit_price": 5, "sku": "UNKNOWN-1"},
    ]
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        response = await post_invoice(client, invoice_body(company_id=42, items=items))
    assert response.status_code == 422
    assert response.json() == {"message": "not found", "errors": {"items.1.product": ["not found"]}}


@pytest.mark.anyio
async def test_an_alternate_sku_names_its_product(seed_file: Path) -> None:
    items = [{"quantity": 1, "unit_price": 5, "sku": "SHOP-MUG-R"}]
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        response = await post_invoice(client, invoice_body(company_id=42, items=items))
    assert response.status_code == 201, response.text
    (line,) = response.json()["data"]["items"]
    assert (line["product_id"], line["sku"], line["name"]) == (10, "MUG-RED", "Red mug")


@pytest.mark.anyio
async def test_auto_products_creates_one_product_per_unknown_sku() -> None:
    items = [
        {"quantity": 1, "unit_price": 5, "sku": "NEW-1", "description": "New thing"},
        {"quantity": 2, "unit_price": 5, "sku": "NEW-1"},
    ]
    async with serving(SandboxSettings(auto_products=True)) as (client, sandbox):
        created = await post_invoice(client, invoice_body(items=items))
        found = await client.get("/products", params={"sku[eq]": "NEW-1"})
        neither = await post_invoice(client, invoice_body(items=[{"quantity": 1, "unit_price": 1}]))
    assert created.status_code == 201, created.text
    assert {line["product_id"] for line in created.json()["data"]["items"]} == {1}
    assert [p["name"] for p in found.json()["data"]] == ["New thing"]
    assert len(sandbox.products) == 1
    assert neither.status_code == 422
    assert neither.json()["errors"] == {"items.0.product": ["not found"]}


@pytest.mark.anyio
async def test_a_refused_invoice_creates_no_product() -> None:
    items = [{"quantity": 1, "unit_price": 5, "sku": "NEW-1"}]
    async with serving(SandboxSettings(auto_products=True)) as (client, sandbox):
        response = await post_invoice(client, invoice_body(items=items, company_id=5))
    assert response.status_code == 422
    assert not sandbox.products


# ---- totals and the response ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("items", "extra", "total", "line_totals"),
    [
        ([("3", "33.333333")], {}, "100.00", ["100.00"]),
        ([("1", "0.005")], {}, "0.01", ["0.01"]),
        ([("1", "2.675")], {}, "2.68", ["2.68"]),
        ([("1", "0.004999")], {}, "0.00", ["0.00"]),
        (
            [("2", "10.125"), ("1", "0.005")],
            {"order_discount_amount": "1.25", "total_shipping": "4.99", "tax_amount": "1.60"},
            "25.60",
            ["20.25", "0.01"],
        ),
        ([("1.5", "19.99")], {"total_shipping": "0"}, "29.99", ["29.99"]),
    ],
)
async def test_totals_are_exact_and_rounded_half_up_once(
    items: list[tuple[str, str]], extra: dict[str, str], total: str, line_totals: list[str]
) -> None:
    lines = [{"quantity": Decimal(q), "unit_price": Decimal(p), "sku": "X"} for q, p in items]
    amounts = {key: Decimal(value) for key, value in extra.items()}
    async with serving(SandboxSettings(auto_products=True)) as (client, _):
        response = await post_invoice(client, invoice_body(items=lines, **amounts))
    assert response.status_code == 201, response.text
    invoice = exact(response)["data"]
    assert invoice["total"] == Decimal(total)
    assert invoice["total_due"] == Decimal(total)
    assert [line["total"] for line in invoice["items"]] == [Decimal(t) for t in line_totals]
    assert invoice["total_qty"] == sum(Decimal(q) for q, _ in items)
    assert invoice["total_discount"] == amounts.get("order_discount_amount", 0)
    assert invoice["total_shipping"] == amounts.get("total_shipping", 0)


@pytest.mark.anyio
async def test_money_goes_out_as_exact_json_numbers() -> None:
    lines = [{"quantity": 3, "unit_price": Decimal("33.333333"), "sku": "X"}]
    async with serving(SandboxSettings(auto_products=True)) as (client, _):
        response = await post_invoice(client, invoice_body(items=lines))
    assert b'"unit_price":33.333333' in response.content
    assert b'"total":100.00' in response.content
    assert b'"total_qty":3,' in response.content


@pytest.mark.anyio
async def test_created_invoice_has_the_documented_shape(seed_file: Path) -> None:
    body = invoice_body(
        company_id=42,
        ship_by_date="2024-05-03",
        customer_po_number="  #1001  ",
        public_note="Thanks",
        warehouse_id=3,
        tags=["web", "web", "eu"],
        alternate_ids=["gid://shop/Order/1"],
        custom_fields={"Shop Order": "1001"},
        ship_to={"address_1": "1 Main St", "city": "Austin", "country": "US"},
    )
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        created = await post_invoice(client, body)
        fetched = await client.get(f"/invoices/{created.json()['data']['id']}")
        second = await post_invoice(client, invoice_body(company_id=43, tags=["web"]))
    assert created.status_code == 201
    invoice = created.json()["data"]
    assert fetched.json() == {"data": invoice}
    assert set(invoice) == {
        "id", "created_at", "updated_at", "status", "payment_status", "order_date",
        "ship_by_date", "approval_status", "customer_po_number", "payment_terms", "public_note",
        "private_note", "total_qty", "total_shipping", "total_discount", "total", "total_paid",
        "total_due", "warehouse_id", "ship_to", "quickbooks_invoice_id", "quickbooks_message",
        "customer", "items", "payments", "sales_order", "custom_fields", "tags", "alternate_ids",
    }  # fmt: skip
    assert invoice["id"] == 1
    assert (invoice["status"], invoice["payment_status"], invoice["approval_status"]) == (
        "active",
        "unpaid",
        "approved",
    )
    assert invoice["created_at"].endswith("Z") and invoice["created_at"][10] == "T"
    assert (invoice["order_date"], invoice["ship_by_date"]) == (
        "2024-05-01T00:00:00Z",
        "2024-05-03T00:00:00Z",
    )
    assert invoice["customer_po_number"] == "#1001"
    assert invoice["customer"]["id"] == 42
    assert invoice["customer"]["name"] == "Acme Retail"
    assert invoice["customer"]["email"] == "ops@acme.test"
    assert invoice["ship_to"]["city"] == "Austin" and invoice["ship_to"]["state"] is None
    assert [tag["name"] for tag in invoice["tags"]] == ["web", "eu"]
    assert invoice["tags"][0] == {
        "id": invoice["tags"][0]["id"],
        "name": "web",
        "description": None,
        "icon": None,
        "color": None,
    }
    assert invoice["custom_fields"] == {"Shop Order": "1001"}
    assert invoice["alternate_ids"] == ["gid://shop/Order/1"]
    assert (invoice["payments"], invoice["sales_order"], invoice["total_paid"]) == ([], None, 0)
    (line,) = invoice["items"]
    assert set(line) == {
        "id", "created_at", "updated_at", "sku", "name", "product_id", "qty", "unit_price",
        "discount", "total",
    }  # fmt: skip
    assert (line["qty"], line["discount"], line["product_id"]) == (2, 0, 10)
    assert second.json()["data"]["id"] == 2
    assert second.json()["data"]["tags"][0]["id"] == invoice["tags"][0]["id"]


# ---- listing -------------------------------------------------------------------------------


def fill(sandbox: Sandbox, count: int, **changes: Any) -> None:
    for number in range(1, count + 1):
        sandbox.create_invoice(invoice_body(customer_po_number=f"#{1000 + number}", **changes))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "ids", "meta"),
    [
        ({}, list(range(1, 11)), (1, 1, 3, 10, 10, 25)),
        ({"page": "3"}, list(range(21, 26)), (3, 21, 3, 10, 25, 25)),
        ({"page": "4"}, [], (4, None, 3, 10, None, 25)),
        ({"per_page": "100"}, list(range(1, 26)), (1, 1, 1, 100, 25, 25)),
        ({"per_page": "7", "page": "2"}, list(range(8, 15)), (2, 8, 4, 7, 14, 25)),
    ],
)
async def test_invoices_are_paginated_by_id(
    query: dict[str, str], ids: list[int], meta: tuple[int | None, ...]
) -> None:
    async with serving() as (client, sandbox):
        fill(sandbox, 25)
        response = await client.get("/invoices", params=query)
    assert response.status_code == 200
    body = response.json()
    assert [invoice["id"] for invoice in body["data"]] == ids
    keys = ("current_page", "from", "last_page", "per_page", "to", "total")
    assert tuple(body["meta"][key] for key in keys) == meta


@pytest.mark.anyio
async def test_an_empty_list_has_one_empty_page() -> None:
    async with serving() as (client, _):
        body = (await client.get("/invoices")).json()
    assert body == {
        "data": [],
        "meta": {
            "current_page": 1,
            "from": None,
            "last_page": 1,
            "per_page": 10,
            "to": None,
            "total": 0,
        },
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"per_page": "101"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "ten"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"order_date[gte]": "May 1"}, "order_date"),
        ({"customer_po_number[gt]": "#1"}, "customer_po_number"),
    ],
)
async def test_bad_list_parameters_are_refused(query: dict[str, str], field: str) -> None:
    async with serving() as (client, _):
        response = await client.get("/invoices", params=query)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == [field]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ({"customer_po_number[eq]": "#1003"}, [3]),
        ({"customer_po_number": "#1003"}, [3]),
        ({"customer_po_number[eq]": "#100"}, []),
        ({"customer_po_number[contains]": "#100"}, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ({"customer_po_number[in]": "#1002,#1004, #1099"}, [2, 4]),
        ({"customer_po_number[neq]": "#1001", "per_page": "3"}, [2, 3, 4]),
        ({"tag[eq]": "late"}, [11, 12]),
        ({"order_date[gte]": "2024-06-01"}, [12]),
        ({"order_date[lte]": "2024-05-01", "page": "2"}, [11]),
        ({"order_date[eq]": "2024-06-02"}, [12]),
        ({"custom_fields.Shop Order[eq]": "A-2"}, [12]),
        ({"custom_fields.Shop Order[set]": ""}, [11, 12]),
        ({"customer_po_number[eq]": "#1003", "no_such_field[eq]": "x"}, [3]),
    ],
)
async def test_invoices_are_filtered(query: dict[str, str], ids: list[int]) -> None:
    async with serving() as (client, sandbox):
        fill(sandbox, 10)
        sandbox.create_invoice(
            invoice_body(
                order_date="2024-04-30", tags=["late"], custom_fields={"Shop Order": "A-1"}
            )
        )
        sandbox.create_invoice(
            invoice_body(
                order_date="2024-06-02", tags=["late"], custom_fields={"Shop Order": "A-2"}
            )
        )
        response = await client.get("/invoices", params=query)
    assert response.status_code == 200, response.text
    assert [invoice["id"] for invoice in response.json()["data"]] == ids


@pytest.mark.anyio
async def test_invoice_tags_are_attached_replaced_and_listed() -> None:
    async with serving() as (client, sandbox):
        sandbox.create_invoice(invoice_body(tags=["web"]))
        attached = await client.post("/invoices/1/tags", json={"tags": ["paid", "web"]})
        replaced = await client.put("/invoices/1/tags", json={"tags": ["archived"]})
        listed = await client.get("/invoices/1/tags")
        refused = await client.put("/invoices/1/tags", json={"tags": "archived"})
        missing = await client.put("/invoices/9/tags", json={"tags": ["x"]})
        found = await client.get("/invoices", params={"tag": "archived"})
    assert attached.json()["message"] == "Tags attached successfully"
    assert [tag["name"] for tag in attached.json()["tags"]] == ["web", "paid"]
    assert replaced.json()["message"] == "Tags replaced successfully"
    assert [tag["name"] for tag in replaced.json()["tags"]] == ["archived"]
    assert [tag["name"] for tag in listed.json()["data"]] == ["archived"]
    assert refused.status_code == 422
    assert missing.status_code == 404
    assert [invoice["id"] for invoice in found.json()["data"]] == [1]


# ---- products and companies ----------------------------------------------------------------


@pytest.mark.anyio
async def test_products_are_found_by_main_or_alternate_sku(seed_file: Path) -> None:
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        by_main = await client.get("/products", params={"sku[eq]": "MUG-RED"})
        by_alternate = await client.get("/products", params={"sku[eq]": "SHOP-MUG-R"})
        by_nothing = await client.get("/products", params={"sku[eq]": "MUG"})
        one = await client.get("/products/11")
        none = await client.get("/products/99")
    assert [p["id"] for p in by_main.json()["data"]] == [10]
    assert [p["id"] for p in by_alternate.json()["data"]] == [10]
    assert by_alternate.json()["data"][0]["alternate_skus"][0]["sku"] == "SHOP-MUG-R"
    assert by_nothing.json()["data"] == []
    assert one.json()["data"]["sku"] == "TEE-M"
    assert none.status_code == 404


@pytest.mark.anyio
async def test_products_are_created_and_upserted(seed_file: Path) -> None:
    async with serving(SandboxSettings(seed=seed_file)) as (client, sandbox):
        created = await client.post("/products", json={"name": "Cap", "sku": "CAP-1"})
        taken = await client.post("/products", json={"name": "Mug", "sku": "SHOP-MUG-R"})
        nameless = await client.post("/products", json={"sku": "CAP-2"})
        by_id = await client.patch("/products", json={"id": 11, "name": "T-shirt medium"})
        by_sku = await client.patch("/products", json={"sku": "CAP-1", "retail_price": 12.5})
        new = await client.patch("/products", json={"sku": "CAP-3", "name": "Cap 3"})
        bad_id = await client.patch("/products", json={"id": 99, "name": "x"})
        clash = await client.patch("/products", json={"id": 11, "sku": "MUG-RED"})
    assert created.status_code == 201
    assert created.json()["data"]["id"] == 12
    assert taken.status_code == 422
    assert taken.json()["errors"] == {"sku": ["The sku has already been taken."]}
    assert nameless.json()["errors"] == {"name": ["The name field is required."]}
    assert by_id.status_code == 200
    assert sandbox.products[11]["name"] == "T-shirt medium"
    assert by_sku.status_code == 200
    assert sandbox.products[12]["retail_price"] == Decimal("12.5")
    assert new.status_code == 201
    assert new.json()["data"]["sku"] == "CAP-3"
    assert bad_id.json()["errors"] == {"id": ["The selected id is invalid."]}
    assert clash.status_code == 422


@pytest.mark.anyio
async def test_companies_are_listed_and_fetched(seed_file: Path) -> None:
    async with serving(SandboxSettings(seed=seed_file)) as (client, _):
        named = await client.get("/companies", params={"name[eq]": "Beta Stores"})
        everything = await client.get("/companies")
        one = await client.get("/companies/42")
        default = await client.get("/companies/1")
    assert [c["id"] for c in named.json()["data"]] == [43]
    assert everything.json()["meta"]["total"] == 2
    assert one.json()["data"]["name"] == "Acme Retail"
    assert default.status_code == 404


@pytest.mark.anyio
async def test_a_default_company_exists_without_seeded_companies() -> None:
    async with serving() as (client, sandbox):
        response = await client.get(f"/companies/{Sandbox.DEFAULT_COMPANY_ID}")
    assert response.json()["data"]["name"] == "Sandbox Customer"
    assert list(sandbox.companies) == [1]


# ---- seed and state ------------------------------------------------------------------------


A = {"id": 1, "sku": "A", "name": "A"}
B = {"id": 2, "sku": "B", "name": "B"}
ACME = {"id": 1, "name": "Acme"}
NOT_AN_EMAIL = {"id": 1, "email": "x", "first_name": "Ada"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "not valid JSON"),
        ([], "top level: must be a JSON object"),
        ({"product": []}, "top level.product: unknown key"),
        ({"products": {}}, "products: must be an array"),
        ({"products": [{**A, "sku": ""}]}, "products[0].sku: must be a non-empty string"),
        ({"products": [{**A, "id": "1"}]}, "products[0].id: must be a positive integer"),
        ({"products": [{**A, "alternate_skus": "B"}]}, "products[0].alternate_skus: must be"),
        ({"products": [A, {**B, "id": 1}]}, "products: id 1 appears more than once"),
        ({"products": [{**A, "alternate_skus": ["B"]}, B]}, "products: SKU 'B' appears more"),
        ({"companies": [{"id": 1}]}, "companies[0].name: must be a non-empty string"),
        ({"companies": [ACME, ACME]}, "companies: id 1 appears more than once"),
        (
            {"companies": [{**ACME, "contacts": [NOT_AN_EMAIL]}]},
            "companies[0].contacts[0].email: 'x' is not an e-mail address",
        ),
        ({"companies": [{**ACME, "custom_fields": []}]}, "companies[0].custom_fields: must be"),
    ],
)
def test_a_bad_seed_file_is_refused_with_its_problem(
    tmp_path: Path, content: Any, problem: str
) -> None:
    path = tmp_path / "seed.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match="seed file") as caught:
        Sandbox(SandboxSettings(seed=path))
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_a_missing_seed_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"seed file .*missing\.json: cannot be read"):
        Sandbox(SandboxSettings(seed=tmp_path / "missing.json"))


def test_state_survives_a_restart(tmp_path: Path, seed_file: Path) -> None:
    settings = SandboxSettings(seed=seed_file, state=tmp_path / "state.json", auto_products=True)
    first = Sandbox(settings)
    items = [{"quantity": 1, "unit_price": Decimal("9.99"), "sku": "NEW-1"}]
    kept = first.create_invoice(invoice_body(company_id=42, items=items, tags=["web"]))

    second = Sandbox(settings)
    assert second.invoices == {1: kept}
    assert second.invoices[1]["total"] == Decimal("9.99")
    assert second.products[12]["sku"] == "NEW-1"
    later = second.create_invoice(invoice_body(company_id=42, items=items, tags=["web", "eu"]))
    assert later["id"] == 2
    assert later["items"][0]["id"] == 2
    assert later["items"][0]["product_id"] == 12
    assert [tag["id"] for tag in later["tags"]] == [
        kept["tags"][0]["id"],
        kept["tags"][0]["id"] + 1,
    ]
    assert {p.name for p in tmp_path.iterdir()} == {"seed.json", "state.json"}


def test_state_is_written_before_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sandbox = Sandbox(SandboxSettings(state=path, auto_products=True))
    sandbox.create_invoice(invoice_body(items=[{"quantity": 1, "unit_price": 1, "sku": "A"}]))
    saved = wire.loads(path.read_bytes())
    assert [invoice["id"] for invoice in saved["invoices"]] == [1]
    with pytest.raises(Invalid):
        sandbox.create_invoice(invoice_body(company_id=77))
    assert wire.loads(path.read_bytes()) == saved


def test_a_corrupt_state_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"invoices": [')
    with pytest.raises(ValueError, match="state file"):
        Sandbox(SandboxSettings(state=path))
    assert path.read_text() == '{"invoices": ['


@pytest.mark.parametrize(
    "settings",
    [{"fail_rate": 1.5}, {"throttle_rate": -0.1}, {"latency_ms": -1}, {"token": " "}],
)
def test_impossible_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SandboxSettings(**settings)
