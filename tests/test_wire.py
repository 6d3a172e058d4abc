"""`wire.loads` against the standard library's parser, the oracle for what JSON means.

The fast parse must give exactly what `json.loads` with Decimal floats gives (same types,
same Decimal exponents), and refuse what the bridge refuses: duplicate keys, numbers out of
range, non-UTF-8 and the rest of the hostile corpus.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge import wire
from tests.hostile_cases import MALFORMED

GOLDEN = sorted(Path(__file__).parent.glob("golden/*/*/body.json"))


def oracle(data: bytes) -> Any:
    return json.loads(data.decode(), parse_float=Decimal)


def same(left: Any, right: Any) -> bool:
    # repr tells 12.10 from 12.1 and an int from a Decimal, where == would not
    return repr(left) == repr(right)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda path: path.parent.name)
def test_golden_bodies_parse_as_the_standard_library_parses_them(path: Path) -> None:
    data = path.read_bytes()
    assert same(wire.loads(data), oracle(data))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda path: path.parent.name)
def test_well_formed_bodies_take_the_one_c_parse(path: Path) -> None:
    assert wire._fast_loads(path.read_bytes()) is not wire._SLOW


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "x:y", "b": {"c:d": [1, 2.50, -0.0, 1.5E-3, 99999999999999999999]}}',
        b'{"escaped": "\\u003a", "pair": "\\ud83d\\ude00", "n": 1e99}',
        b"[" + b"0.10," * 5000 + b"1]",
        b"[" * 500 + b"]" * 500,
        b'{"tiny": 0.0000001, "big": 1E+100, "hex": "349e2e2f", "when": "1E-5"}',
        b"[0." + b"0" * 97 + b"1, -" + b"9" * 99 + b", 1e-100]",
    ],
)
def test_values_come_out_exact(data: bytes) -> None:
    assert same(wire.loads(data), oracle(data))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"id": 1, "id": 1}', "duplicate key 'id'"),
        (b'{"a": {"b": "x:y", "b": "x:y"}}', "duplicate key 'b'"),
        (b'{"a": "\\u003a", "a": 2}', "duplicate key 'a'"),
        (b"[" + b"1" * 101 + b"]", "number too large"),
        (b"[" + b"1" * 60 + b"e" + b"1" * 30 + b"]", "out of range"),
        (b'{"p": 1e101}', "out of range"),
        (b'{"p": 1e-99999999999999999999}', "out of range"),
        (b"[-" + b"1" * 100 + b"]", "number too large"),
        (b"[1." + b"0" * 99 + b"]", "number too large"),
        (b"[0." + b"0" * 150 + b"1]", "number too large"),
    ],
)
def test_what_the_fast_parse_would_keep_is_refused(data: bytes, says: str) -> None:
    with pytest.raises(wire.MalformedJSON, match=says):
        wire.loads(data)


# Bodies over 64 KiB dense with floats read them with the C hook and search for exponents
# instead; string-heavy ones keep the Python hook. Both must answer as a small body does.
LARGE = {
    "floats": b"0.10," * 20_000,
    "strings": b'"' + b"a long note " * 10_000 + b'", 0.10,',
}


@pytest.mark.parametrize("kind", sorted(LARGE))
def test_a_large_body_with_exponents_comes_out_exact(kind: str) -> None:
    data = b"[" + LARGE[kind] + b"1.5E-3, 1e99, 0.0000001, 2.50, 99999999999999999999]"
    assert len(data) > wire.OFF_LOOP_BYTES
    assert same(wire.loads(data), oracle(data))


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        (b"1e101", "out of range"),
        (b"1e-99999999999999999999", "out of range"),
        (b"1." + b"0" * 99, "number too large"),
        (b"0." + b"0" * 150 + b"1", "number too large"),
        (b"1" * 101, "number too large"),
    ],
)
@pytest.mark.parametrize("kind", sorted(LARGE))
def test_a_large_body_refuses_what_a_small_one_does(kind: str, tail: bytes, says: str) -> None:
    data = b"[" + LARGE[kind] + tail + b"]"
    assert len(data) > wire.OFF_LOOP_BYTES
    with pytest.raises(wire.MalformedJSON, match=says):
        wire.loads(data)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_hostile_bodies_are_refused_with_the_reason(name: str) -> None:
    data, why = MALFORMED[name]
    with pytest.raises(wire.MalformedJSON) as refused:
        wire.loads(data)
    assert why in f"body is not valid JSON: {refused.value}".lower()


@pytest.mark.anyio
async def test_a_large_body_is_parsed_off_the_loop_to_the_same_document() -> None:
    data = b'{"n": [' + b"12.50," * 20_000 + b"1]}"
    assert len(data) > wire.OFF_LOOP_BYTES
    assert same((await wire.parse_body(data)).value, oracle(data))


def test_decimals_go_out_as_plain_numbers() -> None:
    amounts = [Decimal(text) for text in ("12.50", "1E+2", "-0.00", "-1.5", "1E-7")]
    assert wire.dumps(amounts) == b"[12.50,100,0.00,-1.5,0.0000001]"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_decimal_that_is_no_number_is_not_written(value: str) -> None:
    with pytest.raises(TypeError):
        wire.dumps([Decimal(value)])
