"""WooCommerce `order.created` / `order.updated` deliveries → Luminous invoice drafts.

The payload is WooCommerce's REST v3 order. Its status decides what happens: a status named in
`tag_topics` tags the invoice, a status in `invoice_statuses` makes one, any other is skipped.

WooCommerce stores every line, fee and shipping amount excluding tax, whether prices were
entered with tax or not (`prices_include_tax` only says how they were entered), and its grand
total is Σ line totals + fees + shipping + taxes. So one mapping serves both settings:

    Σ quantity × unit_price − order_discount_amount + total_shipping + tax_amount == total

- unit_price is the line's `subtotal` (before coupons) / quantity, split in two items when
  that is not exact at 6 decimals; a line whose total exceeds its subtotal (edited by hand in
  the admin) is priced at its total instead. `price` is not used: it is the line's total
  after coupons per unit, unrounded.
- order_discount_amount is Σ (line subtotal − line total), plus every negative fee. The
  order's `discount_total` is not used: with tax-inclusive prices WooCommerce rounds it apart
  from the lines, and it can then differ from them by a cent.
- total_shipping is `shipping_total`; tax_amount is `total_tax` (items, fees and shipping).
- A positive fee becomes an item with no SKU, named after the fee (see `_fees`).
- `refunds[]` do not change the invoice: the invoice records the sale.

An order that does not add up is mapped as it is: the bridge's reconciliation refuses it.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any

from pydantic import Field

from bridge.errors import MappingError
from bridge.invoice import ShipTo
from bridge.mapping import (
    CustomerRef,
    Delivery,
    Draft,
    InvoiceOptions,
    OrderRef,
    Skip,
    Tag,
    invoice_request,
)
from mappings.fields import ZERO, describe, parse_id, unit_prices
from mappings.woocommerce_fields import OrderFields

__all__ = ["WooCommerceMapping", "WooCommerceOptions", "mapping"]

DEFAULT_INVOICE_STATUSES = ("processing", "completed")
# Topics whose body is a full order; `order.deleted` carries only {"id": ...}.
ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
_CURRENCY = re.compile(r"[A-Za-z]{3}")
# A REST link names its site: `https://shop.example/wp-json/wc/v3/orders/727`, or without pretty
# permalinks `http://host/wordpress/index.php?rest_route=/wc/v3/orders/205`.
_REST_LINK = re.compile(r"(?P<site>https?://[^?#]+?)/(?:wp-json/|(?:index\.php)?\?rest_route=/)")


class WooCommerceOptions(InvoiceOptions):
    """Options of a WooCommerce source: the common ones, and which statuses are invoiced."""

    invoice_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_INVOICE_STATUSES))


class WooCommerceMapping:
    """Translates a WooCommerce order into an invoice draft, an invoice tag, or a skip."""

    name = "woocommerce"
    options_model: type[InvoiceOptions] = WooCommerceOptions
    unique_order_ids = False  # each site numbers its own orders

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Draft | Skip | Tag:
        """Translate one delivery; raise `MappingError` when the payload is unusable."""
        order = delivery.payload
        if not isinstance(order, dict):
            raise MappingError(
                "a WooCommerce order must be a JSON object",
                [("$", f"must be an object, got {describe(order)}")],
            )
        order_id = _order_id(order)
        if delivery.topic is not None and delivery.topic not in ORDER_TOPICS:
            return Skip(f"topic {delivery.topic} does not create invoices", order_id)
        status = _status(order, order_id)
        name = _order_name(order)
        if status in options.tag_topics:
            return Tag(order_id, options.tag_topics[status], f"status {status}", name)
        statuses = getattr(options, "invoice_statuses", DEFAULT_INVOICE_STATUSES)
        if status not in statuses:
            wanted = ", ".join(statuses) or "none"
            return Skip(f"status {status} is not invoiced (invoice_statuses: {wanted})", order_id)
        return OrderTranslation(order, order_id, options, delivery.shop).draft()

    def identify(self, payload: Any) -> OrderRef | None:
        """The order a body names: its id, its number, and the site its `_links` point to."""
        if not isinstance(payload, dict):
            return None
        order_id = parse_id(payload.get("id"), 63)
        if order_id is None:
            return None
        return OrderRef(order_id, _order_name(payload), _site(payload))


mapping = WooCommerceMapping()


def _order_id(order: dict[str, Any]) -> str:
    raw = order.get("id")
    order_id = parse_id(raw, 63)
    if order_id is not None:
        return order_id
    problem = "is missing" if raw is None else f"must be a positive integer, got {describe(raw)}"
    raise MappingError(f"not a usable WooCommerce order: id {problem}", [("id", problem)])


def _site(order: dict[str, Any]) -> str | None:
    """The site the order's own REST links name (`_links.self`, else `collection`), if any."""
    links = order.get("_links")
    if not isinstance(links, dict):
        return None
    for relation in ("self", "collection"):
        entries = links.get(relation)
        first = entries[0] if isinstance(entries, list) and entries else None
        href = first.get("href") if isinstance(first, dict) else None
        found = _REST_LINK.match(href) if isinstance(href, str) else None
        if found:
            return found["site"] + "/"
    return None


def _status(order: dict[str, Any], order_id: str) -> str:
    raw = order.get("status")
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    problem = "is missing" if raw is None else f"must be a status name, got {describe(raw)}"
    raise MappingError(
        f"WooCommerce order {order_id} cannot be invoiced: status {problem}", [("status", problem)]
    )


def _order_name(order: dict[str, Any]) -> str | None:
    # `number` is a string so that order-number plugins can make it "WC-1042"; it is what the
    # shop shows its customer, so it names the invoice. Without it the ID stands in.
    number = order.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if isinstance(number, str) and number.strip():
        return "#" + number.strip()
    return None


class OrderTranslation:
    """One WooCommerce order read into an invoice request; all problems reported together."""

    def __init__(
        self, order: dict[str, Any], order_id: str, options: InvoiceOptions, shop: str | None
    ) -> None:
        self.order = order
        self.order_id = order_id
        self.options = options
        self.shop = shop
        self.fields = OrderFields()

    def draft(self) -> Draft:
        """The draft for this order, or `MappingError` listing every problem found."""
        fields, order = self.fields, self.order
        name = self._name()
        expected_total = fields.money(order, "total", "")
        items, line_discounts = self._lines()
        fee_items, fee_discounts = self._fees()
        values: dict[str, Any] = {
            "order_date": self._order_date(),
            "customer_po_number": self.options.po_prefix_for(self.shop) + name,
            "alternate_ids": [f"woocommerce:{self.order_id}"],
            "items": items + fee_items,
            "order_discount_amount": line_discounts + fee_discounts,
            "total_shipping": fields.money(order, "shipping_total", ""),
            "tax_amount": fields.money(order, "total_tax", ""),
            "ship_to": fields.address(fields.record(order, "shipping", ""), "shipping"),
            "tags": list(dict.fromkeys(self.options.tags)) or None,
            "public_note": fields.text(order, "customer_note", ""),
        }
        currency = self._currency()
        customer = self._customer()
        fields.raise_problems(f"WooCommerce order {self.order_id}")
        request = invoice_request(values, self.options, f"WooCommerce order {self.order_id}")
        return Draft(
            order_id=self.order_id,
            request=request,
            expected_total=expected_total,
            currency=currency,
            order_name=name,
            customer=customer,
        )

    def _name(self) -> str:
        name = _order_name(self.order)
        number = self.order.get("number")
        if name is None and number is not None and number != "":
            self.fields.refuse("number", f"must be a string, got {describe(number)}")
        return name or "#" + self.order_id

    def _order_date(self) -> dt.date:
        # `date_created` is in the site's own timezone (no offset): its date is the day the shop
        # saw. The GMT twin is only a fallback, since near midnight it names another day.
        for key in ("date_created", "date_created_gmt"):
            value = self.order.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, str):
                try:
                    return dt.datetime.fromisoformat(value.strip()).date()
                except ValueError:
                    pass
            self.fields.refuse(key, f"must be an ISO-8601 date-time, got {describe(value)}")
            return dt.date.min
        self.fields.refuse("date_created", "is missing (and so is date_created_gmt)")
        return dt.date.min

    def _lines(self) -> tuple[list[dict[str, Any]], Decimal]:
        lines = self.order.get("line_items")
        if not isinstance(lines, list) or not lines:
            problem = (
                "is missing"
                if lines is None
                else f"must be a non-empty list, got {describe(lines)}"
            )
            self.fields.refuse("line_items", problem)
            return [], ZERO
        items: list[dict[str, Any]] = []
        discounts = ZERO
        for where, line in self.fields.objects(self.order, "line_items", ""):
            quantity = self.fields.quantity(line, "quantity", where)
            subtotal = self.fields.money(line, "subtotal", where)
            total = self.fields.money(line, "total", where)
            # Coupons only ever lower a line; a total above its subtotal was typed in by hand,
            # and then the total is what the customer was charged.
            price_basis = max(subtotal, total)
            discounts += price_basis - total
            sku = self.fields.text(line, "sku", where)
            description = _plain(self.fields.text(line, "name", where))
            for count, unit in unit_prices(price_basis, quantity):
                items.append(
                    {
                        "quantity": Decimal(count),
                        "unit_price": unit,
                        "sku": sku,
                        "description": description,
                    }
                )
        return items, discounts

    def _fees(self) -> tuple[list[dict[str, Any]], Decimal]:
        # A positive fee (gift wrap, a payment surcharge) is revenue the customer was charged:
        # it becomes its own item, named after the fee and without a SKU, so the resolver books
        # it on `fallback_sku` (or the event says that option is missing). Folding it into
        # total_shipping would balance too, but would misstate shipping revenue in the books.
        # A negative fee is how WooCommerce expresses a cart discount: it joins the order
        # discount. Fee amounts exclude tax; their tax is already in `total_tax`.
        items: list[dict[str, Any]] = []
        discounts = ZERO
        for where, fee in self.fields.objects(self.order, "fee_lines", ""):
            amount = self.fields.money(fee, "total", where, signed=True)
            if amount < 0:
                discounts -= amount
            elif amount > 0:
                name = _plain(self.fields.text(fee, "name", where)) or "Fee"
                items.append(
                    {"quantity": Decimal(1), "unit_price": amount, "sku": None, "description": name}
                )
        return items, discounts

    def _currency(self) -> str | None:
        currency = self.fields.text(self.order, "currency", "")
        if currency is None:
            return None
        if not _CURRENCY.fullmatch(currency):
            self.fields.refuse("currency", f"must be a three-letter code, got {describe(currency)}")
            return None
        return currency.upper()

    def _customer(self) -> CustomerRef | None:
        fields = self.fields
        customer_id = fields.whole_number(self.order, "customer_id", "")
        billing = fields.record(self.order, "billing", "") or {}
        email = fields.text(billing, "email", "billing")
        if email is None and not customer_id:
            return None
        first = fields.text(billing, "first_name", "billing")
        last = fields.text(billing, "last_name", "billing")
        person = " ".join(part for part in (first, last) if part) or None
        address = fields.address(billing, "billing")
        return CustomerRef(
            email=email,
            customer_id=str(customer_id) if customer_id else None,  # 0 is a guest
            name=fields.text(billing, "company", "billing") or person,
            first_name=first,
            last_name=last,
            phone=fields.text(billing, "phone", "billing"),
            address=ShipTo(**address) if address else None,
        )


def _plain(text: str | None) -> str | None:
    # WordPress stores product and fee names HTML-escaped ("Tee &ndash; Black"); an invoice line
    # should read as the customer saw it.
    return html.unescape(text) if text else text
