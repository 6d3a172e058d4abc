"""Typed reads from an order payload: shop-money amounts, whole numbers, text, lists.

Shared by the built-in mappings. Every read is checked, and a problem is collected as a
`(field, problem)` pair with the field's path (`line_items[2].price_set.shop_money.amount`)
instead of stopping at the first, so a refused order lists everything wrong with it at once.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bridge.errors import MappingError

ZERO = Decimal("0.00")

# Shopify writes amounts as plain decimal strings; anything else (exponents, NaN, "1_000",
# thousands separators) is refused rather than guessed at.
_AMOUNT_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_ID_TEXT = re.compile(r"[0-9]{1,20}")
# The common case of `parse_amount`, decided by one match: no blanks, no sign, at most six
# decimals and under 13 characters pass every one of its checks as they stand.
_PLAIN_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,6})?")
# Bounds that keep every sum and product of an order exact in Decimal's 28-digit default
# context: a trillion per amount, a million per quantity, micro-units at the finest.
AMOUNT_LIMIT = Decimal(10) ** 12
QUANTITY_LIMIT = 1_000_000
AMOUNT_DECIMALS = 6


def path(where: str, key: str) -> str:
    """The dotted path of `key` inside the object at `where`."""
    return f"{where}.{key}" if where else key


def describe(value: object) -> str:
    """A short, safe rendering of an unexpected value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | Decimal):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def parse_id(value: object, bits: int) -> str | None:
    """A positive whole-number id below 2**bits (an int, or a string of digits) as text; None
    for anything else. Ids never pass through float: JSON integers arrive exact."""
    if isinstance(value, str) and _ID_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**bits:
        return str(value)
    return None


def plain_amount(parent: dict[str, Any], key: str) -> Decimal | None:
    """`FieldReader.amount` for a well-formed plain amount, read without a path or a problem
    list; None for anything else, which the caller then reads the long way."""
    money_set = parent.get(key + "_set")
    if money_set is None:
        raw = parent.get(key)
    else:
        shop = money_set.get("shop_money") if type(money_set) is dict else None
        raw = shop.get("amount") if type(shop) is dict else None
    if type(raw) is str and len(raw) < 13 and _PLAIN_AMOUNT.fullmatch(raw):
        return Decimal(raw)
    return None


def plain_sum(parent: dict[str, Any], key: str, field: str) -> Decimal | None:
    """`FieldReader.sum_amounts` for a well-formed list (or none), read without paths; None
    for anything else, which the caller then sums the long way, recording every problem."""
    items = parent.get(key)
    if items is None:
        return ZERO
    if type(items) is not list:
        return None
    total = ZERO
    for item in items:
        plain = plain_amount(item, field) if type(item) is dict else None
        if plain is None:
            return None
        total += plain
    return total


def parse_amount(value: object) -> Decimal:
    """A non-negative money amount, exact; raise ValueError saying what is wrong with it."""
    if isinstance(value, str):
        text = value.strip()
        if not _AMOUNT_TEXT.fullmatch(text):
            raise ValueError(f'must be a decimal amount such as "12.50", got {describe(value)}')
        amount = Decimal(text)
        # The pattern has no exponent, NaN or Infinity, and at most six digits after the
        # point need no further look: only longer fractions are normalised and counted.
        point = text.find(".")
        if (point < 0 or len(text) - point <= AMOUNT_DECIMALS + 1) and len(text) < 13:
            if amount < 0:
                raise ValueError(f"must not be negative, got {describe(value)}")
            return amount
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    else:
        raise ValueError(f'must be a decimal amount such as "12.50", got {describe(value)}')
    if not amount.is_finite():
        raise ValueError(f"must be a finite amount, got {describe(value)}")
    if amount.copy_abs() >= AMOUNT_LIMIT:
        raise ValueError(f"is implausibly large ({describe(value)})")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_DECIMALS:
        raise ValueError(f"has more than {AMOUNT_DECIMALS} decimal places ({describe(value)})")
    if amount < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    return amount


class FieldReader:
    """Reads typed values out of a parsed payload and collects what is wrong with them."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def refuse(self, field: str, problem: str) -> None:
        """Record one problem; reading goes on so that all of them are reported together."""
        self.problems.append((field, problem))

    def raise_problems(self, subject: str) -> None:
        """Raise `MappingError` naming the first problem (and how many more) if there are any."""
        if not self.problems:
            return
        field, problem = self.problems[0]
        more = len(self.problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise MappingError(f"{subject} cannot be invoiced: {field} {problem}{tail}", self.problems)

    def objects(
        self, parent: dict[str, Any], key: str, where: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """The objects of the list `parent[key]` with their paths; absent or null is empty."""
        items = parent.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            self.refuse(path(where, key), f"must be a list, got {describe(items)}")
            return []
        base = path(where, key)
        found = []
        for index, item in enumerate(items):
            if isinstance(item, dict):
                found.append((f"{base}[{index}]", item))
            else:
                self.refuse(f"{base}[{index}]", f"must be an object, got {describe(item)}")
        return found

    def text(self, parent: dict[str, Any], key: str, where: str) -> str | None:
        """A string with surrounding blanks removed; absent, null or blank is None."""
        value = parent.get(key)
        if type(value) is str:
            return value.strip() or None
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(path(where, key), f"must be a string, got {describe(value)}")
            return None
        return value.strip() or None

    def flag(self, parent: dict[str, Any], key: str, where: str) -> bool:
        """A boolean; absent or null is False."""
        value = parent.get(key)
        if value is None or isinstance(value, bool):
            return bool(value)
        self.refuse(path(where, key), f"must be true or false, got {describe(value)}")
        return False

    def quantity(self, parent: dict[str, Any], key: str, where: str) -> int:
        """A whole number of units, at least 1; 1 stands in after a problem."""
        value = parent.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if 1 <= value <= QUANTITY_LIMIT:
                return value
            self.refuse(path(where, key), f"must be between 1 and {QUANTITY_LIMIT}, got {value}")
            return 1
        problem = (
            "is missing" if value is None else f"must be a whole number, got {describe(value)}"
        )
        self.refuse(path(where, key), problem)
        return 1

    def amount(self, parent: dict[str, Any], key: str, where: str) -> Decimal:
        """`key` in shop money: `<key>_set.shop_money.amount` when present, else `key` itself.

        Presentment money is never read. A missing or broken amount counts as zero after its
        problem is recorded.
        """
        plain = plain_amount(parent, key)
        if plain is not None:
            return plain
        money_set = parent.get(key + "_set")
        if money_set is not None:
            # The common shape read without building its path; any problem takes the long way.
            shop = money_set.get("shop_money") if isinstance(money_set, dict) else None
            raw = shop.get("amount") if isinstance(shop, dict) else None
            if raw is not None:
                try:
                    return parse_amount(raw)
                except ValueError:
                    pass
            return self.shop_money(money_set, path(where, f"{key}_set"))
        raw = parent.get(key)
        if raw is None:
            self.refuse(path(where, key), "is missing")
            return ZERO
        return self._parse(raw, path(where, key))

    def optional_amount(self, parent: dict[str, Any], key: str, where: str) -> Decimal | None:
        """Like `amount`, but None when neither `key` nor `<key>_set` is given."""
        if parent.get(key) is None and parent.get(f"{key}_set") is None:
            return None
        return self.amount(parent, key, where)

    def shop_money(self, money_set: object, where: str) -> Decimal:
        """The shop-currency amount of a `{"shop_money": {"amount": ...}, ...}` object."""
        shop = money_set.get("shop_money") if isinstance(money_set, dict) else None
        if not isinstance(shop, dict) or shop.get("amount") is None:
            self.refuse(
                path(where, "shop_money.amount"),
                'is missing (expected {"shop_money": {"amount": "..."}})',
            )
            return ZERO
        return self._parse(shop["amount"], path(where, "shop_money.amount"))

    def sum_amounts(self, parent: dict[str, Any], key: str, field: str, where: str) -> Decimal:
        """The sum of `field` over the objects listed in `parent[key]`."""
        plain = plain_sum(parent, key, field)
        if plain is not None:
            return plain
        total = ZERO
        for item_path, item in self.objects(parent, key, where):
            total += self.amount(item, field, item_path)
        return total

    def _parse(self, value: object, field: str) -> Decimal:
        try:
            return parse_amount(value)
        except ValueError as exc:
            self.refuse(field, str(exc))
            return ZERO


MICRO = Decimal("0.000001")


def unit_prices(amount: Decimal, quantity: int) -> list[tuple[int, Decimal]]:
    """(quantity, unit price) pairs, each price ≤ 6 decimals, that multiply back to `amount`.

    When `amount / quantity` is not exact at 6 decimals the line is split in two: all units
    but one at the rounded price, and one unit at whatever remains, so no cent is lost.
    """
    rounded = (amount / quantity).quantize(MICRO, rounding=ROUND_HALF_UP)
    if rounded * quantity == amount:
        return [(quantity, amount / quantity)]
    rest = amount - rounded * (quantity - 1)
    return [(quantity - 1, rounded), (1, rest)]
