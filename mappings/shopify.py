"""Shopify `orders/create` deliveries → Luminous invoice drafts.

The payload is Shopify's REST order. Amounts are read in the shop's currency
(`*_set.shop_money`, else the plain field), never in presentment money. Luminous has no line
discount and no tax-inclusive flag, so the invoice is built to reconcile to the order's total:

    sum(quantity * unit_price) - order_discount_amount + total_shipping + tax_amount
        == total_price

- unit_price is the line's price; in a tax-inclusive order, its price less its own tax lines.
- order_discount_amount is the sum of the lines' discount allocations (shipping discounts are
  taken off shipping instead, which is why `total_discounts` is not used).
- total_shipping is each shipping line's price less its own allocations (and, tax-inclusive,
  its tax); `discounted_price` is not used since it ignores order-level discounts.
- tax_amount is `total_tax`, plus duties charged on top of the prices.

An order that does not add up is mapped as it is: the bridge's reconciliation refuses it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import field_validator

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
from mappings.fields import ZERO, FieldReader, describe, parse_id, plain_sum, unit_prices

__all__ = ["TAG_TOPICS", "ShopifyMapping", "ShopifyOptions", "mapping"]

_ORDER_ID = re.compile(r"[0-9]{1,20}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_ADDRESS_FIELDS = {
    "address_1": "address1",
    "address_2": "address2",
    "city": "city",
    "state": "province_code",
    "zip": "zip",
    "country": "country_code",
}
# Where an order may state the duties it charged, most specific first, with its `_set` key.
_ORDER_DUTIES = tuple(
    (key, f"{key}_set") for key in ("original_total_duties", "total_duties", "current_total_duties")
)


def _is_refund(payload: dict[str, Any]) -> bool:
    """A refunds/create body: it names its order in `order_id` and has no lines of its own."""
    return "line_items" not in payload and ("refund_line_items" in payload or "order_id" in payload)


def _unless(shown: Callable[[dict[str, Any]], bool], missing: str) -> Callable[[Any], str | None]:
    return lambda payload: None if shown(payload) else missing


# The topics that may tag an invoice, and what their signed body must show for it: the topic
# header is not signed, so an order's first delivery posted again as `orders/cancelled` must
# not tag a live invoice. Each check returns what the body lacks, or None.
TAG_TOPICS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "orders/cancelled": _unless(
        lambda order: order.get("cancelled_at") not in (None, ""), "its cancelled_at is not set"
    ),
    "refunds/create": _unless(_is_refund, "it is an order, not a refund"),
    "orders/paid": _unless(
        lambda order: order.get("financial_status") == "paid", "its financial_status is not paid"
    ),
    "orders/fulfilled": _unless(
        lambda order: order.get("fulfillment_status") == "fulfilled",
        "its fulfillment_status is not fulfilled",
    ),
    "orders/partially_fulfilled": _unless(
        lambda order: order.get("fulfillment_status") == "partial",
        "its fulfillment_status is not partial",
    ),
}


class ShopifyOptions(InvoiceOptions):
    """Options of a Shopify source: the common ones, and whether test orders are skipped."""

    skip_test_orders: bool = True

    @field_validator("tag_topics")
    @classmethod
    def _topics_the_body_can_confirm(cls, tag_topics: dict[str, str]) -> dict[str, str]:
        # A key with a slash is a topic; one without is a financial status (orders/updated).
        for key in tag_topics:
            if "/" in key and key not in TAG_TOPICS:
                known = ", ".join(TAG_TOPICS)
                raise ValueError(
                    f"topic {key!r} cannot be confirmed from its body, so it cannot tag "
                    f"(topics that can: {known}; or a financial status such as refunded)"
                )
        return tag_topics


class ShopifyMapping:
    """Translates a Shopify order into a Luminous invoice draft, or says why it is skipped."""

    name = "shopify"
    options_model: type[InvoiceOptions] = ShopifyOptions
    unique_order_ids = True  # Shopify order ids are unique across all shops

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Draft | Skip | Tag:
        """Translate one delivery; raise `MappingError` when the payload is unusable."""
        order = delivery.payload
        if not isinstance(order, dict):
            raise MappingError(
                "a Shopify order must be a JSON object",
                [("$", f"must be an object, got {describe(order)}")],
            )
        topic = delivery.topic or ""
        if topic in options.tag_topics:
            check = TAG_TOPICS.get(topic)
            missing = check(order) if check else "the bridge cannot check this topic"
            if missing:
                ref = self.identify(order)
                return Skip(
                    f"topic {topic} is not signed and the signed body does not bear it out "
                    f"({missing}), so nothing is tagged",
                    ref.order_id if ref else None,
                )
            return _tag(order, topic, options.tag_topics[topic])
        # A later update (orders/updated) whose financial status is configured, such as
        # "partially_refunded", tags the invoice; an order's first delivery never does.
        status = order.get("financial_status")
        later = delivery.topic not in (None, "orders/create")
        if later and isinstance(status, str) and status in options.tag_topics:
            return _tag(order, f"financial_status {status}", options.tag_topics[status])
        _refuse_refund(order, delivery.topic)
        order_id = _order_id(order)
        reason = _skip_reason(order, skip_test_orders=getattr(options, "skip_test_orders", True))
        if reason:
            return Skip(reason=reason, order_id=order_id)
        return OrderTranslation(order, order_id, options, delivery.shop).draft()

    def identify(self, payload: Any) -> OrderRef | None:
        """The order an order or refund body names: its id (a refund's `order_id`), its name."""
        if not isinstance(payload, dict):
            return None
        field, raw = _id_field(payload)
        order_id = parse_id(raw, 64)
        if order_id is None:
            return None
        name = None if field == "order_id" else payload.get("name")
        return OrderRef(order_id, (name.strip() or None) if isinstance(name, str) else None)


mapping = ShopifyMapping()


def _id_field(payload: dict[str, Any]) -> tuple[str, Any]:
    # A refund names its order in `order_id`; an order carries its own `id`.
    return (
        ("order_id", payload.get("order_id")) if _is_refund(payload) else ("id", payload.get("id"))
    )


def _order_id(order: dict[str, Any]) -> str:
    field, raw = _id_field(order)
    order_id = parse_id(raw, 64)
    if order_id is not None:
        return order_id
    problem = (
        "is missing" if raw is None else f"must be a positive 64-bit integer, got {describe(raw)}"
    )
    raise MappingError(f"not a usable Shopify order: {field} {problem}", [(field, problem)])


def _skip_reason(order: dict[str, Any], *, skip_test_orders: bool) -> str | None:
    reasons = []
    if skip_test_orders and order.get("test") is True:
        reasons.append("a test order (skip_test_orders is on)")
    cancelled_at = order.get("cancelled_at")
    if cancelled_at is not None and cancelled_at != "":
        cancel_reason = order.get("cancel_reason")
        because = cancel_reason if isinstance(cancel_reason, str) and cancel_reason else "not given"
        when = cancelled_at if isinstance(cancelled_at, str) else describe(cancelled_at)
        reasons.append(f"cancelled at {when} (cancel_reason: {because})")
    if order.get("financial_status") == "voided":
        reasons.append("its payment was voided (financial_status: voided)")
    return "; ".join(reasons) or None


def _tag(order: dict[str, Any], topic: str, tag: str) -> Tag:
    """A later event in the order's life (orders/cancelled, refunds/create…): tag its invoice."""
    name = None if _is_refund(order) else order.get("name")
    return Tag(
        order_id=_order_id(order),
        tag=tag,
        reason=topic,
        order_name=name if isinstance(name, str) and name else None,
    )


def _refuse_refund(order: dict[str, Any], topic: str | None) -> None:
    # A refunds/create body has an id too; say what it is rather than "line_items is missing".
    if not _is_refund(order):
        return
    sent_as = f" (topic {topic})" if topic else ""
    raise MappingError(
        f"the payload is a refund{sent_as}, not an order: refunds are not invoiced",
        [("line_items", "is missing: this is a refund (it has refund_line_items/order_id)")],
    )


class OrderTranslation:
    """One Shopify order read into an invoice request; all problems are reported together."""

    def __init__(
        self, order: dict[str, Any], order_id: str, options: InvoiceOptions, shop: str | None
    ) -> None:
        self.order = order
        self.order_id = order_id
        self.options = options
        self.shop = shop
        self.fields = FieldReader()
        self.taxes_included = self.fields.flag(order, "taxes_included", "")

    def draft(self) -> Draft:
        """The draft for this order, or `MappingError` listing every problem found."""
        fields, order = self.fields, self.order
        name = fields.text(order, "name", "")
        expected_total = fields.amount(order, "total_price", "")
        values: dict[str, Any] = {
            "order_date": self._order_date(),
            "customer_po_number": self.options.po_prefix_for(self.shop)
            + (name or self._fallback_name()),
            "alternate_ids": [f"shopify:{self.order_id}"],
            "items": self._items(),
            "order_discount_amount": self._line_discounts(),
            "total_shipping": self._shipping(),
            "tax_amount": self._tax(),
            "ship_to": self._ship_to(),
            "tags": self._tags(),
            "public_note": fields.text(order, "note", ""),
        }
        currency = self._currency()
        fields.flag(order, "test", "")  # a "test" that is not a boolean was not understood
        fields.raise_problems(f"Shopify order {self.order_id}")
        request = invoice_request(values, self.options, f"Shopify order {self.order_id}")
        return Draft(
            order_id=self.order_id,
            request=request,
            expected_total=expected_total,
            currency=currency,
            order_name=name,
            customer=self._customer(),
        )

    def _fallback_name(self) -> str:
        number = self.order.get("order_number")
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            return f"#{number}"
        if isinstance(number, str) and _ORDER_ID.fullmatch(number):
            return f"#{number}"
        return self.order_id

    def _order_date(self) -> dt.date:
        # The date the shop saw, in the shop's own offset: 23:30 at -07:00 is still that day.
        for key in ("processed_at", "created_at"):
            value = self.order.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, str):
                try:
                    return dt.datetime.fromisoformat(value).date()
                except ValueError:
                    pass
            self.fields.refuse(key, f"must be an ISO-8601 date-time, got {describe(value)}")
            return dt.date.min
        self.fields.refuse("processed_at", "is missing (and so is created_at)")
        return dt.date.min

    def _items(self) -> list[dict[str, Any]]:
        lines = self.order.get("line_items")
        if not isinstance(lines, list) or not lines:
            problem = (
                "is missing"
                if lines is None
                else f"must be a non-empty list, got {describe(lines)}"
            )
            self.fields.refuse("line_items", problem)
            return []
        items: list[dict[str, Any]] = []
        for where, line in self.fields.objects(self.order, "line_items", ""):
            quantity = self.fields.quantity(line, "quantity", where)
            price = self.fields.amount(line, "price", where)
            if self.taxes_included:
                amount = price * quantity
                amount -= self.fields.sum_amounts(line, "tax_lines", "price", where)
                if amount < 0:
                    self.fields.refuse(f"{where}.tax_lines", "add up to more than the line's price")
                    continue
                pairs = unit_prices(amount, quantity)
            else:
                pairs = [(quantity, price)]
            sku, description = self._describe_line(line, where)
            for count, unit in pairs:
                items.append(
                    {
                        "quantity": Decimal(count),
                        "unit_price": unit,
                        "sku": sku,
                        "description": description,
                    }
                )
        return items

    def _describe_line(self, line: dict[str, Any], where: str) -> tuple[str | None, str | None]:
        sku = self.fields.text(line, "sku", where)
        title = self.fields.text(line, "title", where) or self.fields.text(line, "name", where)
        variant = self.fields.text(line, "variant_title", where)
        if line.get("tip") is not None or line.get("tip_payment_gateway") is not None:
            return sku, "Tip"
        if title and variant:
            return sku, f"{title} - {variant}"
        return sku, title

    def _tax(self) -> Decimal:
        total_tax = self.fields.optional_amount(self.order, "total_tax", "") or ZERO
        return total_tax + self._duties()

    def _line_discounts(self) -> Decimal:
        lines = self.order.get("line_items")
        if type(lines) is list:
            # Well-formed lines are summed without their paths; anything else the long way.
            total = ZERO
            for line in lines:
                part = (
                    plain_sum(line, "discount_allocations", "amount")
                    if type(line) is dict
                    else None
                )
                if part is None:
                    break
                total += part
            else:
                return total
        total = ZERO
        for where, line in self._line_objects():
            total += self.fields.sum_amounts(line, "discount_allocations", "amount", where)
        return total

    def _shipping(self) -> Decimal:
        total = ZERO
        for where, line in self.fields.objects(self.order, "shipping_lines", ""):
            net = self.fields.amount(line, "price", where)
            net -= self.fields.sum_amounts(line, "discount_allocations", "amount", where)
            if self.taxes_included:
                net -= self.fields.sum_amounts(line, "tax_lines", "price", where)
            if net < 0:
                self.fields.refuse(where, "its discounts and taxes add up to more than its price")
            total += net
        return total

    def _duties(self) -> Decimal:
        # Duties are a levy collected with the order, not goods: they join tax_amount, since an
        # item would need a SKU Luminous knows. With duties_included they are already inside
        # the line prices and must not be added again.
        if self.fields.flag(self.order, "duties_included", ""):
            return ZERO
        for key, money_set in _ORDER_DUTIES:
            if self.order.get(money_set) is not None:
                return self.fields.amount(self.order, key, "")
        lines = self.order.get("line_items")
        if type(lines) is list:
            for line in lines:
                if type(line) is not dict or line.get("duties") not in (None, []):
                    break
            else:
                return ZERO  # the usual case: no line lists a duty
        total = ZERO
        for where, line in self._line_objects():
            for duty_path, duty in self.fields.objects(line, "duties", where):
                if duty.get("price_set") is not None:
                    total += self.fields.amount(duty, "price", duty_path)
                else:
                    total += self.fields.shop_money(duty, duty_path)
        return total

    def _line_objects(self) -> list[tuple[str, dict[str, Any]]]:
        lines = self.order.get("line_items")
        if not isinstance(lines, list):
            return []
        return [
            (f"line_items[{i}]", line) for i, line in enumerate(lines) if isinstance(line, dict)
        ]

    def _customer(self) -> CustomerRef | None:
        """Who bought, for the resolver; None for a guest with no e-mail (POS, say)."""
        order, fields = self.order, self.fields
        raw_customer, raw_billing = order.get("customer"), order.get("billing_address")
        customer: dict[str, Any] = raw_customer if isinstance(raw_customer, dict) else {}
        billing: dict[str, Any] = raw_billing if isinstance(raw_billing, dict) else {}
        email = None
        for value in (order.get("email"), order.get("contact_email"), customer.get("email")):
            if isinstance(value, str) and value.strip():
                email = value.strip()
                break
        raw_id = customer.get("id")
        customer_id = str(raw_id) if isinstance(raw_id, int | str) and str(raw_id) else None
        if email is None and customer_id is None:
            return None
        first = fields.text(customer, "first_name", "customer") or fields.text(
            billing, "first_name", "billing_address"
        )
        last = fields.text(customer, "last_name", "customer") or fields.text(
            billing, "last_name", "billing_address"
        )
        address = {
            target: fields.text(billing, source, "billing_address")
            for target, source in _ADDRESS_FIELDS.items()
        }
        return CustomerRef(
            email=email,
            customer_id=customer_id,
            name=fields.text(billing, "company", "billing_address"),
            first_name=first,
            last_name=last,
            phone=fields.text(customer, "phone", "customer")
            or fields.text(billing, "phone", "billing_address"),
            address=ShipTo(**address) if any(address.values()) else None,
        )

    def _ship_to(self) -> dict[str, str | None] | None:
        address = self.order.get("shipping_address")
        if address is None:
            return None
        if not isinstance(address, dict):
            self.fields.refuse("shipping_address", f"must be an object, got {describe(address)}")
            return None
        values = {
            target: self.fields.text(address, source, "shipping_address")
            for target, source in _ADDRESS_FIELDS.items()
        }
        return values if any(values.values()) else None

    def _tags(self) -> list[str] | None:
        raw = self.order.get("tags")
        shop_tags: list[str] = []
        if isinstance(raw, str):
            shop_tags = [tag.strip() for tag in raw.split(",") if tag.strip()]
        elif raw is not None:
            self.fields.refuse("tags", f"must be a comma-separated string, got {describe(raw)}")
        tags = list(dict.fromkeys([*shop_tags, *self.options.tags]))
        return tags or None

    def _currency(self) -> str | None:
        currency = self.fields.text(self.order, "currency", "")
        if currency is None:
            return None
        if not _CURRENCY.fullmatch(currency):
            self.fields.refuse("currency", f"must be a three-letter code, got {describe(currency)}")
            return None
        return currency.upper()
