"""JSON on the wire: exact decimals in, no float artifacts out.

Incoming bodies are parsed so that a number with a fraction or exponent becomes a
`Decimal` and an integer stays an `int` of any size, so neither money nor a 64-bit
order ID ever passes through float. Outgoing JSON writes a `Decimal` as a plain JSON
number (`12.5`, never `12.499999` or `"12.5"`).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["MalformedJSON", "dumps", "format_decimal", "loads"]


class MalformedJSON(ValueError):
    """The bytes are not a JSON document this bridge accepts; the message says why."""


# No amount or ID comes near these; past them a number is an attack on memory or CPU
# (`1e999999999` written out in full is a gigabyte).
MAX_NUMBER_CHARS = 100
MAX_EXPONENT = 100

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise MalformedJSON(f"{name} is not a valid JSON number")


def _check_length(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedJSON(
            f"number too large ({len(text)} characters, at most {MAX_NUMBER_CHARS})"
        )


def _parse_int(text: str) -> int:
    _check_length(text)
    return int(text)


def _parse_decimal(text: str) -> Decimal:
    _check_length(text)
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # the JSON grammar has no NaN or Infinity
    if max(abs(exponent), abs(value.adjusted())) > MAX_EXPONENT:
        raise MalformedJSON(f"number {text} is out of range (exponent over {MAX_EXPONENT})")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Senders and readers disagree on which of two equal keys wins; refuse to guess.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJSON(f"duplicate key {key[:64]!r} in an object")
            seen.add(key)
    return obj


def _refuse_lone_surrogates(value: Any) -> None:
    """A `\\ud800` escape with no partner is no character: it cannot be stored or echoed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                raise MalformedJSON(
                    f"string contains a lone surrogate \\u{ord(found.group()):04x}"
                    " (an escape that is not half of a pair)"
                )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def loads(data: bytes | str) -> Any:
    """Parse JSON exactly; raise `MalformedJSON` with a reason a person can act on."""
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise MalformedJSON("body starts with a UTF-8 byte order mark; send plain UTF-8")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJSON(f"body is not UTF-8 (invalid byte at offset {exc.start})") from exc
    else:
        text = data
    if not text.strip():
        raise MalformedJSON("body is empty")
    try:
        value = json.loads(
            text,
            parse_float=_parse_decimal,
            parse_int=_parse_int,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise MalformedJSON("JSON nested too deeply") from exc
    if _ESCAPED_SURROGATE.search(text):
        _refuse_lone_surrogates(value)
    return value


def format_decimal(value: Decimal) -> str:
    """A finite Decimal as JSON number text, without exponent (`1E+2` → `100`)."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as a JSON number")
    text = format(value, "f")
    if text in ("-0", "-0.0") or (text.startswith("-") and Decimal(text) == 0):
        text = text[1:]
    return text


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format_decimal(value))
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="python", exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """Serialise to JSON bytes; Decimals become exact JSON numbers."""
    option = orjson.OPT_NON_STR_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(value, default=_default, option=option)
