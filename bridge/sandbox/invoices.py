"""Invoices as the sandbox creates, answers and filters them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from bridge.sandbox.contacts import own_company_id
from bridge.sandbox.listing import DATE_OPERATORS, Filterable, as_text
from bridge.sandbox.state import Record, SandboxState, new_product
from bridge.sandbox.totals import InvoiceTotals
from bridge.sandbox.validation import InvoiceInput, ItemInput


def build_invoice(
    request: InvoiceInput, totals: InvoiceTotals, state: SandboxState, *, auto_products: bool
) -> Record:
    """The invoice Luminous would answer for a valid request and its totals; creates products
    it must. Call with `state.lock` held: it takes IDs and may add products."""
    now = state.now()
    company = state.companies[request.company_id]
    items = [
        _line(item, line_total, state, now, auto_products=auto_products)
        for item, line_total in zip(request.items, totals.line_totals, strict=True)
    ]
    return {
        "id": state.next_id("invoice"),
        "created_at": now,
        "updated_at": now,
        "status": "active",
        "payment_status": "unpaid",
        "order_date": _midnight(request.order_date),
        "ship_by_date": _midnight(request.ship_by_date),
        "approval_status": "approved",
        "customer_po_number": request.customer_po_number,
        "payment_terms": request.payment_terms,
        "public_note": request.public_note,
        "private_note": request.private_note,
        "total_qty": totals.total_qty,
        "total_shipping": request.total_shipping or 0,
        "total_discount": request.order_discount_amount or 0,
        "total": totals.total,
        "total_paid": 0,
        "total_due": totals.total,
        "warehouse_id": request.warehouse_id,
        "ship_to": request.ship_to,
        "quickbooks_invoice_id": None,
        "quickbooks_message": None,
        "customer": _customer(company, state),
        "items": items,
        "payments": [],
        "sales_order": None,
        "custom_fields": request.custom_fields,
        "tags": [state.tag(name) for name in request.tags or []],
        "alternate_ids": request.alternate_ids or [],
    }


def _line(
    item: ItemInput, line_total: Decimal, state: SandboxState, now: str, *, auto_products: bool
) -> Record:
    product = _product(item, state, now, auto_products=auto_products)
    return {
        "id": state.next_id("invoice_item"),
        "created_at": now,
        "updated_at": now,
        "sku": product["sku"],
        "name": product["name"],
        "product_id": product["id"],
        "qty": item.quantity,
        "unit_price": item.unit_price,
        "discount": 0,
        "total": line_total,
    }


def _product(item: ItemInput, state: SandboxState, now: str, *, auto_products: bool) -> Record:
    if item.product_id is not None:
        return state.products[item.product_id]
    assert item.sku is not None  # validation guarantees a product_id or a SKU
    found = state.product_by_sku(item.sku)
    if found is not None:
        return found
    if not auto_products:
        raise LookupError(f"unknown SKU {item.sku!r} passed validation")
    name = item.description or item.sku
    return state.add_product(new_product(state.next_id("product"), name, item.sku, now))


def _customer(company: Record, state: SandboxState) -> Record:
    contacts = state.contacts.values()
    emails = [c["email"] for c in contacts if own_company_id(c) == company["id"]]
    return {
        "id": company["id"],
        "name": company["name"],
        "address_1": company["address"],
        "address_2": company["address_line_2"],
        "city": company["city"],
        "state": company["state"],
        "zip": company["postal_code"],
        "country": company["country"],
        "phone": company["phone"],
        "email": emails[0] if emails else None,
        "created_at": company["created_at"],
        "updated_at": company["updated_at"],
    }


def _midnight(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00Z"


def _single(key: str) -> Filterable:
    return Filterable(lambda record: [as_text(record.get(key))])


def _date(key: str) -> Filterable:
    # Stored as a date-time at midnight; filters name the day.
    return Filterable(lambda record: [as_text(record.get(key))[:10]], DATE_OPERATORS)


def _tag_names(record: Record) -> list[str]:
    return [tag["name"] for tag in record["tags"]]


INVOICE_FILTERS: dict[str, Filterable] = {
    "customer_po_number": _single("customer_po_number"),
    "status": _single("status"),
    "payment_status": _single("payment_status"),
    "approval_status": _single("approval_status"),
    "tag": Filterable(_tag_names),
    "order_date": _date("order_date"),
    "ship_by_date": _date("ship_by_date"),
}


def invoice_filter(field: str) -> Filterable | None:
    """The filterable invoice field called `field`, including `custom_fields.<Label>`."""
    if field.startswith("custom_fields."):
        label = field.removeprefix("custom_fields.")
        return Filterable(lambda record: [as_text(record["custom_fields"].get(label))])
    return INVOICE_FILTERS.get(field)
