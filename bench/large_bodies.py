"""Parse costs, and what a sender of large bodies does to everyone else.

    .venv/bin/python -m bench.large_bodies

Prints, per call: a 1 MiB number-heavy order parsed by the strict parser the bridge used
before (twice per delivery, on the event loop), by `wire.loads` now (once, on a thread), and
by plain `json.loads` on the same bytes; the mapping figure (the example order from raw
bytes to the serialized invoice request, against `json.loads`); then, against a real
`bridge serve --sandbox`, the answer times of other senders' deliveries while one sender
posts 1 MiB number-heavy orders back to back.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.mapping import GOLDEN, OPTIONS, delivery_parts, per_call, show
from bridge import wire
from bridge.mapping import Delivery, Draft, Mapping, load_mapping, reconcile_totals
from tests.attacks import LargeBodies, deliveries, number_heavy_order
from tests.harness import Process, free_port, write_config

MIB = 1024 * 1024
SECRET = "bench-large-secret"


@dataclass(frozen=True)
class MappingFigure:
    """Raw bytes to the serialized invoice request, beside `json.loads` on the same bytes."""

    seconds: float
    json_loads: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.json_loads

    def note(self) -> str:
        return (
            f"- mapping example-order, raw bytes → serialized invoice request: "
            f"{self.seconds * 1e6:.0f} µs ({1 / self.seconds:,.0f} orders/s), json.loads on the "
            f"same bytes {self.json_loads * 1e6:.0f} µs: {self.ratio:.2f}× (target ≤ 1.5×)"
        )


def serialized_request(
    mapping: Mapping, options: Any, content: bytes, headers: dict[str, str]
) -> bytes:
    delivery = Delivery(
        wire.loads(content),
        headers,
        headers.get("x-shopify-topic"),
        headers.get("x-shopify-shop-domain"),
    )
    draft = mapping.map(delivery, options)
    assert isinstance(draft, Draft), draft
    reconcile_totals(draft)
    return wire.dumps(draft.request)


def mapping_figure() -> MappingFigure:
    mapping = load_mapping("shopify")
    options = mapping.options_model.model_validate(OPTIONS)
    content, headers = delivery_parts(GOLDEN / "example-order")
    whole = partial(serialized_request, mapping, options, content, headers)
    return MappingFigure(*interleaved(whole, partial(json.loads, content)))


def interleaved(
    work: Callable[[], object], floor: Callable[[], object], rounds: int = 25
) -> tuple[float, float]:
    """Seconds per call of each, the best of `rounds` taken in turn: on a shared machine
    both then see the same moments of load, which separate runs of each do not."""
    timers = [timeit.Timer(work), timeit.Timer(floor)]
    numbers = [max(1, timer.autorange()[0] // 4) for timer in timers]  # ~50 ms a round
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, timer in enumerate(timers):
            best[index] = min(best[index], timer.timeit(numbers[index]) / numbers[index])
    return best[0], best[1]


def parse_figures() -> None:
    content = number_heavy_order(MIB)
    print(f"1 MiB number-heavy order ({len(content)} bytes)")
    before = per_call(partial(wire._strict_loads, content), repeat=3)
    show("before: strict parser, per call", before)
    show("before: per delivery (twice, on the loop)", 2 * before)
    after = per_call(partial(wire.loads, content), repeat=3)
    show("after: wire.loads, once per delivery", after)
    show("json.loads, no exact numbers (comparison)", per_call(partial(json.loads, content)))


def answer_times(seconds_of_deliveries: int = 16) -> None:
    with tempfile.TemporaryDirectory(prefix="bridge-large-") as scratch:
        folder = Path(scratch)
        config = write_config(
            folder / "bridge.toml",
            {
                "store": {"url": f"sqlite:///{folder / 'bridge.db'}", "durability": "normal"},
                "luminous": {"max_requests_per_second": 0},
            },
        )
        port = free_port()
        args = ["serve", "--sandbox", "--config", str(config), "--port", str(port)]
        bridge = Process(
            args, port, folder / "bridge.log", env={"SHOPIFY_WEBHOOK_SECRET": SECRET}, cwd=folder
        ).start()
        try:
            quiet = deliveries(bridge.url, SECRET, seconds_of_deliveries, pause=0.1, timeout=5)
            with LargeBodies(bridge.url, SECRET, MIB) as sender:
                loaded = deliveries(bridge.url, SECRET, seconds_of_deliveries, pause=0.1, timeout=5)
        finally:
            bridge.stop()
    for label, timed in (("alone", quiet), (f"beside {len(sender.statuses)} 1 MiB bodies", loaded)):
        times = [answer.seconds * 1000 for answer in timed]
        print(
            f"  other senders' answers, {label}: p50 {statistics.median(times):.0f} ms, "
            f"max {max(times):.0f} ms, statuses {sorted({a.status for a in timed})}"
        )


def main() -> int:
    parse_figures()
    print(mapping_figure().note())
    answer_times()
    return 0


if __name__ == "__main__":
    sys.exit(main())
