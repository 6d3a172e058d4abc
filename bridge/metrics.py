"""What `/metrics` shows: one registry per app, so tests and replicas never share counters.

Counters count what this process did. What the store holds (events by status, the backlog)
is read at most once per `STORE_TTL` seconds, whatever the scrape rate, and a scrape never
waits on a store that does not answer: it shows the last reading, with `bridge_store_up 0`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge.errors import StoreError
from bridge.store.base import STATUSES, Store

log = logging.getLogger("bridge.metrics")

STORE_TTL = 10.0  # seconds a reading of the store's counts is shown before it is read again
STORE_TIMEOUT = 2.0  # a scrape waits no longer than this for the store
S = TypeVar("S", Counter, Histogram)

UNKNOWN_SOURCE = "(unknown)"  # the label of deliveries to no configured source: bounded


class Kept(Generic[S]):
    """A labelled series whose children are kept. prometheus_client's `labels()` checks the
    values and takes a lock on every call, and these series are counted once or more per
    delivery; every label set the bridge gives them is bounded already."""

    def __init__(self, series: S) -> None:
        self.series: S = series
        self._children: dict[tuple[str, ...], S] = {}

    def labels(self, *values: str) -> S:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.series.labels(*values)
        return child


class Metrics:
    """The bridge's Prometheus series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.deliveries = Kept(
            Counter(
                "bridge_deliveries",
                "Webhook deliveries answered, by source and HTTP status",
                ["source", "status"],
                registry=registry,
            )
        )
        self.answers = Kept(
            Counter(
                "bridge_answers",
                "Webhook deliveries answered, by source and what the answer said "
                "(created, duplicate, received, skipped, dead, …, or the error code)",
                ["source", "answer"],
                registry=registry,
            )
        )
        self.duplicates = Kept(
            Counter(
                "bridge_duplicates",
                "Duplicates: a delivery seen before (kind=delivery), or a new delivery of an "
                "order that already has its invoice (kind=order)",
                ["source", "kind"],
                registry=registry,
            )
        )
        self.invoices = Kept(
            Counter(
                "bridge_invoices_created",
                "Invoices created in Luminous (or found there after a send of unknown outcome)",
                ["source"],
                registry=registry,
            )
        )
        self.outcomes = Kept(
            Counter(
                "bridge_event_outcomes",
                "Events finished, deferred or settled by hand, by source and outcome",
                ["source", "outcome"],
                registry=registry,
            )
        )
        self.luminous_failures = Kept(
            Counter(
                "bridge_luminous_failures",
                "Failed Luminous calls, by kind (retryable, unknown_outcome, permanent, auth)",
                ["kind"],
                registry=registry,
            )
        )
        self.luminous_seconds = Kept(
            Histogram(
                "bridge_luminous_request_seconds",
                "Luminous requests, by endpoint and HTTP status (or why there was none)",
                ["endpoint", "status"],
                buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                registry=registry,
            )
        )
        self.cache_lookups = Kept(
            Counter(
                "bridge_resolution_cache_lookups",
                "Company and product lookups, by whether the resolver's cache answered them",
                ["kind", "result"],
                registry=registry,
            )
        )
        self.answer_seconds = Kept(
            Histogram(
                "bridge_answer_seconds",
                "Time from receiving a delivery to answering it",
                ["source"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 10),
                registry=registry,
            )
        )
        self.events = Gauge(
            "bridge_events", "Recorded events by status", ["status"], registry=registry
        )
        self.queue_depth = Gauge(
            "bridge_queue_depth",
            "Unfinished events (received, processing, retrying)",
            registry=registry,
        )
        self.oldest_unfinished = Gauge(
            "bridge_oldest_unfinished_seconds",
            "Age of the oldest unfinished event (0 when there is none)",
            registry=registry,
        )
        self.store_up = Gauge(
            "bridge_store_up",
            "1 when the store answered the last reading, 0 when it did not",
            registry=registry,
        )
        self.store_read_at = Gauge(
            "bridge_store_read_timestamp_seconds",
            "When the store's counts shown were read (Unix time)",
            registry=registry,
        )
        self.possible_duplicates = Kept(
            Counter(
                "bridge_possible_duplicate_invoices",
                "Sends that finished after their claim was lost, so may have doubled an invoice",
                ["source"],
                registry=registry,
            )
        )
        self.doubled = Kept(
            Counter(
                "bridge_doubled_orders",
                "Orders for which Luminous was found holding more than one invoice",
                ["source"],
                registry=registry,
            )
        )
        self.paused = Gauge(
            "bridge_paused", "1 while Luminous refuses the API token", registry=registry
        )
        self.sweep_missed = Counter(
            "bridge_sweep_missed_orders",
            "Events the sweep recorded because no webhook had brought them: orders the bridge "
            "never saw (kind=new) or changes it never heard of (kind=changed)",
            ["source", "shop", "kind"],
            registry=registry,
        )
        self.sweep_failures = Counter(
            "bridge_sweep_fetch_failures",
            "Sweeps cut short because the shop's API failed (the next one retries the window)",
            ["source", "shop"],
            registry=registry,
        )
        self.sweep_cursor_age = Gauge(
            "bridge_sweep_cursor_age_seconds",
            "Seconds since the shop's sweep cursor: orders updated before it were swept",
            ["source", "shop"],
            registry=registry,
        )
        self.store_ttl = STORE_TTL
        self._read_at: float | None = None  # monotonic time of the last reading
        self._reading = asyncio.Lock()

    def answered(self, source: str, status: int, said: str, seconds: float | None = None) -> None:
        """A webhook answer: its HTTP status, what it said, and (for a source) how long it took."""
        self.deliveries.labels(source, str(status)).inc()
        self.answers.labels(source, said).inc()
        if seconds is not None:
            self.answer_seconds.labels(source).observe(seconds)

    def luminous_answered(self, endpoint: str, status: str, seconds: float) -> None:
        self.luminous_seconds.labels(endpoint, status).observe(seconds)

    def cache_lookup(self, kind: str, hit: bool) -> None:
        self.cache_lookups.labels(kind, "hit" if hit else "miss").inc()

    async def read_store(self, store: Store) -> None:
        """Refresh the store's gauges if the last reading is older than `store_ttl`."""
        async with self._reading:  # one scrape reads; the ones meanwhile show its reading
            last = self._read_at
            if last is not None and time.monotonic() - last < self.store_ttl:
                return
            self._read_at = time.monotonic()
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    counts = await store.counts()
                    backlog = await store.backlog()
            except (StoreError, TimeoutError) as exc:
                log.error("metrics: the store's counts were not read: %s", exc)
                self.store_up.set(0)
                return
        for status in STATUSES:
            self.events.labels(status).set(counts.get(status, 0))
        self.queue_depth.set(backlog.depth)
        oldest = backlog.oldest_received_at
        self.oldest_unfinished.set(max(0.0, time.time() - oldest) if oldest else 0)
        self.store_up.set(1)
        self.store_read_at.set(time.time())
