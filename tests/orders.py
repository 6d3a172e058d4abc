"""Consistent Shopify orders built on demand, for flows where the numbers are not the point."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

SKUS = ("TEE-BLK-M", "MUG-WHT", "SOCK-3PK", "CAP-NVY", "BAG-TOTE")


def _money(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    text = f"{amount:.2f}"
    return {
        "shop_money": {"amount": text, "currency_code": currency},
        "presentment_money": {"amount": text, "currency_code": currency},
    }


def shopify_order(
    order_id: int,
    *,
    lines: list[tuple[str | None, int, str]] | None = None,
    shipping: str = "5.00",
    tax: str = "2.10",
    number: int | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """A tax-exclusive order whose total is Σ qty × price + shipping + tax."""
    lines = lines or [("TEE-BLK-M", 2, "12.50"), ("MUG-WHT", 1, "9.95")]
    number = number or 1000 + order_id % 100000
    items = []
    subtotal = Decimal(0)
    for index, (sku, quantity, price) in enumerate(lines):
        subtotal += quantity * Decimal(price)
        items.append(
            {
                "id": 9_000_000_000_000_000 + order_id * 10 + index,
                "sku": sku,
                "title": f"Product {sku}",
                "variant_title": "",
                "quantity": quantity,
                "price": price,
                "price_set": _money(Decimal(price)),
                "total_discount": "0.00",
                "discount_allocations": [],
                "tax_lines": [],
                "taxable": True,
            }
        )
    total = subtotal + Decimal(shipping) + Decimal(tax)
    return {
        "id": order_id,
        "name": f"#{number}",
        "order_number": number,
        "email": "buyer@example.com",
        "created_at": "2026-11-20T10:15:00-05:00",
        "processed_at": "2026-11-20T10:15:00-05:00",
        "currency": "USD",
        "presentment_currency": "USD",
        "test": test,
        "taxes_included": False,
        "financial_status": "paid",
        "cancelled_at": None,
        "note": None,
        "tags": "",
        "line_items": items,
        "shipping_lines": [
            {
                "title": "Standard",
                "price": shipping,
                "price_set": _money(Decimal(shipping)),
                "discounted_price": shipping,
                "discount_allocations": [],
                "tax_lines": [],
            }
        ],
        "discount_applications": [],
        "total_line_items_price": f"{subtotal:.2f}",
        "subtotal_price": f"{subtotal:.2f}",
        "total_discounts": "0.00",
        "total_tax": tax,
        "total_tax_set": _money(Decimal(tax)),
        "total_price": f"{total:.2f}",
        "total_price_set": _money(total),
        "customer": None,
    }


def body(order: dict[str, Any]) -> bytes:
    return json.dumps(order).encode()


def seed() -> dict[str, Any]:
    """A sandbox seed with the products these orders use and one company."""
    return {
        "products": [
            {"id": 100 + index, "sku": sku, "name": f"Product {sku}"}
            for index, sku in enumerate(SKUS)
        ],
        "companies": [{"id": 1, "name": "Online Store Customers"}],
    }
