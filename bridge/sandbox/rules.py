"""Field rules with Laravel's messages, so the sandbox refuses a request the way Luminous does.

Luminous runs on Laravel, which trims every string and turns an empty one into null before
validating; the readers here do the same, so a blank `payment_terms` is "required", not "".
Numbers must be JSON numbers: a string is refused even where Laravel would coerce it, because
the bridge must never send money as text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

Number = int | Decimal

# Keeps every amount well inside Decimal's 28 digits, so totals stay exact.
LARGEST_NUMBER = Decimal(999_999_999)

_MISSING = object()
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Invalid(Exception):
    """A request Luminous would answer with 422; `errors` maps a field path to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Laravel's summary: the first message, and how many more there are."""
        messages = [message for found in self.errors.values() for message in found]
        if not messages:
            return "The given data was invalid."
        more = len(messages) - 1
        if more == 0:
            return messages[0]
        return f"{messages[0]} (and {more} more error{'s' if more > 1 else ''})"

    def body(self) -> dict[str, Any]:
        """The 422 body: `{"message", "errors"}`."""
        return {"message": self.message, "errors": self.errors}


class Errors:
    """Collects messages per field path in the order the rules ran."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_path.setdefault(path, []).append(message)

    def __contains__(self, path: str) -> bool:
        return path in self.by_path

    def count(self) -> int:
        return sum(len(found) for found in self.by_path.values())

    def raise_if_any(self) -> None:
        if self.by_path:
            raise Invalid(self.by_path)


def attribute(path: str) -> str:
    """How Laravel names a field in a message: `items.0.unit_price` → `items.0.unit price`."""
    return path.replace("_", " ")


def is_number(value: object) -> bool:
    """A JSON number as `bridge.wire.loads` returns it (a bool is not one)."""
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decimal_places(value: Number) -> int:
    """Places after the point once trailing zeros go, as Luminous sees a JSON number."""
    if isinstance(value, int):
        return 0
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def clean_string(value: object) -> object:
    """Trim a string and turn a blank one into None; leave anything else as it is."""
    if isinstance(value, str):
        trimmed = value.strip()
        return trimmed or None
    return value


class Reader:
    """Reads the fields of one JSON object under `prefix`, adding a message for each bad one."""

    def __init__(self, data: dict[str, Any], errors: Errors, prefix: str = "") -> None:
        self.data = data
        self.errors = errors
        self.prefix = prefix

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def _value(self, key: str, required: bool) -> object:
        value = clean_string(self.data.get(key, _MISSING))
        if value is _MISSING or value is None:
            if required:
                self.fail(key, "The {} field is required.")
            return _MISSING
        return value

    def fail(self, key: str, template: str) -> None:
        path = self.path(key)
        self.errors.add(path, template.format(attribute(path)))

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._value(key, required)
        if value is _MISSING:
            return None
        if not is_integer(value):
            self.fail(key, "The {} field must be an integer.")
            return None
        assert isinstance(value, int)
        return value

    def string(self, key: str, *, required: bool = False, max_length: int = 255) -> str | None:
        value = self._value(key, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.fail(key, "The {} field must be a string.")
            return None
        if len(value) > max_length:
            self.fail(key, f"The {{}} field must not be greater than {max_length} characters.")
            return None
        return value

    def text(self, key: str) -> str | None:
        """A nullable string of any length (notes)."""
        return self.string(key, max_length=65_535)

    def date(self, key: str, *, required: bool = False) -> dt.date | None:
        value = self._value(key, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            self.fail(key, "The {} field must match the format Y-m-d.")
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(key, "The {} field must be a valid date.")
            return None

    def number(
        self,
        key: str,
        *,
        required: bool = False,
        positive: bool = False,
        places: int | None = None,
    ) -> Number | None:
        """A JSON number ≥ 0 (> 0 when `positive`) with at most `places` decimals."""
        value = self._value(key, required)
        if value is _MISSING:
            return None
        if not is_number(value):
            self.fail(key, "The {} field must be a number.")
            return None
        assert isinstance(value, int | Decimal)
        if positive and value <= 0:
            self.fail(key, "The {} field must be greater than 0.")
        elif value < 0:
            self.fail(key, "The {} field must be at least 0.")
        elif value > LARGEST_NUMBER:
            self.fail(key, f"The {{}} field must not be greater than {LARGEST_NUMBER}.")
        elif places is not None and decimal_places(value) > places:
            self.fail(key, f"The {{}} field must have 0-{places} decimal places.")
        else:
            return value
        return None

    def strings(self, key: str, *, required: bool = False) -> list[str] | None:
        """A nullable array of non-empty strings of at most 255 characters."""
        value = self._value(key, required)
        if value is _MISSING:
            return None
        if not isinstance(value, list):
            self.fail(key, "The {} field must be an array.")
            return None
        items = Reader(dict(enumerate_keys(value)), self.errors, f"{self.path(key)}.")
        found = [items.string(str(index), required=True) for index in range(len(value))]
        return [item for item in found if item is not None]

    def mapping(self, key: str) -> dict[str, Any] | None:
        """A nullable JSON object."""
        value = self._value(key, False)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            self.fail(key, "The {} field must be an object.")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        """Laravel's `boolean`: true, false, 1, 0, "1" or "0"."""
        value = self._value(key, False)
        if value is _MISSING:
            return None
        if isinstance(value, bool):
            return value
        if value in (0, 1, "0", "1") and not isinstance(value, Decimal):
            return value in (1, "1")
        self.fail(key, "The {} field must be true or false.")
        return None

    def custom_fields(self, key: str = "custom_fields") -> dict[str, Any]:
        """An object keyed by custom-field label, each value a scalar or null."""
        found = self.mapping(key)
        if found is None:
            return {}
        clean: dict[str, Any] = {}
        for label, value in found.items():
            value = clean_string(value)
            if value is None or isinstance(value, str | bool) or is_number(value):
                clean[label] = value
            else:
                self.errors.add(
                    f"{self.path(key)}.{label}",
                    "The value must be a string, a number, a boolean or null.",
                )
        return clean

    def refuse_unknown(self, allowed: Iterable[str]) -> None:
        """Refuse keys outside the schema: in a request they are a typo in a mapping."""
        known = set(allowed)
        for key in self.data:
            if key not in known:
                self.errors.add(self.path(key), "unknown field")


def enumerate_keys(values: list[Any]) -> Iterable[tuple[str, Any]]:
    """An array's items keyed by their index as text, the way Laravel paths name them."""
    return ((str(index), value) for index, value in enumerate(values))
