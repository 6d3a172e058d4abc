"""The outbound client's own cost: `POST /invoices` to the counting sandbox, client by client.

    python -m bench.outbound [--requests N] [--concurrency C] [--rounds R] [--clients A,B]

Each client runs in its own process (on uvloop, as `bridge serve` does), warms its pool up,
then sends N invoices at concurrency C to a sandbox answering at once. The figures are that
process's CPU seconds per request (`time.process_time`, which the other helpers' load on
this machine does not inflate) and its requests/s (which it does). `httpx` is the floor: a
bare pooled `httpx.AsyncClient`, as the two-hop floor sends. `bridge` is
`LuminousClient.create_invoice` as the worker calls it, guard included; `bridge/<name>` is
the same client on another transport: `httpcore` (httpx's own, as before the aiohttp one)
or `httpx-aiohttp` (when that package is installed). Rounds interleave the clients; the
table shows each figure's median.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench.floors import INVOICE
from bench.services import start_sandbox
from bridge.invoice import InvoiceItem, InvoiceRequest
from bridge.luminous import LuminousClient

# httpx-aiohttp is measured when installed; it is no dependency (see BENCHMARKS.md).
CLIENTS = ("httpx", "bridge", "bridge/httpcore") + (
    ("bridge/httpx-aiohttp",) if importlib.util.find_spec("httpx_aiohttp") else ()
)
WARM_UP = 200

Send = Callable[[], Awaitable[int]]


def _transport(name: str, concurrency: int) -> httpx.AsyncBaseTransport | None:
    """The transport a `bridge/<name>` client runs on; None for the client's own default."""
    if name == "httpcore":  # httpx's own, as the client used before it chose one
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        return httpx.AsyncHTTPTransport(limits=limits)
    if name == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found]

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
        return transport
    raise SystemExit(f"no transport called {name!r}")


async def _run_one(kind: str, base_url: str, requests: int, concurrency: int) -> dict[str, Any]:
    request = InvoiceRequest(  # bench.floors.INVOICE, as the bridge's model
        company_id=1,
        order_date=dt.date(2026, 1, 15),
        payment_terms="Due on receipt",
        items=[InvoiceItem(product_id=100, quantity=Decimal(1), unit_price=Decimal("19.99"))],
    )

    async def guard() -> None:  # the worker's guard asks the store; here it only costs a call
        return None

    closing: Callable[[], Awaitable[None]]
    send: Send
    if kind == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http = httpx.AsyncClient(
            base_url=base_url,
            limits=limits,
            headers={"Authorization": "Bearer bench-token"},
            timeout=10,
        )

        async def send_bare() -> int:
            answer = await http.post("/invoices", json=INVOICE)
            answer.raise_for_status()
            return int(answer.json()["data"]["id"])

        send, closing = send_bare, http.aclose
    else:
        _, _, name = kind.partition("/")
        client = LuminousClient(
            base_url,
            "bench-token",
            max_concurrency=concurrency,
            max_requests_per_second=None,
            transport=_transport(name, concurrency) if name else None,
        )

        async def send_bridge() -> int:
            return (await client.create_invoice(request, guard=guard)).id

        send, closing = send_bridge, client.aclose

    async def batch(count: int) -> None:
        pending = iter(range(count))

        async def sender() -> None:
            for _ in pending:
                await send()

        await asyncio.gather(*(sender() for _ in range(concurrency)))

    try:
        await batch(WARM_UP)
        cpu, wall = time.process_time(), time.perf_counter()
        await batch(requests)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await closing()
    return {"cpu": cpu, "seconds": wall}


def _child(kind: str, base_url: str, requests: int, concurrency: int) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        result = asyncio.run(_run_one(kind, base_url, requests, concurrency))
    else:
        result = uvloop.run(_run_one(kind, base_url, requests, concurrency))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outbound", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _child(args.one, args.url, args.requests, args.concurrency)
        return
    kinds = args.clients.split(",")
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = start_sandbox(Path(tmp), latency_ms=0)
        base_url = sandbox.url + "/external/api/v1"
        try:
            for _ in range(args.rounds):
                for kind in kinds:
                    sandbox_cpu = sandbox.cpu_seconds()
                    argv = [sys.executable, "-m", "bench.outbound", "--one", kind]
                    argv += ["--url", base_url, "--requests", str(args.requests)]
                    argv += ["--concurrency", str(args.concurrency)]
                    done = subprocess.run(argv, check=True, capture_output=True, text=True)
                    run = json.loads(done.stdout.splitlines()[-1])
                    # The sandbox's share includes the warm-up; it is a guide, not a floor.
                    run["sandbox_cpu"] = sandbox.cpu_seconds() - sandbox_cpu
                    runs[kind].append(run)
        finally:
            sandbox.stop()
    total = args.requests + WARM_UP
    print(f"{args.requests} POST /invoices per run, concurrency {args.concurrency}, sandbox 0 ms")
    print(f"median of {args.rounds} rounds, each client in its own process")
    print()
    print(f"{'client':<18} {'CPU ms/req':>10} {'vs httpx':>9} {'req/s':>7} {'sandbox ms/req':>15}")
    floor = None
    for kind, results in runs.items():
        cpu = statistics.median(r["cpu"] for r in results) / args.requests * 1000
        rate = statistics.median(args.requests / r["seconds"] for r in results)
        sandbox_ms = statistics.median(r["sandbox_cpu"] for r in results) / total * 1000
        floor = cpu if kind == "httpx" else floor
        ratio = f"{cpu / floor:.2f}×" if floor else "-"
        print(f"{kind:<18} {cpu:>10.3f} {ratio:>9} {rate:>7.0f} {sandbox_ms:>15.3f}")


if __name__ == "__main__":
    main()
