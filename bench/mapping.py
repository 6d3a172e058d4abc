"""Mapping and parsing speed, per call, measured with timeit.

    .venv/bin/python bench/mapping.py

For the Shopify golden cases (sixty lines, and the example order): parse (`wire.loads`), map
and reconcile, each and together. For 1 MiB bodies (the default `max_body_bytes`): the exact
parse a delivery gets (once, on receipt), the signature check, and plain parsers for
comparison.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bridge import wire
from bridge.mapping import Delivery, Draft, Mapping, load_mapping, reconcile_totals
from bridge.verify import SCHEMES
from tests.orders import SKUS, body, shopify_order

GOLDEN = Path(__file__).parent.parent / "tests" / "golden" / "shopify"
CASES = ("sixty-lines-tax-included-rounding", "example-order")
OPTIONS = {"company_id": 42, "payment_terms": "Due on receipt"}
MIB = 1024 * 1024
SECRET = "bench-secret"


def per_call(work: Callable[[], object], repeat: int = 5) -> float:
    """Seconds per call: the best of `repeat` rounds of about 0.2 s each."""
    timer = timeit.Timer(work)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat, number)) / number


def show(label: str, seconds: float) -> None:
    print(f"  {label:<44} {seconds * 1e6:>10.1f} µs")


def delivery_parts(case: Path) -> tuple[bytes, dict[str, str]]:
    raw_headers = json.loads((case / "headers.json").read_text())
    return (case / "body.json").read_bytes(), {k.lower(): v for k, v in raw_headers.items()}


def draft_of(mapping: Mapping, options: Any, content: bytes, headers: dict[str, str]) -> Draft:
    delivery = Delivery(
        payload=wire.loads(content),
        headers=headers,
        topic=headers.get("x-shopify-topic"),
        shop=headers.get("x-shopify-shop-domain"),
    )
    result = mapping.map(delivery, options)
    assert isinstance(result, Draft), f"expected a draft, got {result!r}"
    return result


def checked_draft(mapping: Mapping, options: Any, content: bytes, headers: dict[str, str]) -> Draft:
    """What the worker does with a delivery before resolving: parse, map, reconcile."""
    draft = draft_of(mapping, options, content, headers)
    reconcile_totals(draft)
    return draft


def golden_cases(mapping: Mapping) -> None:
    options = mapping.options_model.model_validate(OPTIONS)
    for name in CASES:
        content, headers = delivery_parts(GOLDEN / name)
        payload = wire.loads(content)
        delivery = Delivery(
            payload, headers, headers.get("x-shopify-topic"), headers.get("x-shopify-shop-domain")
        )
        draft = draft_of(mapping, options, content, headers)
        lines = len(draft.request.items)
        print(f"{name} ({len(content) / 1024:.1f} KiB, {lines} invoice lines)")
        show("parse (wire.loads)", per_call(partial(wire.loads, content)))
        show("map", per_call(partial(mapping.map, delivery, options)))
        show("reconcile", per_call(partial(reconcile_totals, draft)))

        show(
            "parse + map + reconcile",
            per_call(partial(checked_draft, mapping, options, content, headers)),
        )


def many_lines_order(limit: int) -> bytes:
    """A consistent order with as many lines as fit under `limit` bytes: number-heavy JSON."""

    def order(count: int) -> bytes:
        lines: list[tuple[str | None, int, str]] = [
            (SKUS[i % len(SKUS)], 1 + i % 3, f"{1 + i % 50}.{i % 100:02d}") for i in range(count)
        ]
        return body(shopify_order(6_100_000_000_001, lines=lines))

    low, high = 1, 4096
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(order(middle)) <= limit else (low, middle - 1)
    return order(low)


def long_note_order(limit: int) -> bytes:
    """An ordinary order whose note fills it to `limit` bytes: string-heavy JSON."""
    order = shopify_order(6_100_000_000_002)
    order["note"] = ""
    order["note"] = "x" * (limit - len(body(order)))
    return body(order)


def large_bodies(mapping: Mapping) -> None:
    options = mapping.options_model.model_validate(OPTIONS)
    scheme = SCHEMES["shopify-hmac"]
    for title, content in (
        ("many lines", many_lines_order(MIB)),
        ("one long note", long_note_order(MIB)),
    ):
        headers = {
            k.lower(): v for k, v in scheme.sign(content, SECRET, topic="orders/create").items()
        }
        payload = wire.loads(content)
        lines = len(payload["line_items"])
        print(f"1 MiB body, {title} ({len(content)} bytes, {lines} order lines)")
        parse = per_call(partial(wire.loads, content), repeat=3)
        show("parse (wire.loads)", parse)
        show("json.loads, no exact numbers (comparison)", per_call(partial(json.loads, content)))
        show("orjson.loads (comparison)", per_call(partial(orjson.loads, content)))
        show(
            "signature check (HMAC-SHA256)",
            per_call(partial(scheme.verify, headers, content, [SECRET])),
        )

        whole = partial(checked_draft, mapping, options, content, headers)
        show("parse + map + reconcile", per_call(whole, repeat=3))


def main() -> int:
    print(
        f"{dt.date.today().isoformat()} · {os.cpu_count()} CPUs · load {os.getloadavg()[0]:.2f}"
        f" · Python {platform.python_version()} · bench/mapping.py\n"
    )
    mapping = load_mapping("shopify")
    golden_cases(mapping)
    print()
    large_bodies(mapping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
