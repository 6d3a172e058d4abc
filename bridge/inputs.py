"""Checks on operator input that the admin routes and the command line share."""

from __future__ import annotations

MAX_EVENT_ID = 2**63 - 1  # the store's integer keys are signed 64-bit


def whole_number(text: str, low: int, high: int) -> int | None:
    """`text` as an int from `low` to `high`, else None; ASCII digits only (`int()` takes
    more: `"²"` passes `isdigit()` and `int()` refuses it, `"١٢"` and `"1_0"` it reads)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None


def storable(text: str) -> bool:
    """Whether a store can hold and compare `text`: UTF-8 and no NUL (PostgreSQL has none)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, as from undecodable command-line bytes
        return False
    return True
