"""Search keys: how an event can be found by whatever a person knows of its order.

An event's `search_keys` column holds its keys (order id, name with and without `#`, PO
number, customer e-mail, invoice id, SKUs) lower-cased, one per line, with a line break
before the first and after the last, so a whole key is found with one `LIKE` that works
the same in SQLite and PostgreSQL: `%\\n<key>\\n%`. Keys only ever grow: an order's later
facts (its PO number once mapped, its invoice once created) are added to what it had.
"""

from __future__ import annotations

from collections.abc import Iterable

_SEPARATOR = "\n"
_ESCAPE = "\\"  # the ESCAPE character every LIKE in queries.sql names


def keys_of(values: Iterable[object]) -> list[str]:
    """Values as search keys: text, trimmed, lower-cased, an order name also without `#`."""
    keys: list[str] = []
    for value in values:
        if value is None:
            continue
        key = " ".join(str(value).split()).lower()  # no line break survives inside a key
        for each in (key, key.lstrip("#")):
            if each and each not in keys:
                keys.append(each)
    return keys


def merged(stored: str | None, values: Iterable[object]) -> str | None:
    """The column's text with `values` added (each key once, in the order first seen)."""
    keys = (stored or "").split(_SEPARATOR)
    keys = [key for key in keys if key]
    keys += [key for key in keys_of(values) if key not in keys]
    return _SEPARATOR + _SEPARATOR.join(keys) + _SEPARATOR if keys else None


def _escaped(text: str) -> str:
    for special in (_ESCAPE, "%", "_"):
        text = text.replace(special, _ESCAPE + special)
    return text


def key_pattern(reference: str) -> str:
    """A LIKE pattern for one whole key: `3044`, `#3044`, `SH-#3044`, an e-mail, a SKU."""
    key = " ".join(reference.split()).lower()
    return f"%{_SEPARATOR}{_escaped(key)}{_SEPARATOR}%"


def text_pattern(text: str) -> str:
    """A LIKE pattern for any part of a key or a reason."""
    return f"%{_escaped(' '.join(text.split()).lower())}%"
