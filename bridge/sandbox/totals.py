"""Luminous's invoice arithmetic, worked by the sandbox from the JSON request it received.

Every number is taken as an exact fraction of its JSON text and the result is rounded once,
half-up, to cents. Nothing here is shared with the bridge's own reckoning (`bridge.invoice`):
the sandbox is the oracle end-to-end tests hold the bridge's totals against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from bridge.sandbox.rules import clean_string, is_number

# A JSON number has at most this many places (see `bridge.wire`); sums of them no more.
_MOST_PLACES = 400


@dataclass(frozen=True)
class InvoiceTotals:
    """What Luminous answers for a request's money: each line's and the invoice's."""

    line_totals: list[Decimal]
    total: Decimal
    total_qty: Decimal


def exact(number: object) -> Fraction:
    """A JSON number (an `int`, or a `Decimal` made from its text) as a fraction; null is 0."""
    number = clean_string(number)  # Laravel reads a blank amount as null
    if number is None:
        return Fraction(0)
    if not is_number(number):
        raise TypeError(f"{number!r} is not a JSON number (a float would have lost its digits)")
    assert isinstance(number, int | Decimal)
    return Fraction(number)


def to_cents(amount: Fraction) -> Decimal:
    """Round once to cents, half-up; a negative half goes away from zero, as PHP's `round`."""
    cents = math.floor(abs(amount) * 100 + Fraction(1, 2))
    return Decimal(f"{'-' if amount < 0 and cents else ''}{cents}E-2")


def written_out(amount: Fraction) -> Decimal:
    """A sum of JSON numbers, exactly, as a `Decimal` (its expansion always ends)."""
    for places in range(_MOST_PLACES + 1):
        scaled = amount * 10**places
        if scaled.denominator == 1:
            return Decimal(f"{scaled.numerator}E-{places}")
    raise ValueError(f"{amount} has no decimal expansion of at most {_MOST_PLACES} places")


def invoice_totals(body: Mapping[str, Any]) -> InvoiceTotals:
    """Σ quantity × unit_price − order_discount_amount + total_shipping + tax_amount, from a
    `POST /invoices` body that passed validation."""
    quantities = [exact(item.get("quantity")) for item in body["items"]]
    prices = [exact(item.get("unit_price")) for item in body["items"]]
    lines = [quantity * price for quantity, price in zip(quantities, prices, strict=True)]
    exact_total = (
        sum(lines, Fraction(0))
        - exact(body.get("order_discount_amount"))
        + exact(body.get("total_shipping"))
        + exact(body.get("tax_amount"))
    )
    return InvoiceTotals(
        line_totals=[to_cents(line) for line in lines],
        total=to_cents(exact_total),
        total_qty=written_out(sum(quantities, Fraction(0))),
    )
