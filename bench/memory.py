"""The bridge's memory under a backlog, and the store's size per finished event.

RSS is read from /proc after 10,000 and after 100,000 deliveries are recorded, in one run of
`bridge serve` whose worker drains behind against a 200 ms Luminous. The store is measured
once every event is created and the bridge has stopped, again after `bridge events purge`
has dropped the finished payloads, and once more compacted (SQLite's VACUUM, PostgreSQL's
VACUUM FULL), which is the space the purged rows still take when it is reused.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.posting import new_orders
from bench.services import (
    BRIDGE_ENV,
    SHOPIFY_SECRET,
    BridgeTuning,
    Service,
    bridge_service,
    start_sandbox,
    store_database,
)
from bench.throughput import event_counts, wait_until_created
from bench.wrk import Load, run_wrk, write_requests

EARLY, LATE = 10_000, 100_000  # deliveries recorded at the two RSS readings
FINISHED = 2_000  # events created before the store is measured
CAP_SECONDS = 600  # wrk's -d when it is stopped by a count
WEBHOOK = "/webhooks/shopify"


@dataclass(frozen=True)
class Backlog:
    """The bridge's RSS at two backlog sizes in one run, and how the posting went."""

    early_kib: int
    late_kib: int
    peak_kib: int
    posting: Load  # the deliveries from EARLY to LATE
    created: int  # events the worker had finished by the last reading

    @property
    def ratio(self) -> float:
        return self.late_kib / self.early_kib

    def row(self) -> str:
        """Its line in the run's table: the RSS at LATE beside the RSS at EARLY."""
        return (
            f"| bridge RSS, {LATE:,} recorded | {_mb(self.late_kib)} "
            f"| RSS at {EARLY:,} | {_mb(self.early_kib)} | {self.ratio:.3f} "
            f"| ≤ 1.2, under 150 MB |"
        )

    def note(self) -> str:
        return (
            f"- bridge RSS after {LATE:,} deliveries recorded {_mb(self.late_kib)} "
            f"(peak {_mb(self.peak_kib)}), after {EARLY:,} {_mb(self.early_kib)}: "
            f"{self.ratio:.2f}× (target ≤ 1.2×, under 150 MB); posted at "
            f"{self.posting.ok('202') / self.posting.seconds:,.0f}/s, "
            f"p99 {self.posting.p99_ms:,.0f} ms, the worker had created {self.created:,}"
        )


@dataclass(frozen=True)
class StoreSize:
    """Bytes the store takes for `events` finished events, before and after the purge."""

    store: str
    events: int
    payload: float  # mean body bytes
    finished: int
    purged: int
    compacted: int

    def note(self) -> str:
        per = [round(size / self.events) for size in (self.finished, self.purged, self.compacted)]
        return (
            f"- store, {self.store}: {per[0]:,} bytes per finished event, {per[1]:,} after "
            f"`bridge events purge`, {per[2]:,} compacted ({self.events:,} events, payload "
            f"{self.payload:,.0f} bytes)"
        )


def backlog(wrk: str, connections: int, workdir: Path) -> Backlog:
    """RSS after EARLY and after LATE distinct deliveries, the worker draining slowly behind."""
    deliveries = new_orders(LATE, SHOPIFY_SECRET, random.Random(11))
    first = write_requests(workdir / "first.lua", deliveries[:EARLY], WEBHOOK)
    rest = write_requests(workdir / "rest.lua", deliveries[EARLY:], WEBHOOK)
    del deliveries
    sandbox = start_sandbox(workdir, latency_ms=200)
    try:
        ingest = BridgeTuning(respond_within=0)
        with bridge_service(workdir, sandbox, ingest, "sqlite") as bridge:
            _post_once(wrk, bridge, first, connections, _recorded(bridge, EARLY))
            early = bridge.memory_kib()
            posting = _post_once(wrk, bridge, rest, connections, _recorded(bridge, LATE))
            late = bridge.memory_kib()
            created = event_counts(bridge).get("created", 0)
    finally:
        sandbox.stop()
    return Backlog(early["VmRSS"], late["VmRSS"], late["VmHWM"], posting, created)


def store_size(wrk: str, connections: int, workdir: Path, store: str) -> StoreSize:
    """The store's bytes per event once FINISHED events are created, then purged, compacted."""
    deliveries = new_orders(FINISHED, SHOPIFY_SECRET, random.Random(13))
    payload = sum(len(d.content) for d in deliveries) / len(deliveries)
    requests = write_requests(workdir / "orders.lua", deliveries, WEBHOOK)
    sandbox = start_sandbox(workdir, latency_ms=0)
    try:
        with store_database(store) as url:
            fast = BridgeTuning(respond_within=0, luminous_concurrency=32)
            with bridge_service(workdir, sandbox, fast, url) as bridge:
                _post_once(wrk, bridge, requests, connections, _recorded(bridge, FINISHED))
                wait_until_created(bridge, FINISHED, time.perf_counter(), timeout=300)
            measure = _sqlite_bytes(workdir / "bridge.db") if store == "sqlite" else _pg(url)
            finished = measure(False)
            _purge(workdir)
            purged = measure(False)
            compacted = measure(True)
    finally:
        sandbox.stop()
    return StoreSize(store, FINISHED, payload, finished, purged, compacted)


def _post_once(
    wrk: str, bridge: Service, requests: Path, connections: int, until: Callable[[], bool]
) -> Load:
    return run_wrk(wrk, bridge.url + WEBHOOK, requests, CAP_SECONDS, connections, bridge, until)


def _recorded(bridge: Service, count: int) -> Callable[[], bool]:
    return lambda: sum(event_counts(bridge).values()) >= count


def _purge(workdir: Path) -> None:
    """`bridge events purge --days 0`: the store's own rule for finished payloads, run now."""
    config = workdir / "bridge.toml"
    subprocess.run(
        [sys.executable, "-m", "bridge.cli", "events", "purge", "--days", "0", "--config", config],
        check=True,
        capture_output=True,
        env={**os.environ, **BRIDGE_ENV},
    )


def _sqlite_bytes(path: Path) -> Callable[[bool], int]:
    """The file and its -wal after a checkpoint; VACUUM first when compacting."""

    def measure(compact: bool) -> int:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            if compact:
                db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    return measure


def _pg(url: str) -> Callable[[bool], int]:
    """pg_total_relation_size (heap, TOAST, indexes) of the bridge's tables."""
    import psycopg

    def measure(compact: bool) -> int:
        with psycopg.connect(url, autocommit=True) as db:
            if compact:
                db.execute("VACUUM FULL")
            row = db.execute(
                "SELECT SUM(pg_total_relation_size(c.oid))::bigint FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = 'public'"
            ).fetchone()
        assert row is not None
        return int(row[0])

    return measure


def _mb(kib: int) -> str:
    return f"{kib * 1024 / 1e6:,.0f} MB"
