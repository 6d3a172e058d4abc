"""Partner orders → Luminous invoice drafts.

Partner systems (an ERP, a marketplace, a point of sale) post one canonical order, published
as a JSON Schema (`partner_order.schema.json`, served at `/schemas/partner-order.json`), and
wait for the invoice. The models here mirror that schema rule for rule, so a refused order
lists every wrong field by its path in the order's own terms (`lines[0].quantity`).

The order states its total, and the invoice must reconcile with it to the cent:

    sum(quantity * unit_price) - discount + shipping + tax == total
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Callable
from decimal import Decimal
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import ErrorDetails

from bridge.errors import MappingError
from bridge.invoice import InvoiceItem, ShipTo
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
from mappings.fields import describe

__all__ = ["SCHEMA", "SCHEMA_PATH", "PartnerMapping", "PartnerOrder", "mapping", "parse_order"]

SCHEMA_PATH: Traversable = files(__package__ or "mappings") / "partner_order.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_bytes())

# The schema's patterns, anchored by `fullmatch` instead of ^…$.
_ORDER_ID = re.compile(r"[!-~]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_EMAIL = re.compile(r"([^@\s]+@[^@\s]+\.[^@\s]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,2}0*)?")
_UNIT_PRICE = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,6}0*)?")
_QUANTITY = re.compile(
    r"([1-9][0-9]{0,5}(\.[0-9]{1,3}0*)?|0\.([1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9])0*)"
)

MONEY_LIMIT = Decimal(1_000_000_000)
QUANTITY_LIMIT = Decimal(1_000_000)
CUSTOM_NUMBER_LIMIT = Decimal(10) ** 15
STATUSES = ("open", "cancelled")


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _number(
    label: str, pattern: re.Pattern[str], places: int, limit: Decimal, *, positive: bool = False
) -> Callable[[object], Decimal]:
    """A reader for a decimal string or JSON number, bounded and at most `places` decimals."""
    lowest = "greater than 0" if positive else "at least 0"

    def read(value: object) -> Decimal:
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int | Decimal)
            or (isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value))
        ):
            raise ValueError(f'must be {label} such as "12.50" or 12.5, got {describe(value)}')
        number = Decimal(value)
        if number <= 0 if positive else number < 0:
            raise ValueError(f"must be {lowest}, got {describe(value)}")
        if number >= limit:
            raise ValueError(f"must be less than {limit}, got {describe(value)}")
        if _decimals(number) > places:
            raise ValueError(f"has more than {places} decimal places ({describe(value)})")
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise ValueError(
                f"must be written without a sign or leading zeros, got {describe(value)}"
            )
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -places:  # only trailing zeros are past it
            number = number.quantize(Decimal(10) ** -places)
        return number

    return read


def _optional(read: Callable[[object], Any]) -> Callable[[object], Any]:
    return lambda value: None if value is None else read(value)


def _text(max_length: int) -> Callable[[object], str | None]:
    """Optional text: null or blank is absent, surrounding blanks go."""

    def read(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {describe(value)}")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters, got {len(value)}")
        return value.strip() or None

    return read


def _label(value: object) -> str:
    """1 to 255 characters, not blank, kept as given: Luminous matches custom field labels
    exactly as written."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {describe(value)}")
    if not value.strip():
        raise ValueError("must not be blank")
    if len(value) > 255:
        raise ValueError(f"must be at most 255 characters, got {len(value)}")
    return value


def _name(value: object) -> str:
    """Required short text (a SKU, a tag): like a label, surrounding blanks trimmed."""
    return _label(value).strip()


def _matching(pattern: re.Pattern[str], expected: str) -> Callable[[object], str]:
    def read(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"must be {expected}, got {describe(value)}")
        return value

    return read


def _date(value: object) -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"must be a date written YYYY-MM-DD, got {describe(value)}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"is not a calendar date ({describe(value)})") from None


def _email(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {describe(value)}")
    if len(value) > 255:
        raise ValueError(f"must be at most 255 characters, got {len(value)}")
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"must be an e-mail address, got {describe(value)}")
    return value or None


def _country(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
        raise ValueError(
            f'must be a two-letter ISO 3166-1 code in capitals, such as "US", got {describe(value)}'
        )
    return value


def _status(value: object) -> str:
    if value is None:
        return "open"
    if value not in STATUSES:
        raise ValueError(f'must be "open" or "cancelled", got {describe(value)}')
    return str(value)


def _custom_value(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > 1000:
            raise ValueError(f"must be at most 1000 characters, got {len(value)}")
        return value
    if isinstance(value, int | Decimal):
        if abs(Decimal(value)) >= CUSTOM_NUMBER_LIMIT:
            raise ValueError(f"must be between -{CUSTOM_NUMBER_LIMIT} and {CUSTOM_NUMBER_LIMIT}")
        if isinstance(value, Decimal) and _decimals(value) > 6:
            raise ValueError(f"has more than 6 decimal places ({describe(value)})")
        return value
    raise ValueError(f"must be a string, a number, true, false or null, got {describe(value)}")


OrderId = Annotated[
    str,
    BeforeValidator(_matching(_ORDER_ID, "1 to 64 printable ASCII characters without spaces")),
]
CurrencyCode = Annotated[
    str,
    BeforeValidator(
        _matching(_CURRENCY, 'a three-letter ISO 4217 code in capitals, such as "USD"')
    ),
]
Text = Annotated[str | None, BeforeValidator(_text(255))]
ShortText = Annotated[str | None, BeforeValidator(_text(64))]
LineText = Annotated[str | None, BeforeValidator(_text(1000))]
Note = Annotated[str | None, BeforeValidator(_text(10_000))]
Email = Annotated[str | None, BeforeValidator(_email)]
Country = Annotated[str | None, BeforeValidator(_country)]
Name = Annotated[str, BeforeValidator(_name)]
Date = Annotated[dt.date, BeforeValidator(_date)]
OptionalDate = Annotated[dt.date | None, BeforeValidator(_optional(_date))]
Amount = Annotated[Decimal, BeforeValidator(_number("an amount", _AMOUNT, 2, MONEY_LIMIT))]
OptionalAmount = Annotated[
    Decimal | None, BeforeValidator(_optional(_number("an amount", _AMOUNT, 2, MONEY_LIMIT)))
]
UnitPrice = Annotated[Decimal, BeforeValidator(_number("a price", _UNIT_PRICE, 6, MONEY_LIMIT))]
Quantity = Annotated[
    Decimal,
    BeforeValidator(_number("a quantity", _QUANTITY, 3, QUANTITY_LIMIT, positive=True)),
]
CustomFields = dict[
    Annotated[str, BeforeValidator(_label)], Annotated[Any, BeforeValidator(_custom_value)]
]
Status = Annotated[Literal["open", "cancelled"], BeforeValidator(_status)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Strict):
    """A postal address; every part optional."""

    address_1: Text = None
    address_2: Text = None
    city: Text = None
    state: Text = None
    zip: Text = None
    country: Country = None

    def ship_to(self) -> ShipTo | None:
        """The Luminous address, or None when no part is given."""
        parts = self.model_dump()
        return ShipTo(**parts) if any(parts.values()) else None


class Customer(_Strict):
    """The buyer, as the resolver needs it to find or create the Luminous company."""

    id: ShortText = None
    email: Email = None
    name: Text = None
    first_name: Text = None
    last_name: Text = None
    phone: ShortText = None
    billing_address: Address | None = None

    @model_validator(mode="after")
    def _identified(self) -> Customer:
        if not (self.id or self.email or self.name):
            raise ValueError(
                "needs at least one of id, email or name (leave customer out for a guest)"
            )
        return self


class Line(_Strict):
    """One order line: a SKU Luminous knows, how many, at what unit price."""

    sku: Name
    quantity: Quantity
    unit_price: UnitPrice
    description: LineText = None


class PartnerOrder(_Strict):
    """A partner order that passed every rule of the published schema."""

    order_id: OrderId
    order_number: ShortText = None
    order_date: Date
    currency: CurrencyCode
    customer: Customer | None = None
    ship_to: Address | None = None
    lines: Annotated[list[Line], Field(min_length=1, max_length=1000)]
    discount: OptionalAmount = None
    shipping: OptionalAmount = None
    tax: OptionalAmount = None
    total: Amount
    ship_by_date: OptionalDate = None
    note: Note = None
    private_note: Note = None
    tags: Annotated[list[Name] | None, Field(max_length=50)] = None
    custom_fields: Annotated[CustomFields | None, Field(max_length=50)] = None
    status: Status = "open"


def parse_order(payload: Any) -> PartnerOrder:
    """The order, checked against every rule of the schema; `MappingError` lists each problem."""
    try:
        return PartnerOrder.model_validate(payload)
    except pydantic.ValidationError as exc:
        details = [(_path(error["loc"]), _problem(error)) for error in exc.errors()]
        field, problem = details[0]
        more = len(details) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise MappingError(
            f"{_subject(payload)} cannot be invoiced: {field} {problem}{tail}", details
        ) from None


def _subject(payload: Any) -> str:
    order_id = payload.get("order_id") if isinstance(payload, dict) else None
    if isinstance(order_id, str) and _ORDER_ID.fullmatch(order_id):
        return f"partner order {order_id}"
    return "the partner order"


def _path(loc: tuple[int | str, ...]) -> str:
    """`("lines", 0, "quantity")` → `lines[0].quantity`."""
    if len(loc) == 3 and loc[0] == "custom_fields" and loc[2] == "[key]":
        loc = loc[:2]  # a label's own error is named by the label
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = part or '""'  # an empty key still needs a visible name
            path += f".{name}" if path else name
    return path or "$"


# Which model an unknown field was found in, by the path of its parent with indexes left out.
_MODELS: dict[tuple[str, ...], tuple[str, type[BaseModel]]] = {
    (): ("a partner order", PartnerOrder),
    ("customer",): ("a customer", Customer),
    ("customer", "billing_address"): ("an address", Address),
    ("ship_to",): ("an address", Address),
    ("lines",): ("an order line", Line),
}


def _problem(error: ErrorDetails) -> str:
    kind, value, ctx = error["type"], error["input"], error.get("ctx", {})
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return _unknown_field(error["loc"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be an object, got {describe(value)}"
    if kind == "list_type":
        return f"must be a list, got {describe(value)}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} entries, got {ctx['actual_length']}"
    return str(error["msg"])  # a rule this module does not word itself


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    parent = tuple(str(part) for part in loc[:-1] if not isinstance(part, int))
    thing, model = _MODELS.get(parent, ("this object", _Strict))
    guess = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    hint = f' (did you mean "{guess[0]}"?)' if guess else ""
    return f"is not a field of {thing}{hint}"


class PartnerMapping:
    """Translates a partner order into a Luminous invoice draft, a tag or a skip."""

    name = "partner"
    options_model: type[InvoiceOptions] = InvoiceOptions
    unique_order_ids = False  # unique per partner: two partners may use the same ids

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Draft | Skip | Tag:
        """Translate one delivery; raise `MappingError` naming every wrong field."""
        order = parse_order(delivery.payload)
        if order.status == "cancelled":
            return _cancellation(order, options)
        # The total is checked by the bridge (reconcile_totals): an order that does not add
        # up ends dead, with a detail on `total` naming both amounts.
        return _draft(order, options.po_prefix_for(delivery.shop), options)

    def identify(self, payload: Any) -> OrderRef | None:
        """The order a body names: its `order_id` and `order_number`, if they are well formed."""
        if not isinstance(payload, dict):
            return None
        order_id, number = payload.get("order_id"), payload.get("order_number")
        if not isinstance(order_id, str) or not _ORDER_ID.fullmatch(order_id):
            return None
        try:
            name = _text(64)(number) or order_id
        except ValueError:
            name = order_id
        return OrderRef(order_id, name)


mapping = PartnerMapping()


def _cancellation(order: PartnerOrder, options: InvoiceOptions) -> Tag | Skip:
    # Nothing is invoiced for a cancelled order; an invoice it already has may get a tag.
    name = order.order_number or order.order_id
    tag = options.tag_topics.get("cancelled")
    if tag:
        return Tag(order_id=order.order_id, tag=tag, reason="status cancelled", order_name=name)
    return Skip(
        reason='the order is cancelled (status "cancelled"); not invoiced',
        order_id=order.order_id,
    )


def _draft(order: PartnerOrder, po_prefix: str, options: InvoiceOptions) -> Draft:
    name = order.order_number or order.order_id
    tags = list(dict.fromkeys([*(order.tags or []), *options.tags]))
    values = {
        "order_date": order.order_date,
        "items": [
            InvoiceItem(
                quantity=line.quantity,
                unit_price=line.unit_price,
                sku=line.sku,
                description=line.description,
            )
            for line in order.lines
        ],
        "ship_by_date": order.ship_by_date,
        "customer_po_number": po_prefix + name,
        "public_note": order.note,
        "private_note": order.private_note,
        "total_shipping": order.shipping,
        "tax_amount": order.tax,
        "order_discount_amount": order.discount,
        "alternate_ids": [f"partner:{order.order_id}"],
        "tags": tags or None,
        "custom_fields": order.custom_fields or None,
        "ship_to": order.ship_to.ship_to() if order.ship_to else None,
    }
    request = invoice_request(values, options, f"partner order {order.order_id}")
    return Draft(
        order_id=order.order_id,
        request=request,
        expected_total=order.total,
        currency=order.currency,
        order_name=name,
        customer=_customer(order.customer),
    )


def _customer(customer: Customer | None) -> CustomerRef | None:
    if customer is None:
        return None
    address = customer.billing_address
    return CustomerRef(
        email=customer.email,
        customer_id=customer.id,
        name=customer.name,
        first_name=customer.first_name,
        last_name=customer.last_name,
        phone=customer.phone,
        address=address.ship_to() if address else None,
    )
