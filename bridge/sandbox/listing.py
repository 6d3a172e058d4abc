"""List endpoints: Luminous's `field[op]=value` filters and Laravel's page/per_page meta."""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.sandbox.rules import Invalid
from bridge.wire import format_decimal

Record = dict[str, Any]
Values = Callable[[Record], list[str]]

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
STRING_OPERATORS = frozenset(
    {"eq", "neq", "contains", "notcontains", "in", "notin", "set", "notset"}
)
DATE_OPERATORS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "set", "notset"})
_NEGATED = {"neq": "eq", "notcontains": "contains", "notin": "in"}
_ORDERINGS: dict[str, Callable[[str, str], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_NOT_FILTERS = frozenset({"page", "per_page", "sort", "limit"})
_PARAMETER = re.compile(r"(?P<field>[^\[\]]+)(?:\[(?P<op>[a-z]+)\])?")


@dataclass(frozen=True)
class Condition:
    """One `field[op]=value` query parameter (no operator means `eq`)."""

    field: str
    op: str
    value: str


@dataclass(frozen=True)
class Filterable:
    """A field a list can be filtered on: how to read its values and which operators it takes.

    `fold` compares without case, as a case-insensitive database collation does.
    """

    values: Values
    operators: frozenset[str] = STRING_OPERATORS
    fold: bool = False

    def read(self, record: Record) -> list[str]:
        found = self.values(record)
        return [value.casefold() for value in found] if self.fold else found

    def wanted(self, condition: Condition) -> Condition:
        if not self.fold:
            return condition
        return Condition(condition.field, condition.op, condition.value.casefold())


def conditions(params: Iterable[tuple[str, str]]) -> list[Condition]:
    """The filter parameters of a query string, in order."""
    found = []
    for name, value in params:
        match = _PARAMETER.fullmatch(name)
        if match is None or match["field"] in _NOT_FILTERS:
            continue
        found.append(Condition(match["field"], match["op"] or "eq", value.strip()))
    return found


def select(
    records: Iterable[Record],
    where: Sequence[Condition],
    fields: Callable[[str], Filterable | None],
) -> list[Record]:
    """Records meeting every condition on a known field; unknown fields are ignored."""
    checks = []
    for condition in where:
        field = fields(condition.field)
        if field is None:
            continue
        if condition.op not in field.operators:
            raise Invalid(
                {
                    condition.field: [
                        f"The {condition.op!r} operator is not supported for "
                        f"{condition.field} (use one of {', '.join(sorted(field.operators))})."
                    ]
                }
            )
        if field.operators is DATE_OPERATORS and condition.op not in ("set", "notset"):
            _check_date(condition)
        checks.append((field, field.wanted(condition)))
    return [
        record
        for record in records
        if all(_matches(field.read(record), condition) for field, condition in checks)
    ]


def _check_date(condition: Condition) -> None:
    try:
        dt.date.fromisoformat(condition.value)
    except ValueError:
        raise Invalid(
            {condition.field: [f"The {condition.field} filter must be a date (YYYY-MM-DD)."]}
        ) from None


def _matches(values: list[str], condition: Condition) -> bool:
    op, wanted = condition.op, condition.value
    present = [value for value in values if value != ""]
    if op == "set":
        return bool(present)
    if op == "notset":
        return not present
    if op in _NEGATED:
        return not _matches(values, Condition(condition.field, _NEGATED[op], wanted))
    if op == "eq":
        return wanted in present
    if op == "contains":
        return any(wanted in value for value in present)
    if op == "in":
        choices = {choice.strip() for choice in wanted.split(",")}
        return any(value in choices for value in present)
    # Dates as YYYY-MM-DD compare correctly as text.
    compare = _ORDERINGS[op]
    return any(compare(value, wanted) for value in present)


def as_text(value: object) -> str:
    """A stored value as a filter compares it; null is the empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return str(value)


def page_request(params: Iterable[tuple[str, str]], *, size: str = "per_page") -> tuple[int, int]:
    """`page` and the page size (`per_page`, or `limit` on some lists); raise `Invalid`."""
    given = dict(params)
    errors: dict[str, list[str]] = {}
    page = _whole_number(given.get("page"), "page", errors, default=1)
    per_page = _whole_number(
        given.get(size), size, errors, default=DEFAULT_PER_PAGE, largest=MAX_PER_PAGE
    )
    if errors:
        raise Invalid(errors)
    return page, per_page


def _whole_number(
    text: str | None,
    key: str,
    errors: dict[str, list[str]],
    *,
    default: int,
    largest: int | None = None,
) -> int:
    name = key.replace("_", " ")
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        errors[key] = [f"The {name} field must be an integer."]
        return default
    if value < 1:
        errors[key] = [f"The {name} field must be at least 1."]
    elif largest is not None and value > largest:
        errors[key] = [f"The {name} field must not be greater than {largest}."]
    return value


def paginate(records: Sequence[Record], page: int, per_page: int) -> dict[str, Any]:
    """One page of `records` with Laravel's meta; `from`/`to` are null on an empty page."""
    total = len(records)
    start = (page - 1) * per_page
    shown = list(records[start : start + per_page])
    return {
        "data": shown,
        "meta": {
            "current_page": page,
            "from": start + 1 if shown else None,
            "last_page": max(1, math.ceil(total / per_page)),
            "per_page": per_page,
            "to": start + len(shown) if shown else None,
            "total": total,
        },
    }
