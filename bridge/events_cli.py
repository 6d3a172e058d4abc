"""`bridge events …`: operate on recorded events, straight on the configured store.

A running service picks replayed events up on its next poll; nothing here talks to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from bridge.admin import event_view, replay
from bridge.config import Settings, parse_duration
from bridge.errors import BridgeError, StoreError
from bridge.store import Store, open_store
from bridge.store.base import REPLAYABLE, SCHEMA_VERSION, STATUSES, utc
from bridge.wire import dumps


class EventsUsageError(BridgeError):
    """A bad argument to `bridge events`."""


def parse_since(text: str) -> float:
    """An ISO date or time (UTC unless it says otherwise), or an age such as `2h`."""
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise EventsUsageError(
            f"--since {text!r} is neither an ISO time nor an age like 2h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


async def _list(store: Store, args: argparse.Namespace) -> int:
    if args.status and args.status not in STATUSES:
        raise EventsUsageError(f"--status must be one of {', '.join(STATUSES)}")
    events = await store.list_events(
        status=args.status,
        source=args.source,
        order=args.order,
        since=parse_since(args.since) if args.since else None,
        limit=args.limit,
    )
    print(f"{'ID':>7}  {'RECEIVED':24}  {'SOURCE':12}  {'ORDER':16}  {'STATUS':10}  DETAIL")
    for event in events:
        detail = f"invoice {event.invoice_id}" if event.invoice_id else (event.reason or "")
        order = event.order_name or event.order_id or "-"
        print(
            f"{event.id:>7}  {utc(event.received_at):24}  {event.source:12}  {order:16}  "
            f"{event.status:10}  {detail}"
        )
    return 0


async def _show(store: Store, args: argparse.Namespace) -> int:
    view = await event_view(store, args.id)
    if view is None:
        print(f"bridge: no event {args.id}", file=sys.stderr)
        return 1
    sys.stdout.write(dumps(view, indent=True).decode() + "\n")
    return 0


async def _replay(store: Store, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.status):
        raise EventsUsageError("give event IDs or --status dead|rejected, not both or neither")
    ids = list(args.ids)
    if args.status:
        ids = [event.id for event in await store.list_events(status=args.status, limit=100_000)]
    failed = 0
    for event_id in ids:
        event = await store.get(event_id)
        if event is None or event.status not in REPLAYABLE:
            state = "does not exist" if event is None else f"is {event.status}"
            print(
                f"bridge: event {event_id} {state}; only dead or rejected events replay",
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


async def _purge(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    days = args.days if args.days is not None else settings.config.store.retention_days
    if days < 0:
        raise EventsUsageError("--days must not be negative")
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
    store = open_store(settings.config.store)
    try:
        await require_schema(store)
        if args.action == "list":
            return await _list(store, args)
        if args.action == "show":
            return await _show(store, args)
        if args.action == "replay":
            return await _replay(store, args)
        return await _purge(store, args, settings)
    except EventsUsageError as exc:
        print(f"bridge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
