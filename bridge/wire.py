"""JSON on the wire: exact decimals in, no float artifacts out.

Incoming bodies are parsed so that a number with a fraction or exponent becomes a
`Decimal` and an integer stays an `int` of any size, so neither money nor a 64-bit
order ID ever passes through float. Outgoing JSON writes a `Decimal` as a plain JSON
number (`12.5`, never `12.499999` or `"12.5"`).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import orjson

__all__ = ["MalformedJSON", "Parsed", "dumps", "format_decimal", "loads", "parse_body"]


class MalformedJSON(ValueError):
    """The bytes are not a JSON document this bridge accepts; the message says why."""


# No amount or ID comes near these; past them a number is an attack on memory or CPU
# (`1e999999999` written out in full is a gigabyte).
MAX_NUMBER_CHARS = 100
MAX_EXPONENT = 100

# Bodies over this are parsed on a thread, so the event loop goes on answering others.
OFF_LOOP_BYTES = 64 * 1024

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
    try:
        value = Decimal(text)
    except ArithmeticError:  # an exponent past what Decimal itself can hold
        raise MalformedJSON(
            f"number {text} is out of range (exponent over {MAX_EXPONENT})"
        ) from None
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


def _strict_loads(data: bytes | str) -> Any:
    """The exact parser with Python hooks: slow, but says precisely what is wrong."""
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


def _decimal(text: str) -> Decimal:
    """msgspec's float hook: a number without an exponent, of at most the allowed length,
    is within every bound as written; anything else is checked in full."""
    if len(text) <= MAX_NUMBER_CHARS and "e" not in text and "E" not in text:
        return Decimal(text)
    return _parse_decimal(text)


# Digits, signs and points become "0", the "E" of an exponent stays, as does a colon, anything
# else becomes a space. For a large body, whose floats the C hook read, one C pass over the
# parse written back out then shows an integer too long for the strict parser's liking
# (msgspec keeps big integers exact) and a Decimal with an exponent: a Decimal's text has one
# ("1E+999") only when the JSON number did, or when it is very small ("1E-7"). A string that
# looks the same only takes the slower way.
_NUMBER_SHAPE = bytes(
    ord("0")
    if chr(i) in "0123456789.+-"
    else ord("E")
    if chr(i) == "E"
    else ord(":")
    if chr(i) == ":"
    else ord(" ")
    for i in range(256)
)
_TOO_LONG = b"0" * (MAX_NUMBER_CHARS + 1)
# A Python hook per float (~0.15 µs) is cheaper than writing out and searching the shape
# (~1.5 ns a byte) unless floats come more often than one in ~100 bytes, as in a body made
# of them. A body up to 64 KiB always takes the hook; a larger one only if its points (each
# float's, and any in strings) are that rare. A float written without one ("1e5") only makes
# the estimate low: either way is exact.
_BYTES_PER_FLOAT = 100
_CHECKED = msgspec.json.Decoder(float_hook=_decimal)
_FAST = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder()


def _fast_loads(data: bytes) -> Any:
    """One C parse, or `_SLOW` where only the strict parser can decide.

    msgspec keeps the last of two equal keys, so duplicates are found by counting colons:
    each pair in the text has one, as does each colon in a string, and the parse written
    back out has one fewer per pair it dropped. An escaped colon would skew the count; a
    body without a backslash (one memchr) has none.
    """
    if b"\\" in data and (b"\\u003a" in data or b"\\u003A" in data):
        return _SLOW
    checked = len(data) <= OFF_LOOP_BYTES or data.count(b".") * _BYTES_PER_FLOAT < len(data)
    try:
        value = (_CHECKED if checked else _FAST).decode(data)
    except (msgspec.MsgspecError, RecursionError, ArithmeticError):
        # a hook's MalformedJSON arrives wrapped; Decimal("1e99999999999") raises in C
        return _SLOW
    written = _written_back(value, checked)
    if written is None or written.count(b":") != data.count(b":"):
        return _SLOW
    if not checked and b"0E0" in written:  # an exponent: parse again, checking each number
        try:
            return _CHECKED.decode(data)
        except (msgspec.MsgspecError, RecursionError):
            return _SLOW
    return value


def _written_back(value: Any, checked: bool) -> bytes | None:
    """The parse written back out, for its colons; None if a number needs the strict parser.

    Where the hook checked every float, orjson's refusal of an integer past 64 bits leaves
    any integer too long to the strict parser. Otherwise the shape shows one.
    """
    if checked:
        try:
            return orjson.dumps(value, default=str)
        except TypeError:
            return None
    shape = _ENCODER.encode(value).translate(_NUMBER_SHAPE)
    return None if _TOO_LONG in shape else shape


_SLOW: Any = object()


def loads(data: bytes | str) -> Any:
    """Parse JSON exactly; raise `MalformedJSON` with a reason a person can act on.

    Well-formed bodies take the fast parse; anything it refuses or cannot vouch for goes
    to the strict one, so answers and error messages are the strict parser's own.
    """
    if isinstance(data, bytes):
        value = _fast_loads(data)
        if value is not _SLOW:
            return value
    return _strict_loads(data)


@dataclass(frozen=True)
class Parsed:
    """A body's parsed document, handed on so that it is not parsed again."""

    value: Any


async def parse_body(data: bytes) -> Parsed:
    """`loads`, on a thread for a large body: its parse must not hold up other requests."""
    if len(data) > OFF_LOOP_BYTES:
        return Parsed(await asyncio.to_thread(loads, data))
    return Parsed(loads(data))


def format_decimal(value: Decimal) -> str:
    """A finite Decimal as JSON number text, without exponent (`1E+2` → `100`)."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as a JSON number")
    text = format(value, "f")
    if text in ("-0", "-0.0") or (text.startswith("-") and Decimal(text) == 0):
        text = text[1:]
    return text


def _default(value: Any) -> Any:
    if type(value) is Decimal:
        text = str(value)
        # Without an exponent and not negative (so neither -0 nor NaN), str is already plain.
        if "E" not in text and "0" <= text[0] <= "9":
            return orjson.Fragment(text)
        return orjson.Fragment(format_decimal(value))
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
