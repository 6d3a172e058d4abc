"""JSON on the wire: exact decimals in, no float artifacts out.

Incoming bodies are parsed so that a number with a fraction or exponent becomes a
`Decimal` and an integer stays an `int` of any size, so neither money nor a 64-bit
order ID ever passes through float. Outgoing JSON writes a `Decimal` as a plain JSON
number (`12.5`, never `12.499999` or `"12.5"`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["MalformedJSON", "dumps", "format_decimal", "loads"]


class MalformedJSON(ValueError):
    """The bytes are not a JSON document this bridge accepts; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise MalformedJSON(f"{name} is not a valid JSON number")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:  # more digits than Python converts safely
        raise MalformedJSON(f"number too large ({len(text)} digits)") from exc


def loads(data: bytes | str) -> Any:
    """Parse JSON exactly; raise `MalformedJSON` with a reason a person can act on."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJSON(f"body is not UTF-8 (byte {exc.start})") from exc
    else:
        text = data
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_int=_parse_int,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise MalformedJSON("JSON nested too deeply") from exc


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
