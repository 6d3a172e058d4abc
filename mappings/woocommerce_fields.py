"""Typed reads from a WooCommerce order: plain money strings, signed fee amounts, addresses.

Builds on the checked reads of `mappings.fields` (problems are collected with their
field paths, never raised one by one), adding what WooCommerce payloads need: money without a
shop/presentment `_set` wrapper, amounts that may be negative, and its address objects, which
come all-empty rather than absent when there is no address.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from mappings.fields import ZERO, FieldReader, describe, parse_amount, path

__all__ = ["ADDRESS_FIELDS", "OrderFields", "parse_signed_amount"]

_NEGATIVE_TEXT = re.compile(r"-[0-9]+(?:\.[0-9]+)?")

# Luminous's ship_to / company address field → WooCommerce's address field.
ADDRESS_FIELDS = {
    "address_1": "address_1",
    "address_2": "address_2",
    "city": "city",
    "state": "state",
    "zip": "postcode",
    "country": "country",
}


def parse_signed_amount(value: object) -> Decimal:
    """A money amount that may be negative, exact; raise ValueError saying what is wrong."""
    if isinstance(value, str) and _NEGATIVE_TEXT.fullmatch(value.strip()):
        return -parse_amount(value.strip()[1:])
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return -parse_amount(-value)
    if isinstance(value, Decimal) and value.is_finite() and value < 0:
        return -parse_amount(value.copy_abs())
    return parse_amount(value)


class OrderFields(FieldReader):
    """The field reader for WooCommerce orders, whose amounts are plain decimal strings."""

    def money(
        self, parent: dict[str, Any], key: str, where: str, *, signed: bool = False
    ) -> Decimal:
        """The amount at `parent[key]`; a missing or broken one counts as zero once recorded."""
        value = parent.get(key)
        if value is None:
            self.refuse(path(where, key), "is missing")
            return ZERO
        try:
            return parse_signed_amount(value) if signed else parse_amount(value)
        except ValueError as exc:
            self.refuse(path(where, key), str(exc))
            return ZERO

    def whole_number(self, parent: dict[str, Any], key: str, where: str) -> int | None:
        """A non-negative integer (a digit string is accepted); None when absent or broken."""
        value = parent.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit() and value.isascii():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            return value
        self.refuse(path(where, key), f"must be a whole number, got {describe(value)}")
        return None

    def record(self, parent: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
        """The object at `parent[key]`; absent or null is None."""
        value = parent.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.refuse(path(where, key), f"must be an object, got {describe(value)}")
        return None

    def address(self, found: dict[str, Any] | None, where: str) -> dict[str, str | None] | None:
        """An address object as ship_to fields; None when absent or when every field is blank."""
        if found is None:
            return None
        values = {
            target: self.text(found, source, where) for target, source in ADDRESS_FIELDS.items()
        }
        return values if any(values.values()) else None
