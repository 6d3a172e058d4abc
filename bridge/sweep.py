"""The sweep: inside `bridge serve`, a backfill of each shop's recently *updated* orders.

Webhooks are not guaranteed, so every `every` seconds one task per shop asks the shop's API
for orders updated since the shop's cursor minus `lookback` (the first time: since now
minus `lookback`) and records each exactly as `bridge backfill` does: an order already known
unchanged records nothing, one never seen is a new `created` event. The window stops
`SETTLE` seconds before the sweep started, since a shop lists an order a little after it
writes it; the overlap catches those that appear late. Replicas share the store: a shop's
sweep lease lets one of them at a time sweep it, fenced by a generation so a sweeper that
lost its lease cannot move the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable

from bridge.backfill import Backfill, Tally
from bridge.config import Settings, Shop, Source
from bridge.errors import ConfigError, StoreError
from bridge.logs import line
from bridge.metrics import Metrics
from bridge.shop_api import ShopClient, Window, open_shop_client, shops_with_api
from bridge.store.base import Store, SweepLease

log = logging.getLogger("bridge.sweep")

SETTLE = 120.0  # seconds before its start a sweep stops: the shop may not list them yet
LEASE = 60.0  # a sweep lease's seconds, renewed every third of it while the sweep runs


def sweep_window(cursor: float | None, started: float, lookback: float) -> Window | None:
    """The orders one sweep asks for, by when they were updated; None when there are none
    to ask for yet (the cursor is within `lookback` of `started - SETTLE`)."""
    since = (started if cursor is None else cursor) - lookback
    until = started - SETTLE
    if since >= until:
        return None
    return Window(_moment(since), _moment(until), by="updated")


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def sweep_problems(settings: Settings) -> list[str]:
    """What keeps a configured sweep from running, as `key: problem` lines."""
    problems = []
    for source in settings.sources.values():
        if not source.sweep.every:
            continue
        try:
            for shop in shops_with_api(source):
                open_shop_client(source, shop)  # reads nothing: it only checks credentials
        except ConfigError as exc:
            problems.append(f"sources.{source.name}.sweep: {exc}")
    return problems


class Sweeper:
    """Sweeps one shop of one source every `every` seconds, when it holds the shop's lease."""

    def __init__(
        self,
        store: Store,
        source: Source,
        shop: Shop,
        client: ShopClient,
        metrics: Metrics,
        owner: str,
        *,
        recorded: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.source = source
        self.shop = shop
        self.client = client
        self.metrics = metrics
        self.owner = owner
        self.recorded = recorded  # told each event recorded (the worker takes it up at once)
        self.clock = clock
        self.backfill = Backfill(store, source)
        self.cursor: float | None = None  # as last read: the cursor age shown at a scrape
        self._started = clock()
        labels = (source.name, shop.name)
        self.metrics.sweep_cursor_age.labels(*labels).set_function(self.cursor_age)

    def cursor_age(self) -> float:
        """Seconds since the cursor (since this sweeper started, before any cursor)."""
        return max(0.0, self.clock() - (self.cursor if self.cursor is not None else self._started))

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep when due until `stopping` is set; nothing but cancellation ends it."""
        every = self.source.sweep.every
        while not stopping.is_set():
            try:
                await self.sweep_once()
            except StoreError as exc:
                log.error("sweep of %s: the store failed: %s", self.shop.name, exc)
            except Exception:  # a sweep must never take `serve` down; the next one retries
                log.exception("sweep of %s failed unexpectedly", self.shop.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), every)

    async def sweep_once(self) -> Tally | None:
        """One sweep if it is due and no one else holds the lease; None when it was not."""
        every = self.source.sweep.every
        lease = await self.store.claim_sweep(
            self.source.name, self.shop.name, self.owner, LEASE, every
        )
        if lease is None:
            self.cursor = (await self.store.sweep_cursor(self.source.name, self.shop.name)).cursor
            return None
        self.cursor = lease.cursor
        started = self.clock()
        window = sweep_window(lease.cursor, started, self.source.sweep.lookback)
        if window is None:
            await self.store.end_sweep(lease, None)
            return Tally()
        line(
            log,
            "sweep started",
            generation=lease.generation,
            source=self.source.name,
            shop=self.shop.name,
            since=window.since,
        )
        keeper = asyncio.create_task(self._keep(lease, asyncio.current_task()))
        try:
            tally = await self.backfill.run(self.shop, self.client, window)
        except asyncio.CancelledError:  # a drain: give the lease back now, not when it lapses
            with contextlib.suppress(StoreError):
                await self.store.end_sweep(lease, None)
            raise
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        self._count(tally)
        assert window.until is not None
        cursor = None if tally.failed else window.until.timestamp()
        if not await self.store.end_sweep(lease, cursor):
            log.warning("sweep of %s lost its lease; its cursor is not moved", self.shop.name)
        elif cursor is not None:
            self.cursor = max(cursor, self.cursor or cursor)
        line(
            log,
            "sweep ended",
            generation=lease.generation,
            source=self.source.name,
            shop=self.shop.name,
            orders=tally.orders,
            new=tally.new,
            changed=tally.updated,
            known=tally.known,
            failed=len(tally.failed) or None,
        )
        return tally

    def _count(self, tally: Tally) -> None:
        labels = (self.source.name, self.shop.name)
        self.metrics.sweep_missed.labels(*labels, "new").inc(tally.new)
        self.metrics.sweep_missed.labels(*labels, "changed").inc(tally.updated)
        if tally.failed:
            self.metrics.sweep_failures.labels(*labels).inc()
        if self.recorded is not None:
            for event_id in tally.event_ids:
                self.recorded(event_id)

    async def _keep(self, lease: SweepLease, sweep: asyncio.Task[object] | None) -> None:
        """Renew the lease while the sweep runs; stop the sweep if it was lost."""
        while True:
            await asyncio.sleep(LEASE / 3)
            try:
                held = await self.store.renew_sweep(lease, LEASE)
            except StoreError as exc:
                log.warning("sweep of %s: lease not renewed: %s", self.shop.name, exc)
                continue
            if not held and sweep is not None:
                log.warning("sweep of %s lost its lease; stopping it", self.shop.name)
                sweep.cancel()
                return


class Sweeps:
    """Every configured sweep of a `bridge serve`: one task per (source, shop with an API)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        owner: str,
        *,
        recorded: Callable[[int], None] | None = None,
    ) -> None:
        self.sweepers = [
            Sweeper(
                store,
                source,
                shop,
                open_shop_client(source, shop),
                metrics,
                owner,
                recorded=recorded,
            )
            for source in settings.sources.values()
            if source.sweep.every
            for shop in shops_with_api(source)
        ]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for sweeper in self.sweepers:
            name = f"bridge-sweep-{sweeper.source.name}-{sweeper.shop.name}"
            self._tasks.append(asyncio.create_task(sweeper.run(self._stopping), name=name))
            log.info(
                "sweeping %s of %s every %g s, looking back %g s",
                sweeper.shop.name,
                sweeper.source.name,
                sweeper.source.sweep.every,
                sweeper.source.sweep.lookback,
            )

    async def stop(self) -> None:
        """Drain: no new sweep starts; one in flight is cut short (its lease lapses)."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sweeper in self.sweepers:
            await sweeper.client.aclose()
