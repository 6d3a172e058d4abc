"""The bridge's invoice total against the sandbox's, which works in exact fractions: the check
that refuses an order whose invoice would not add up must agree with Luminous to the cent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import wire
from bridge.invoice import invoice_total
from bridge.sandbox.totals import invoice_totals

Line = tuple[Decimal, Decimal]


def both(lines: list[Line], discount: Decimal, shipping: Decimal, tax: Decimal) -> list[Decimal]:
    ours = invoice_total(
        lines, order_discount_amount=discount, total_shipping=shipping, tax_amount=tax
    )
    body = {
        "items": [{"quantity": quantity, "unit_price": price} for quantity, price in lines],
        "order_discount_amount": discount,
        "total_shipping": shipping,
        "tax_amount": tax,
    }
    return [ours, invoice_totals(body).total]


@pytest.mark.parametrize(
    ("quantity", "price", "total"),
    [
        # 31 digits: rounded to 28 first, this would be 0.005 and then a cent.
        ("0.4999999999999999999999999999999", "0.01", "0.00"),
        ("0.5000000000000000000000000000001", "0.01", "0.01"),
        # An amount past 28 digits was refused by quantize (InvalidOperation), not totalled.
        ("123456789012345678901234567890.9", "1", "123456789012345678901234567890.90"),
        ("1E-100", "1E+100", "1.00"),
    ],
)
def test_long_numbers_are_totalled_exactly(quantity: str, price: str, total: str) -> None:
    lines = [(wire.loads(quantity), wire.loads(price))]
    assert both(lines, Decimal(0), Decimal(0), Decimal(0)) == [Decimal(total)] * 2


# Numbers as the parser lets them in: at most 100 characters, exponents within ±100.
numbers = st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(min_value=0, max_value=10**40),
    st.integers(min_value=-55, max_value=50),
)
amounts = st.one_of(numbers, st.decimals(min_value=-1000, max_value=1000, places=2))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.tuples(numbers, numbers), min_size=1, max_size=6),
    discount=amounts,
    shipping=amounts,
    tax=amounts,
)
def test_the_total_is_the_sandboxs_for_any_numbers_the_parser_takes(
    lines: list[Line], discount: Decimal, shipping: Decimal, tax: Decimal
) -> None:
    ours, luminous = both(lines, discount, shipping, tax)
    assert ours == luminous
