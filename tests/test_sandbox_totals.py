"""The sandbox's own invoice arithmetic, against figures worked by hand."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from bridge import wire
from bridge.sandbox.totals import exact, invoice_totals, to_cents, written_out


def totals_of(text: str) -> tuple[str, list[str], str]:
    """(total, line totals, total_qty) for a request body given as JSON text."""
    found = invoice_totals(wire.loads(text))
    return (
        wire.format_decimal(found.total),
        [wire.format_decimal(line) for line in found.line_totals],
        wire.format_decimal(found.total_qty),
    )


def body(items: str, **amounts: str) -> str:
    fields = "".join(f', "{key}": {value}' for key, value in amounts.items())
    return f'{{"items": [{items}]{fields}}}'


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        # 2 × 12.50 + 9.95 + 5.00 shipping + 2.10 tax = 25.00 + 9.95 + 7.10
        (
            body(
                '{"quantity": 2, "unit_price": 12.50}, {"quantity": 1, "unit_price": 9.95}',
                total_shipping="5.00",
                tax_amount="2.10",
            ),
            ("42.05", ["25.00", "9.95"], "3"),
        ),
        # 3 × 19.99 = 59.97; − 6.00 + 4.99 + 4.20 = 63.16
        (
            body(
                '{"quantity": 3, "unit_price": 19.99}',
                order_discount_amount="6.00",
                total_shipping="4.99",
                tax_amount="4.20",
            ),
            ("63.16", ["59.97"], "3"),
        ),
        # Rounded once: each line is 0.004 (0.00 alone), together 0.008 → 0.01.
        (
            body('{"quantity": 1, "unit_price": 0.004}, {"quantity": 1, "unit_price": 0.004}'),
            ("0.01", ["0.00", "0.00"], "2"),
        ),
        # 21 % VAT included: 10.00 gross is 8.264463 net; 3 × 8.264463 = 24.793389,
        # + 5.21 tax = 30.003389 → 30.00.
        (
            body('{"quantity": 3, "unit_price": 8.264463}', tax_amount="5.21"),
            ("30.00", ["24.79"], "3"),
        ),
        # Half-up, not half-even, and not through float (where 2.675 is 2.67499…).
        (body('{"quantity": 1, "unit_price": 2.675}'), ("2.68", ["2.68"], "1")),
        (body('{"quantity": 1, "unit_price": 0.125}'), ("0.13", ["0.13"], "1")),
        (body('{"quantity": 1, "unit_price": 0.004999}'), ("0.00", ["0.00"], "1")),
        # 1.5 × 19.99 = 29.985 → 29.99; 0.25 more of it is 4.9975 → 5.00.
        (
            body('{"quantity": 1.5, "unit_price": 19.99}, {"quantity": 0.25, "unit_price": 19.99}'),
            ("34.98", ["29.99", "5.00"], "1.75"),
        ),
        # An exponent is just another way to write the number: 1.2E1 × 1e0 = 12.
        (body('{"quantity": 1.2E1, "unit_price": 1e0}'), ("12.00", ["12.00"], "12")),
        # 999 999 999 × 999 999 999.999999 = 999 999 999 × 10⁹ − 999.999999
        (
            body('{"quantity": 999999999, "unit_price": 999999999.999999}'),
            ("999999998999999000.00", ["999999998999999000.00"], "999999999"),
        ),
        # Past Decimal's 28 digits: 0.4999…9 (31 digits) × 0.01 is just under half a cent,
        # which a 28-digit product would round up to exactly half, then to 0.01.
        (
            body('{"quantity": 0.4999999999999999999999999999999, "unit_price": 0.01}'),
            ("0.00", ["0.00"], "0.4999999999999999999999999999999"),
        ),
        # More discount than goods: −0.005 goes to −0.01, away from zero.
        (
            body('{"quantity": 1, "unit_price": 0.005}', order_discount_amount="0.01"),
            ("-0.01", ["0.01"], "1"),
        ),
    ],
)
def test_totals_match_hand_worked_figures(
    request_text: str, expected: tuple[str, list[str], str]
) -> None:
    assert totals_of(request_text) == expected


@pytest.mark.parametrize("absent", ["null", '""', '"  "'])
def test_a_null_or_blank_amount_counts_as_zero(absent: str) -> None:
    amounts = {"order_discount_amount": absent, "total_shipping": absent, "tax_amount": absent}
    assert totals_of(body('{"quantity": 2, "unit_price": 1.10}', **amounts))[0] == "2.20"
    assert totals_of(body('{"quantity": 2, "unit_price": 1.10}'))[0] == "2.20"


@pytest.mark.parametrize("number", [0.1, True, "1.00", [1]])
def test_only_json_numbers_are_taken(number: Any) -> None:
    with pytest.raises(TypeError, match="not a JSON number"):
        exact(number)


def test_exact_keeps_every_digit_of_the_text() -> None:
    assert exact(Decimal("0.1")) == Fraction(1, 10)
    assert exact(2**64 + 1) == Fraction(2**64 + 1)
    assert exact(wire.loads("1.00000000000000000000000000000000001")) == Fraction(
        10**35 + 1, 10**35
    )


def test_cents_round_half_up_and_never_write_minus_zero() -> None:
    assert [
        str(to_cents(Fraction(value)))
        for value in ("0.005", "0.015", "-0.005", "-0.004", "0", "12.344999", "7")
    ] == ["0.01", "0.02", "-0.01", "0.00", "0.00", "12.34", "7.00"]


def test_written_out_is_exact_or_refuses() -> None:
    assert str(written_out(Fraction(7, 4))) == "1.75"
    assert str(written_out(Fraction(3))) == "3"
    with pytest.raises(ValueError, match="no decimal expansion"):
        written_out(Fraction(1, 3))
