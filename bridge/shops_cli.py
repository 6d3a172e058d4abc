"""`bridge backfill`, `bridge reconcile` and `bridge shop-sandbox`: the shops' own APIs.

Whether a `bridge serve` is running on the store is read from the heartbeat its worker
writes every few seconds (a row in the store's meta table): the one sign every replica
leaves wherever it runs, with no URL to configure. No heartbeat for `SERVE_SILENT` seconds
means none is running.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from collections import Counter
from typing import TextIO

from bridge.backfill import Backfill, Tally
from bridge.config import Settings, Shop, Source
from bridge.errors import ConfigError
from bridge.events_cli import require_schema
from bridge.luminous import LuminousClient
from bridge.reconcile import (
    FAILING,
    INVOICED,
    MISSING,
    STATES,
    InvoiceIndex,
    Line,
    classify,
    invoice_days,
)
from bridge.shop_api import ShopOrder, Window, open_shop_client, shops_with_api
from bridge.shops import order_scope
from bridge.store import Store, open_store
from bridge.store.base import FINISHED, Event
from bridge.wire import dumps

SERVE_SILENT = 30.0  # seconds without a heartbeat after which no worker is taken as running
WAIT_POLL = 1.0


class Progress:
    """One line on a terminal, rewritten in place; nothing when output is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def show(self, text: str) -> None:
        if self.live:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def window_of(args: argparse.Namespace, by: str = "created") -> Window:
    from bridge.cli import UsageError

    until = args.until or dt.datetime.now(dt.UTC)
    if until < args.since:
        raise UsageError("--until comes before --since")
    return Window(args.since, until, "created" if by == "created" else "updated")


async def serving(store: Store) -> tuple[bool, str]:
    """Whether a `bridge serve` worker is running on this store, and how that is known."""
    age = await store.heartbeat_age()
    if age is None:
        return False, "no `bridge serve` has ever run on this store"
    if age > SERVE_SILENT:
        return False, f"no `bridge serve` is running on this store (last heartbeat {age:.0f} s ago)"
    return True, f"a `bridge serve` is running on this store (heartbeat {age:.0f} s ago)"


def print_tallies(rows: list[tuple[str, Tally]], *, dry_run: bool) -> None:
    verb = "would record" if dry_run else "recorded"
    print(
        f"{'SHOP':32} {'PAGES':>6} {'ORDERS':>7} {'NEW':>6} {'CHANGED':>8} {'KNOWN':>6} {'SKIP':>5}"
    )
    for name, tally in rows:
        print(
            f"{name:32} {tally.pages:>6} {tally.orders:>7} {tally.new:>6} {tally.updated:>8} "
            f"{tally.known:>6} {tally.skipped:>5}"
        )
    total = Tally()
    for _, tally in rows:
        total.add(tally)
    print(
        f"{verb}: {total.new} new orders, {total.updated} changed ones; {total.known} already "
        f"known; {total.skipped} of them will be skipped (test orders and the like); "
        f"{len(total.failed)} shops failed to fetch"
    )
    for line in total.failed:
        print(f"failed to fetch: {line}")
    for line in total.refused:
        print(f"not recorded: {line}")


async def backfill_shops(
    store: Store, source: Source, window: Window, shop: str | None, *, dry_run: bool
) -> list[tuple[str, Tally]]:
    """Backfill every shop of the source that has an API (or the one named)."""
    progress = Progress(sys.stderr)

    def show(name: str, tally: Tally) -> None:
        progress.show(
            f"{name}: {tally.pages} pages, {tally.orders} orders, "
            f"{tally.new + tally.updated} new events"
        )

    rows = []
    for table in shops_with_api(source, shop):
        client = open_shop_client(source, table)
        try:
            note = await client.visibility()
            if note and window.since < dt.datetime.now(dt.UTC) - dt.timedelta(days=60):
                print(f"note: {table.name}: {note}", file=sys.stderr)
            job = Backfill(store, source, dry_run=dry_run, progress=show)
            rows.append((table.name, await job.run(table, client, window)))
        finally:
            await client.aclose()
            progress.done()
    return rows


async def follow(store: Store, source: Source, rows: list[tuple[str, Tally]]) -> Counter[str]:
    """Wait until every event recorded has finished, with a progress bar; their statuses."""
    progress = Progress(sys.stderr)
    wanted = {event_id for _, tally in rows for event_id in tally.event_ids}
    statuses: Counter[str] = Counter()
    while True:
        statuses = Counter()
        for name, tally in rows:
            events = await store.order_events(
                source.name, order_scope(source, name), tally.order_ids
            )
            statuses.update(e.status for e in events if e.id in wanted)
        finished = sum(n for status, n in statuses.items() if status in FINISHED)
        progress.show(f"invoicing {bar(finished, len(wanted))}")
        if finished >= len(wanted):
            progress.done()
            return statuses
        await asyncio.sleep(WAIT_POLL)


async def run_backfill(args: argparse.Namespace, settings: Settings, source: Source) -> int:
    window = window_of(args)
    store = open_store(settings.config.store, create=False)
    try:
        await require_schema(store)
        rows = await backfill_shops(store, source, window, args.shop, dry_run=args.dry_run)
        print_tallies(rows, dry_run=args.dry_run)
        failed = any(tally.failed for _, tally in rows)
        recorded = sum(len(tally.event_ids) for _, tally in rows)
        if args.dry_run or not recorded:
            return 1 if failed else 0
        running, why = await serving(store)
        if not running:
            print(f"{why}: the {recorded} events recorded wait until one starts")
            return 1 if failed or args.wait else 0
        if args.wait:
            statuses = await follow(store, source, rows)
            print("invoicing done: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
            failed = failed or bool(statuses["dead"] or statuses["rejected"])
        else:
            print(f"{why}: it invoices the {recorded} events recorded (--wait follows them)")
        return 1 if failed else 0
    finally:
        await store.close()


def _luminous(settings: Settings) -> LuminousClient:
    config = settings.config.luminous
    if not config.base_url:
        raise ConfigError(
            "luminous.base_url",
            "required: reconcile reads Luminous's invoices (beside `bridge serve --sandbox`:"
            " http://127.0.0.1:8080/external/api/v1, e.g. in BRIDGE_LUMINOUS__BASE_URL)",
        )
    if not settings.luminous_token:
        raise ConfigError(
            "luminous.token_env", f"environment variable {config.token_env} is not set"
        )
    return LuminousClient(
        config.base_url,
        settings.luminous_token,
        timeout=config.timeout,
        max_concurrency=config.max_concurrency,
        max_requests_per_second=config.max_requests_per_second or None,
    )


async def _fetch(source: Source, table: Shop, window: Window, notes: list[str]) -> list[ShopOrder]:
    client = open_shop_client(source, table)
    progress = Progress(sys.stderr)
    try:
        note = await client.visibility()
        if note:
            notes.append(f"{table.name}: {note}")
        orders: list[ShopOrder] = []
        async for page in client.pages(window):
            orders += page
            progress.show(f"{table.name}: {len(orders)} orders read")
        return orders
    finally:
        progress.done()
        await client.aclose()


async def reconcile_shop(
    store: Store,
    source: Source,
    table: Shop,
    orders: list[ShopOrder],
    invoices: InvoiceIndex,
    stuck_after: float,
) -> list[Line]:
    scope = order_scope(source, table.name)
    ids = [order.order_id for order in orders]
    events = await store.order_events(source.name, scope, ids)
    records = await store.order_records(source.name, scope, ids)
    by_order: dict[str, list[Event]] = {}
    for event in events:
        by_order.setdefault(event.order_id or "", []).append(event)
    now = time.time()
    return [
        classify(
            source,
            table.name,
            order,
            by_order.get(order.order_id, []),
            records.get(order.order_id),
            invoices,
            now=now,
            stuck_after=stuck_after,
        )
        for order in orders
    ]


def print_report(lines: list[Line], *, as_json: bool) -> None:
    if as_json:
        for line in lines:
            sys.stdout.write(dumps(line.as_dict()).decode() + "\n")
        return
    shown = [line for line in lines if line.state != INVOICED]
    if shown:
        print(f"{'ORDER ID':22} {'ORDER':10} {'STATE':11} DETAIL")
    for line in shown:
        ids = ", ".join(map(str, line.invoice_ids))
        detail = "; ".join(part for part in (line.detail, f"invoices {ids}" if ids else "") if part)
        print(f"{line.order_id:22} {line.order_name or '-':10} {line.state:11} {detail}")


def print_counts(lines: list[Line], stream: TextIO) -> None:
    counts = Counter(line.state for line in lines)
    print(f"{len(lines)} orders:", file=stream)
    for state in STATES:
        if counts[state]:
            print(f"  {state:11} {counts[state]:>7}", file=stream)


async def run_reconcile(args: argparse.Namespace, settings: Settings, source: Source) -> int:
    window = window_of(args)
    tables = shops_with_api(source, args.shop)
    store = open_store(settings.config.store, create=False)
    try:
        await require_schema(store)
        notes: list[str] = []
        fetched = [(table, await _fetch(source, table, window, notes)) for table in tables]
        async with _luminous(settings) as luminous:
            assert window.until is not None
            first, last = invoice_days(window.since, window.until)
            index = InvoiceIndex(
                await luminous.find_invoices_by_order_date(first, last),
                source.options.invoice_custom_field,
            )
            lines: list[Line] = []
            for table, orders in fetched:
                lines += await reconcile_shop(store, source, table, orders, index, args.stuck_after)
        print_report(lines, as_json=args.json)
        out = sys.stderr if args.json else sys.stdout
        print_counts(lines, out)
        old = window.since < dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        for note in notes:
            if old:
                print(f"note: {note}", file=out)
        if args.fix:
            await _fix(store, source, fetched, lines, out)
        return 1 if any(line.state in FAILING for line in lines) else 0
    finally:
        await store.close()


async def _fix(
    store: Store,
    source: Source,
    fetched: list[tuple[Shop, list[ShopOrder]]],
    lines: list[Line],
    out: TextIO,
) -> None:
    missing = {(line.shop, line.order_id) for line in lines if line.state == MISSING}
    job = Backfill(store, source)
    tally = Tally()
    for table, orders in fetched:
        page = [order for order in orders if (table.name, order.order_id) in missing]
        if page:
            await job.record_page(table, page, tally)
    running, why = await serving(store)
    then = "it invoices them" if running else "they wait until one starts"
    print(
        f"--fix: recorded {len(tally.event_ids)} missing orders as events; {why}: {then}", file=out
    )
