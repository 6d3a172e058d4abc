"""`bridge events …`: operate on recorded events, straight on the configured store.

A running service picks replayed events up on its next poll; nothing here talks to it.
"""

from __future__ import annotations

import argparse
import sys
import time

from bridge.admin import dismiss, dismissal_reason, event_view, replay
from bridge.config import Settings
from bridge.errors import StoreError
from bridge.finding import Asked, BadFilter, event_filter, moment
from bridge.store import Store, open_store
from bridge.store.base import DISMISSABLE, REPLAYABLE, SCHEMA_VERSION, STATUSES, utc
from bridge.wire import dumps


async def _list(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    asked = Asked(
        status=args.status,
        source=args.source,
        shop=args.shop,
        order=args.order,
        text=args.search,
        since=args.since,
        until=args.until,
        before=str(args.before) if args.before else None,
        flagged=args.flagged,
    )
    where = await event_filter(settings, store, asked)
    events = await store.list_events(where=where, limit=args.limit)
    counts = await store.count_events(where)
    more = len(events) == args.limit and sum(counts.values()) > len(events)
    next_before = events[-1].id if more else None
    if args.json:
        rows = [event.summary() for event in events]
        _print({"data": rows, "counts": counts, "next_before": next_before})
        return 0
    print(f"{'ID':>7}  {'RECEIVED':24}  {'SOURCE':12}  {'ORDER':16}  {'STATUS':10}  DETAIL")
    for event in events:
        detail = f"invoice {event.invoice_id}" if event.invoice_id else (event.reason or "")
        if event.possible_duplicate or event.extra_invoice_ids:
            detail = f"FLAGGED: {event.possible_duplicate or 'more invoices'}; {detail}"
        print(
            f"{event.id:>7}  {utc(event.received_at):24}  {event.source:12}  "
            f"{event.order_ref or '-':16}  {event.status:10}  {detail}"
        )
    total = sum(counts.values())
    by_status = ", ".join(f"{counts[status]} {status}" for status in STATUSES if status in counts)
    print(f"{total} matching: {by_status or 'none'}" + (f"; shown {len(events)}" if more else ""))
    if next_before:
        print(f"next page: --before {next_before}")
    return 0


def _print(value: object) -> None:
    sys.stdout.write(dumps(value, indent=True).decode() + "\n")


async def _show(store: Store, args: argparse.Namespace) -> int:
    view = await event_view(store, args.id)
    if view is None:
        print(f"bridge: no event {args.id}", file=sys.stderr)
        return 1
    _print(view)
    return 0


async def _chosen(
    store: Store, args: argparse.Namespace, settings: Settings, verb: str
) -> list[int]:
    """The events named by id, or all those matching --status (and --source, --since)."""
    if bool(args.ids) == bool(args.status):
        raise BadFilter(f"give event IDs or --status, not both or neither, to {verb}")
    if args.ids:
        if getattr(args, "source", None) or getattr(args, "since", None):
            raise BadFilter("--source and --since go with --status, not with event IDs")
        return list(args.ids)
    asked = Asked(
        status=args.status, source=getattr(args, "source", None), since=getattr(args, "since", None)
    )
    where = await event_filter(settings, store, asked)
    chosen = [event.id for event in await store.list_events(where=where, limit=1_000_000)]
    if not chosen:  # say so: silence reads as "done" to someone who expected events
        print(f"no {args.status} events match: nothing to {verb}")
    return chosen


async def _replay(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    failed = 0
    for event_id in await _chosen(store, args, settings, "replay"):
        event = await store.get(event_id)
        if event is None or event.status not in REPLAYABLE:
            state = "does not exist" if event is None else f"is {event.status}"
            print(
                f"bridge: event {event_id} {state}; only dead, rejected or dismissed events replay",
                file=sys.stderr,
            )
            failed += 1
            continue
        if args.dry_run:
            print(f"would replay event {event_id} ({event.status}: {event.reason})")
            continue
        if await replay(store, event) is None:
            print(f"bridge: event {event_id} changed while it was being replayed", file=sys.stderr)
            failed += 1
            continue
        print(f"replayed event {event_id}: received again, history kept")
    return 1 if failed else 0


async def _dismiss(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    reason = dismissal_reason(args.reason)
    failed = done = 0
    for event_id in await _chosen(store, args, settings, "dismiss"):
        event = await store.get(event_id)
        if event is None or event.status not in DISMISSABLE:
            state = "does not exist" if event is None else f"is {event.status}"
            print(
                f"bridge: event {event_id} {state}; only dead or rejected events are dismissed",
                file=sys.stderr,
            )
            failed += 1
            continue
        if args.dry_run:
            print(f"would dismiss event {event_id} ({event.status}: {event.reason})")
            continue
        if await dismiss(store, event, reason) is None:
            print(f"bridge: event {event_id} changed while it was being dismissed", file=sys.stderr)
            failed += 1
            continue
        done += 1
        print(f"dismissed event {event_id} (was {event.status}): {reason}")
    if not args.dry_run:
        print(f"dismissed {done} events" + (f", {failed} refused" if failed else ""))
    return 1 if failed else 0


async def _purge(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    if args.status:
        if args.days is not None or not args.before:
            raise BadFilter("--status takes --before T (an ISO time or an age such as 30d)")
        before = moment(args.before, "--before")
        purged = await store.purge_payloads(before, [args.status])
        print(
            f"purged the payloads of {purged} {args.status} events last changed before "
            f"{utc(before)}"
        )
        return 0
    if args.before:
        raise BadFilter("--before goes with --status; without it, use --days N")
    days = args.days if args.days is not None else settings.config.store.retention_days
    purged = await store.purge_payloads(time.time() - days * 86400)
    print(f"purged the payloads of {purged} finished events older than {days} days")
    return 0


async def require_schema(store: Store) -> None:
    """Refuse a store without this release's schema: commands never create or upgrade one."""
    version = await store.schema_version()
    if version is None:
        raise StoreError("the store has no schema yet: run `bridge migrate` or `bridge serve`")
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"the store's schema is version {version}, older than this release's "
            f"({SCHEMA_VERSION}): run `bridge migrate`"
        )


async def run_events(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.config.store, create=False)
    try:
        await require_schema(store)
        if args.action == "list":
            return await _list(store, args, settings)
        if args.action == "show":
            return await _show(store, args)
        if args.action == "replay":
            return await _replay(store, args, settings)
        if args.action == "dismiss":
            return await _dismiss(store, args, settings)
        return await _purge(store, args, settings)
    except BadFilter as exc:
        print(f"bridge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
