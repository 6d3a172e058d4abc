"""The rules of `POST /invoices`: Luminous's documented schema, checked strictly.

Every problem is collected before answering, so one 422 names them all, keyed by the path
Luminous uses (`items.0.quantity`, `items.1.product`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.sandbox.rules import Errors, Number, Reader, clean_string, enumerate_keys

INVOICE_FIELDS = (
    "company_id",
    "order_date",
    "payment_terms",
    "items",
    "ship_by_date",
    "customer_po_number",
    "public_note",
    "private_note",
    "total_shipping",
    "tax_amount",
    "order_discount_amount",
    "warehouse_id",
    "sales_channel_id",
    "revenue_account_id",
    "invoice_export_template_id",
    "alternate_ids",
    "tags",
    "custom_fields",
    "ship_to",
)
ITEM_FIELDS = ("quantity", "unit_price", "product_id", "sku", "description")
SHIP_TO_FIELDS = ("address_1", "address_2", "city", "state", "zip", "country")
UNIT_PRICE_PLACES = 6
AMOUNT_PLACES = 2


class Catalog(Protocol):
    """What validation needs to know about the sandbox's companies and products."""

    def company(self, company_id: int) -> dict[str, Any] | None: ...

    def product(self, product_id: int) -> dict[str, Any] | None: ...

    def product_by_sku(self, sku: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class ItemInput:
    """One valid line; `product_id` or `sku` names a known product (or one to create)."""

    quantity: Number
    unit_price: Number
    product_id: int | None
    sku: str | None
    description: str | None


@dataclass(frozen=True)
class InvoiceInput:
    """A `POST /invoices` body that passed every rule, strings trimmed, dates parsed."""

    company_id: int
    order_date: dt.date
    payment_terms: str
    items: list[ItemInput]
    ship_by_date: dt.date | None = None
    customer_po_number: str | None = None
    public_note: str | None = None
    private_note: str | None = None
    total_shipping: Number | None = None
    tax_amount: Number | None = None
    order_discount_amount: Number | None = None
    warehouse_id: int | None = None
    sales_channel_id: int | None = None
    revenue_account_id: int | None = None
    invoice_export_template_id: int | None = None
    alternate_ids: list[str] | None = None
    tags: list[str] | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    ship_to: dict[str, str | None] | None = None


def validate_invoice(
    body: dict[str, Any], catalog: Catalog, *, auto_products: bool
) -> InvoiceInput:
    """Check a request body; raise `Invalid` naming every problem, else the clean input."""
    errors = Errors()
    read = Reader(body, errors)
    company_id = read.integer("company_id", required=True)
    if company_id is not None and catalog.company(company_id) is None:
        read.fail("company_id", "The selected {} is invalid.")
    order_date = read.date("order_date", required=True)
    payment_terms = read.string("payment_terms", required=True)
    items = _items(read, catalog, auto_products=auto_products)
    values: dict[str, Any] = {
        "ship_by_date": read.date("ship_by_date"),
        "customer_po_number": read.string("customer_po_number"),
        "public_note": read.text("public_note"),
        "private_note": read.text("private_note"),
        "total_shipping": read.number("total_shipping", places=AMOUNT_PLACES),
        "tax_amount": read.number("tax_amount", places=AMOUNT_PLACES),
        "order_discount_amount": read.number("order_discount_amount", places=AMOUNT_PLACES),
        "warehouse_id": read.integer("warehouse_id"),
        "sales_channel_id": read.integer("sales_channel_id"),
        "revenue_account_id": read.integer("revenue_account_id"),
        "invoice_export_template_id": read.integer("invoice_export_template_id"),
        "alternate_ids": read.strings("alternate_ids"),
        "tags": _unique(read.strings("tags")),
        "custom_fields": read.custom_fields(),
        "ship_to": _ship_to(read),
    }
    read.refuse_unknown(INVOICE_FIELDS)
    errors.raise_if_any()
    assert company_id is not None and order_date is not None and payment_terms is not None
    return InvoiceInput(
        company_id=company_id,
        order_date=order_date,
        payment_terms=payment_terms,
        items=items,
        **values,
    )


def _items(read: Reader, catalog: Catalog, *, auto_products: bool) -> list[ItemInput]:
    raw = clean_string(read.data.get("items"))
    if raw is None:
        read.fail("items", "The {} field is required.")
        return []
    if not isinstance(raw, list):
        read.fail("items", "The {} field must be an array.")
        return []
    if not raw:
        read.fail("items", "The {} field must have at least 1 items.")
        return []
    lines = Reader(dict(enumerate_keys(raw)), read.errors, "items.")
    found = []
    for index, entry in enumerate(raw):
        key = str(index)
        if not isinstance(entry, dict):
            lines.fail(key, "The {} field must be an object.")
            continue
        item = _item(Reader(entry, read.errors, f"items.{index}."), catalog, auto_products)
        if item is not None:
            found.append(item)
    return found


def _item(read: Reader, catalog: Catalog, auto_products: bool) -> ItemInput | None:
    errors_before = read.errors.count()
    quantity = read.number("quantity", required=True, positive=True)
    unit_price = read.number("unit_price", required=True, places=UNIT_PRICE_PLACES)
    product_id = read.integer("product_id")
    sku = read.string("sku")
    description = read.text("description")
    read.refuse_unknown(ITEM_FIELDS)
    if product_id is not None:
        product = catalog.product(product_id)
        if product is None:
            read.fail("product_id", "The selected {} is invalid.")
        elif sku is not None and sku not in _skus(product):
            read.fail("sku", f"The {{}} field does not match product {product_id}.")
    elif read.path("product_id") not in read.errors and read.path("sku") not in read.errors:
        known = sku is not None and catalog.product_by_sku(sku) is not None
        if not known and not (auto_products and sku is not None):
            read.errors.add(read.path("product"), "not found")
    if read.errors.count() > errors_before:
        return None
    assert quantity is not None and unit_price is not None
    return ItemInput(quantity, unit_price, product_id, sku, description)


def _skus(product: dict[str, Any]) -> set[str]:
    return {product["sku"], *(alternate["sku"] for alternate in product["alternate_skus"])}


def _unique(values: list[str] | None) -> list[str] | None:
    return None if values is None else list(dict.fromkeys(values))


def _ship_to(read: Reader) -> dict[str, str | None] | None:
    found = read.mapping("ship_to")
    if found is None:
        return None
    address = Reader(found, read.errors, "ship_to.")
    clean = {key: address.string(key) for key in SHIP_TO_FIELDS}
    address.refuse_unknown(SHIP_TO_FIELDS)
    return clean
