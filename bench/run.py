"""The one benchmark command: every figure beside its floor from the same run, and the ratio.

    .venv/bin/python -m bench.run [--seconds 8] [--connections 32] [--no-postgres]

wrk (Debian's, installed with apt-get when missing) posts pre-signed, distinct Shopify orders,
so the load generator costs the machine little. Each figure gets fresh processes and a fresh
store; the floors are served by `bench.floors` under the bridge's own uvicorn settings. The
table is printed and written to BENCHMARKS.md (the section between the run markers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.large_bodies import mapping_figure
from bench.memory import backlog, store_size
from bench.posting import Delivery, new_orders
from bench.services import (
    SHOPIFY_SECRET,
    BridgeTuning,
    Service,
    bridge_service,
    serving,
    start_sandbox,
    store_database,
)
from bench.wrk import Load, ensure_wrk, run_wrk, write_requests

ROOT = Path(__file__).parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench/run.py: begin -->", "<!-- bench/run.py: end -->"


@dataclass
class Figure:
    name: str
    measured: Load
    floor_name: str
    floor: Load
    target: str
    rate_of: Callable[[Load], float] = lambda load: load.rate

    @property
    def ratio(self) -> float:
        return self.rate_of(self.measured) / self.floor.rate


@dataclass
class Bench:
    wrk: str
    seconds: float
    connections: int
    work: Path
    webhooks: Path  # prepared signed deliveries
    invoices: Path  # prepared POST /invoices bodies, for the direct floor

    def scratch(self, name: str) -> Path:
        path = self.work / name
        path.mkdir()
        return path

    def floor(self, name: str, kind: str, latency_ms: float = 0) -> tuple[Load, Load | None]:
        """The floor's load, and the sandbox's CPU for the two-hop one."""
        workdir = self.scratch(name)
        if kind == "bare":
            with serving(["-m", "bench.floors", "bare"], workdir) as app:
                return self._load(app, "/webhooks/shopify", self.webhooks), None
        sandbox = start_sandbox(workdir, latency_ms=latency_ms)
        try:
            if kind == "direct":
                return self._load(sandbox, "/external/api/v1/invoices", self.invoices), None
            luminous = f"{sandbox.url}/external/api/v1"
            argv = ["-m", "bench.floors", "two-hop", "--luminous", luminous]
            with serving(argv, workdir) as app:
                before = sandbox.cpu_seconds()
                load = self._load(app, "/webhooks/shopify", self.webhooks)
                return load, _cpu(sandbox, before)
        finally:
            sandbox.stop()

    def bridge(
        self, name: str, tuning: BridgeTuning, store: str = "sqlite", latency_ms: float = 0
    ) -> tuple[Load, Load]:
        """The bridge's load and the sandbox's CPU over the same run."""
        workdir = self.scratch(name)
        sandbox = start_sandbox(workdir, latency_ms=latency_ms)
        try:
            with (
                store_database(store) as url,
                bridge_service(workdir, sandbox, tuning, url) as service,
            ):
                before = sandbox.cpu_seconds()
                load = self._load(service, "/webhooks/shopify", self.webhooks)
                return load, _cpu(sandbox, before)
        finally:
            sandbox.stop()

    def _load(self, service: Service, path: str, requests: Path) -> Load:
        return run_wrk(
            self.wrk, service.url + path, requests, self.seconds, self.connections, service
        )


def _cpu(service: Service, before: float) -> Load:
    return Load(0, 1, 0, 0, 0, {}, cpu=service.cpu_seconds() - before)


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({model}), "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"load average {load:.1f} at start"
    )


def table(
    figures: list[Figure], rows: list[str], notes: list[str], started: dt.datetime, host: str
) -> str:
    lines = [
        f"Run of {started:%Y-%m-%d %H:%M} UTC on {host}.",
        "",
        "| figure | measured | floor | floor, same run | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        m, f = figure.measured, figure.floor
        lines.append(
            f"| {figure.name} | {figure.rate_of(m):,.0f}/s, p99 {m.p99_ms:,.0f} ms "
            f"| {figure.floor_name} | {f.rate:,.0f}/s, p99 {f.p99_ms:,.0f} ms "
            f"| {figure.ratio:.3f} | {figure.target} |"
        )
    return "\n".join([*lines, *rows, "", *notes]) + "\n"


def created(load: Load) -> float:
    """Invoices answered with their id (201) per second."""
    return load.ok("201") / load.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="length of each load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--orders", type=int, default=20_000, help="distinct signed orders")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    host = machine()
    print(f"bench: {host}", flush=True)
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as scratch:
        work = Path(scratch)
        deliveries = new_orders(args.orders, SHOPIFY_SECRET, random.Random(7))
        invoices = [
            Delivery(0, json.dumps(_invoice(n)).encode(), _invoice_headers()) for n in range(2_000)
        ]
        bench = Bench(
            wrk,
            args.seconds,
            args.connections,
            work,
            write_requests(work / "webhooks.lua", deliveries, "/webhooks/shopify"),
            write_requests(work / "invoices.lua", invoices, "/external/api/v1/invoices"),
        )
        figures, rows, notes = run_all(bench, postgres=not args.no_postgres)
    report = table(figures, rows, notes, started, host)
    print(report)
    _write(report)
    return 0


def _invoice(n: int) -> dict[str, object]:
    return {
        "company_id": 1,
        "order_date": "2026-01-15",
        "payment_terms": "Due on receipt",
        "customer_po_number": f"DIRECT-{n}",
        "items": [{"product_id": 100, "quantity": 1, "unit_price": 19.99}],
    }


def _invoice_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": "Bearer bench-token"}


def run_all(bench: Bench, *, postgres: bool) -> tuple[list[Figure], list[str], list[str]]:
    """The figures with a floor, the table's other rows, and the notes below it."""
    step = _progress()
    bare, _ = step("bare Starlette", lambda: bench.floor("bare", "bare"))
    two_hop, two_hop_sandbox = step("two-hop floor", lambda: bench.floor("two-hop", "two-hop"))
    direct, _ = step("direct, 50 ms", lambda: bench.floor("direct", "direct", latency_ms=50))
    ingest = BridgeTuning(respond_within=0)
    full = BridgeTuning(respond_within=10, luminous_concurrency=32)
    figures: list[Figure] = []
    notes: list[str] = []
    stores = ["sqlite", "postgres"] if postgres else ["sqlite"]
    for store in stores:
        load, _ = step(
            f"ingest, {store}",
            lambda store=store: bench.bridge(f"ingest-{store}", ingest, store, latency_ms=200),
        )
        target = "≥ 0.4, p99 ≤ 3× floor" if store == "sqlite" else "beside SQLite"
        figures.append(Figure(f"durable ingest, {store}", load, "bare Starlette", bare, target))
    normal, _ = step(
        "ingest, sqlite normal",
        lambda: bench.bridge(
            "ingest-normal", BridgeTuning(respond_within=0, durability="normal"), latency_ms=200
        ),
    )
    figures.append(Figure("durable ingest, sqlite normal", normal, "bare Starlette", bare, "≥ 0.5"))
    for store in stores:
        load, sandbox_cpu = step(
            f"full path, {store}", lambda store=store: bench.bridge(f"full-{store}", full, store)
        )
        figures.append(
            Figure(f"full path, {store}", load, "two-hop floor", two_hop, "≥ 0.8", created)
        )
        figures.append(
            Figure(f"full path, {store}", load, "bare Starlette", bare, "≥ 0.055", created)
        )
        invoices = max(load.ok("201"), 1)
        assert sandbox_cpu is not None
        floor_sandbox = two_hop_sandbox.cpu if two_hop_sandbox else 0.0
        notes.append(
            f"- full path, {store}: bridge CPU {1e3 * load.cpu / invoices:.2f} ms per invoice, "
            f"sandbox {1e3 * sandbox_cpu.cpu / invoices:.2f} ms; two-hop floor "
            f"{1e3 * two_hop.cpu / max(two_hop.requests, 1):.2f} ms per request, its sandbox "
            f"{1e3 * floor_sandbox / max(two_hop.requests, 1):.2f} ms "
            f"(target: bridge ≤ 2× floor); answers {load.statuses}"
        )
    slow, _ = step("full path, 50 ms", lambda: bench.bridge("full-50", full, latency_ms=50))
    figures.append(
        Figure("full path, 50 ms Luminous", slow, "direct POST /invoices", direct, "≥ 0.9", created)
    )
    matched, _ = step(
        "full path, 50 ms, companies matched",
        lambda: bench.bridge("full-50-match", replace(full, company="match"), latency_ms=50),
    )
    figures.append(
        Figure(
            "full path, 50 ms, companies matched",
            matched,
            "direct POST /invoices",
            direct,
            "reported",
            created,
        )
    )
    notes.append(
        f"- full path at 50 ms: answers {slow.statuses}; with each customer's company looked "
        f"up (and created when new) instead of a fixed one: answers {matched.statuses}"
    )
    notes.append(mapping_figure().note())
    memory = backlog(bench.wrk, bench.connections, bench.scratch("memory"))
    notes.append(_noted(memory.note()))
    for store in stores:
        sizes = store_size(bench.wrk, bench.connections, bench.scratch(f"size-{store}"), store)
        notes.append(_noted(sizes.note()))
    return figures, [memory.row()], notes


def _noted(note: str) -> str:
    print(f"bench: {note[2:]}", flush=True)
    return note


def _progress() -> Callable[..., tuple[Load, Load | None]]:
    def step(label: str, work: Callable[[], tuple[Load, Load | None]]) -> tuple[Load, Load | None]:
        began = time.perf_counter()
        load, extra = work()
        print(
            f"bench: {label}: {load.rate:,.0f}/s, p99 {load.p99_ms:,.0f} ms, "
            f"answers {load.statuses} ({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
        return load, extra

    return step


def _write(report: str) -> None:
    section = f"{BEGIN}\n{report}{END}\n"
    if BENCHMARKS.exists():
        text = BENCHMARKS.read_text()
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            BENCHMARKS.write_text(head + section + tail.lstrip("\n"))
            return
        BENCHMARKS.write_text(text.rstrip("\n") + "\n\n## Latest run\n\n" + section)
        return
    BENCHMARKS.write_text("# Benchmarks\n\n## Latest run\n\n" + section)


if __name__ == "__main__":
    sys.exit(main())
