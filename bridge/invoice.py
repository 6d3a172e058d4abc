"""Luminous's invoice, as `POST /invoices` takes it and as Luminous answers it.

Money is `Decimal` here and a plain JSON number on the wire (see `bridge.wire`). Requests
are strict (unknown fields are a bug in a mapping); responses are lenient (Luminous adds
fields, and sometimes sends IDs as strings).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

CENT = Decimal("0.01")
# Digits enough that Σ quantity × unit_price is exact for every number the parser lets in
# (100 characters, exponents within ±100, so a product spans at most ~400 digits). The default
# 28 would round a 31-digit quantity before the cents are rounded, a cent from Luminous's total.
_EXACT = Context(prec=2000, Emax=1000, Emin=-1000)

Money = Annotated[Decimal, Field(allow_inf_nan=False)]
UnitPrice = Annotated[Decimal, Field(allow_inf_nan=False, decimal_places=6)]


def _no_float(value: Any) -> Any:
    # A float here means someone lost precision upstream; refuse instead of guessing.
    if isinstance(value, float):
        raise ValueError("money must be a Decimal or a decimal string, not a float")
    return value


ExactMoney = Annotated[Money, BeforeValidator(_no_float)]
ExactUnitPrice = Annotated[UnitPrice, BeforeValidator(_no_float)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvoiceItem(_Request):
    quantity: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    unit_price: ExactUnitPrice
    product_id: int | None = None
    sku: str | None = None
    description: str | None = None


class ShipTo(_Request):
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None


class InvoiceRequest(_Request):
    """The body of `POST /invoices`, every documented field."""

    company_id: int | None = None  # set by the resolver before sending
    order_date: dt.date
    payment_terms: str
    items: Annotated[list[InvoiceItem], Field(min_length=1)]
    ship_by_date: dt.date | None = None
    customer_po_number: str | None = None
    public_note: str | None = None
    private_note: str | None = None
    total_shipping: ExactMoney | None = None
    tax_amount: ExactMoney | None = None
    order_discount_amount: ExactMoney | None = None
    warehouse_id: int | None = None
    sales_channel_id: int | None = None
    revenue_account_id: int | None = None
    invoice_export_template_id: int | None = None
    alternate_ids: list[str] | None = None
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
    ship_to: ShipTo | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready body: Decimals kept exact, dates as `YYYY-MM-DD`, nulls left out."""
        body = self.model_dump(mode="python", exclude_none=True)
        for key in ("order_date", "ship_by_date"):
            if key in body:
                body[key] = body[key].isoformat()
        return body


def invoice_total(
    items: list[tuple[Decimal, Decimal]],
    *,
    order_discount_amount: Decimal | None,
    total_shipping: Decimal | None,
    tax_amount: Decimal | None,
) -> Decimal:
    """Luminous's total: Σ quantity × unit_price − discount + shipping + tax, exact, then
    rounded once, half-up, to cents."""
    with localcontext(_EXACT):
        exact = sum((quantity * price for quantity, price in items), Decimal(0))
        exact += (total_shipping or 0) + (tax_amount or 0) - (order_discount_amount or 0)
        return exact.quantize(CENT, rounding=ROUND_HALF_UP)


def request_total(request: InvoiceRequest) -> Decimal:
    """The total Luminous will compute for this request."""
    return invoice_total(
        [(item.quantity, item.unit_price) for item in request.items],
        order_discount_amount=request.order_discount_amount,
        total_shipping=request.total_shipping,
        tax_amount=request.tax_amount,
    )


def _lenient_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


LenientId = Annotated[int, BeforeValidator(_lenient_int)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class InvoiceCustomer(_Lenient):
    """The company an invoice is on (Luminous answers it as `customer`)."""

    id: LenientId | None = None


class InvoiceLine(_Lenient):
    """One line as Luminous answers it: `qty`, where the request says `quantity`."""

    sku: str | None = None
    product_id: LenientId | None = None
    qty: Decimal | None = None


class Invoice(_Lenient):
    """An invoice as Luminous returns it; fields we do not use are kept, not refused."""

    id: LenientId
    customer_po_number: str | None = None
    order_date: str | None = None
    total: Decimal | None = None
    status: str | None = None
    customer: InvoiceCustomer | None = None
    company_id: LenientId | None = None
    items: list[InvoiceLine] | None = None
    custom_fields: dict[str, Any] | None = None

    @property
    def company(self) -> int | None:
        """The invoice's company, from whichever field Luminous filled in."""
        if self.company_id is not None:
            return self.company_id
        return self.customer.id if self.customer is not None else None

    @property
    def order_day(self) -> dt.date | None:
        """The invoice date; Luminous answers a date-time where the request sent a date."""
        if not self.order_date:
            return None
        try:
            return dt.date.fromisoformat(self.order_date[:10])
        except ValueError:
            return None
