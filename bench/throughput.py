"""End-to-end throughput: signed Shopify orders into `bridge serve`, invoices into the sandbox.

    .venv/bin/python bench/throughput.py [--orders N] [--concurrency C]
        [--durability full|normal] [--latency MS] [--repeat-share R]

Three phases against one bridge: new orders (with `--repeat-share` of the posts repeating an
earlier delivery), then every delivery posted again (same delivery ID), then every order
posted under a new delivery ID. Prints answer rates and latencies, the time until every event
is created, the bridge's peak memory, the store's size per event and the Luminous requests per
invoice. Both servers run as their own processes on this machine, as does this poster.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.posting import Outcome, new_orders, post_all, redelivered, with_repeats
from bench.services import (
    SHOPIFY_SECRET,
    BridgeTuning,
    Service,
    start_bridge,
    start_sandbox,
    store_bytes,
    write_config,
)
from bridge.wire import loads

HOST = "127.0.0.1"
_EVENT_GAUGE = re.compile(r'^bridge_events\{status="(\w+)"\} ([0-9.e+]+)$', re.MULTILINE)
MIB = 1024 * 1024


def event_counts(bridge: Service) -> dict[str, int]:
    metrics = httpx.get(bridge.url + "/metrics", timeout=10).text
    return {status: int(float(n)) for status, n in _EVENT_GAUGE.findall(metrics)}


def wait_until_created(bridge: Service, expected: int, since: float, timeout: float) -> float:
    """Seconds from `since` until `expected` events are created (polled every 20 ms)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if event_counts(bridge).get("created", 0) >= expected:
            return time.perf_counter() - since
        time.sleep(0.02)
    raise RuntimeError(f"not every event was created in {timeout}s: {event_counts(bridge)}")


def luminous_requests(sandbox: Service) -> Counter[str]:
    counts = loads(httpx.get(sandbox.url + "/bench/requests", timeout=10).content)
    return Counter({route: int(n) for route, n in counts.items()})


def sandbox_invoice_count(sandbox: Service) -> int:
    answer = httpx.get(
        sandbox.url + "/external/api/v1/invoices",
        params={"per_page": 1},
        headers={"Authorization": "Bearer bench-token"},
        timeout=10,
    )
    return int(loads(answer.content)["meta"]["total"])


class CpuMeter:
    """CPU seconds the bridge, the sandbox and this poster used since the last reading."""

    def __init__(self, bridge: Service, sandbox: Service) -> None:
        self.services = {"bridge": bridge, "sandbox": sandbox}
        self.last = self._now()

    def _now(self) -> dict[str, float]:
        now = {name: service.cpu_seconds() for name, service in self.services.items()}
        now["poster"] = time.process_time()
        return now

    def lap(self) -> dict[str, float]:
        now = self._now()
        used = {name: now[name] - self.last[name] for name in now}
        self.last = now
        return used


def show_phase(title: str, outcome: Outcome, cpu: dict[str, float]) -> None:
    posts = sum(outcome.answers.values())
    created = outcome.count(201)
    answers = ", ".join(f"{answer}: {n}" for answer, n in sorted(outcome.answers.items()))
    print(f"{title}: {posts} posts in {outcome.seconds:.2f} s")
    print(f"  answers        {answers}")
    print(
        f"  rate           {posts / outcome.seconds:.1f} posts/s, "
        f"{created / outcome.seconds:.1f} answered 201/s"
    )
    p50, p95, p99 = (outcome.percentile(share) * 1000 for share in (0.50, 0.95, 0.99))
    print(
        f"  answer latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(outcome.latencies, default=0) * 1000:.1f} ms"
    )
    used = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cpu.items())
    print(f"  CPU used       {used} (bridge {cpu['bridge'] / posts * 1000:.2f} ms per post)")


def show_requests(label: str, counts: Counter[str], invoices: int) -> None:
    total = sum(counts.values())
    per_invoice = total / invoices if invoices else float("nan")
    breakdown = ", ".join(f"{route}: {n}" for route, n in sorted(counts.items())) or "none"
    print(f"{label}: {total} ({per_invoice:.3f} per invoice) [{breakdown}]")


def run_phases(args: argparse.Namespace, bridge: Service, sandbox: Service) -> None:
    rng = random.Random(args.seed)
    originals = new_orders(args.orders, SHOPIFY_SECRET, rng)
    first = with_repeats(originals, args.repeat_share, rng)
    payload = sum(len(d.content) for d in originals) / len(originals)

    cpu = CpuMeter(bridge, sandbox)
    started = time.perf_counter()
    orders = asyncio.run(post_all(HOST, bridge.port, first, args.concurrency))
    to_created = wait_until_created(bridge, len(originals), started, timeout=120)
    requests_for_orders = luminous_requests(sandbox)
    repeated = len(first) - len(originals)
    show_phase(f"new orders ({repeated} of the posts are repeats)", orders, cpu.lap())
    print(f"  every event created {to_created:.2f} s after the first post")

    repeats = asyncio.run(post_all(HOST, bridge.port, originals, args.concurrency))
    show_phase("\nrepeats (same bytes, same delivery ID)", repeats, cpu.lap())
    redeliveries = redelivered(originals, SHOPIFY_SECRET)
    again = asyncio.run(post_all(HOST, bridge.port, redeliveries, args.concurrency))
    show_phase("\nredeliveries (same order, new delivery ID)", again, cpu.lap())

    memory = bridge.memory_kib()
    events = sum(event_counts(bridge).values())
    during_duplicates = luminous_requests(sandbox) - requests_for_orders
    running = store_bytes(Path(args.workdir))
    bridge.stop()
    stopped = store_bytes(Path(args.workdir))

    print(
        f"\nbridge memory: peak RSS (VmHWM) {memory['VmHWM'] / 1024:.1f} MiB, "
        f"RSS at the end {memory['VmRSS'] / 1024:.1f} MiB"
    )
    print(
        f"store: {stopped['db'] / MIB:.2f} MiB after shutdown for {events} events = "
        f"{stopped['db'] / events / 1024:.2f} KiB per event (payload {payload / 1024:.2f} KiB); "
        f"while running {running['db'] / MIB:.2f} MiB + WAL {running['db_wal'] / MIB:.2f} MiB"
    )
    invoices = requests_for_orders.get("POST /invoices 201", 0)
    show_requests("Luminous requests for the new orders", requests_for_orders, invoices)
    show_requests("Luminous requests during the duplicate phases", during_duplicates, invoices)
    print(f"invoices in the sandbox: {sandbox_invoice_count(sandbox)} for {args.orders} orders")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on the machine skews)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1000, help="distinct orders (1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent posters (8)")
    parser.add_argument("--durability", choices=("full", "normal"), default="full")
    parser.add_argument("--latency", type=float, default=0, help="sandbox latency, ms (0)")
    parser.add_argument(
        "--repeat-share",
        type=float,
        default=0.0,
        help="share of the first phase's posts that repeat an earlier delivery (0)",
    )
    parser.add_argument("--respond-within", type=float, default=3.0, help="seconds (3.0)")
    parser.add_argument(
        "--luminous-concurrency", type=int, default=4, help="luminous.max_concurrency (4)"
    )
    parser.add_argument(
        "--luminous-rps", type=float, default=0, help="luminous.max_requests_per_second (0: off)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for the orders")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be at least 1")
    if not 0 <= args.repeat_share < 1:
        parser.error("--repeat-share must be at least 0 and below 1")
    return args


def header(args: argparse.Namespace) -> str:
    today = dt.date.today().isoformat()
    command = " ".join(["bench/throughput.py", *sys.argv[1:]])
    return (
        f"{today} · {os.cpu_count()} CPUs · load {os.getloadavg()[0]:.2f} · "
        f"Python {platform.python_version()} · {command}\n"
        f"{args.orders} orders, {args.concurrency} posters, durability {args.durability}, "
        f"sandbox latency {args.latency:g} ms, respond_within {args.respond_within:g} s, "
        f"luminous max_concurrency {args.luminous_concurrency}, "
        f"max_requests_per_second {args.luminous_rps:g}\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir = tempfile.mkdtemp(prefix="bridge-bench-")
    workdir = Path(args.workdir)
    print(header(args))
    tuning = BridgeTuning(
        durability=args.durability,
        respond_within=args.respond_within,
        luminous_concurrency=args.luminous_concurrency,
        luminous_rps=args.luminous_rps,
    )
    sandbox = start_sandbox(workdir, latency_ms=args.latency)
    bridge: Service | None = None
    try:
        bridge = start_bridge(workdir, write_config(workdir, sandbox, tuning))
        print(f"(bridge pid {bridge.pid}, sandbox pid {sandbox.pid}, work folder {workdir})\n")
        run_phases(args, bridge, sandbox)
    finally:
        if bridge is not None:
            bridge.stop()
        sandbox.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
