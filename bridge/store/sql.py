"""The store's rules, written once over any SQL connector.

Each operation is a rule (see `bridge/store/connector.py`): `@writes` runs it in a write
transaction, `@reads` without one, `@looks_up` like a read but of a few rows by key, which a
connector may run without a hop to a thread. The SQL is in queries.sql; what differs between
SQLite and PostgreSQL is the connector's business.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import secrets
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from bridge.errors import StoreError
from bridge.store import schema
from bridge.store.base import (
    CREATED,
    DISMISSABLE,
    FINISHED,
    PROCESSING,
    PURGED_BY_RETENTION,
    RECEIVED,
    REPLAYABLE,
    Attempt,
    Backlog,
    Event,
    EventFilter,
    NewDelivery,
    OrderClaim,
    OrderIntent,
    OrderKey,
    OrderRecord,
    Store,
    SweepCursor,
    SweepLease,
)
from bridge.store.clock import Now
from bridge.store.connector import (
    Connector,
    Rerunnable,
    Row,
    Rule,
    changed,
    clock,
    one,
    one_now,
    rows,
    wake,
)
from bridge.store.queries import QUERIES
from bridge.store.search import key_pattern, merged, text_pattern

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="SQLStore")

_EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(Event))
_HEARTBEAT = "worker_heartbeat"  # the meta key a running worker refreshes
_CHUNK = 500  # ids per IN list: far below either dialect's limit on parameters


def _chunks(values: Collection[str]) -> list[tuple[str, ...]]:
    ordered = tuple(dict.fromkeys(values))
    return [ordered[n : n + _CHUNK] for n in range(0, len(ordered), _CHUNK)]


def _running(
    method: Callable[Concatenate[S, P], Rule[T]],
    run: Callable[[Connector, Rule[T]], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        rule = Rerunnable(functools.partial(method, self, *args, **kwargs))
        return await run(self.connector, rule)

    return call


def writes(
    method: Callable[Concatenate[S, P], Rule[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make a rule method a store method that runs it in a write transaction."""
    return _running(method, lambda connector, rule: connector.write(rule))


def reads(
    method: Callable[Concatenate[S, P], Rule[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make a rule method a store method that runs it without a write transaction."""
    return _running(method, lambda connector, rule: connector.read(rule))


def looks_up(
    method: Callable[Concatenate[S, P], Rule[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make a rule that reads a few rows by key a store method the connector may run at once."""
    return _running(method, lambda connector, rule: connector.look(rule))


def _event(row: Row, headers: dict[str, str] | None = None) -> Event:
    """The event a row holds; `headers` when the caller has them already (just written)."""
    fields = {name: row[name] for name in _EVENT_FIELDS}
    fields["headers"] = orjson.loads(row["headers"]) if headers is None else headers
    for name in ("details", "extra_invoice_ids"):
        fields[name] = json.loads(row[name]) if row[name] else []
    return Event(**fields)


def _json(value: object) -> str | None:
    """A list or object as the JSON text both dialects store; None when empty."""
    return json.dumps(value) if value else None


def _order(key: OrderKey) -> dict[str, object]:
    return {"source": key.source, "shop": key.shop, "order_id": key.order_id}


def _sweep(lease: SweepLease) -> dict[str, object]:
    return {"source": lease.source, "shop": lease.shop, "generation": lease.generation}


def _append(
    event_id: int,
    now: Now,
    outcome: str,
    detail: str | None = None,
    delay: float | None = None,
    *,
    locked: bool = False,
) -> Rule[None]:
    """Add a line to the event's history; `locked` when the rule already holds its row lock."""
    if not locked:
        yield from one("lock_event", event_id=event_id)
    yield from changed(
        "append", event_id=event_id, now=now.wall, outcome=outcome, detail=detail, delay=delay
    )


def _mark_sent(
    key: OrderKey,
    event_id: int,
    generation: int,
    now: Now,
    sent: bool,
    request: str | None,
    *,
    held: bool = False,
) -> Rule[bool]:
    """`held` when this write has just claimed the event and locked its row."""
    if not held:
        lease = yield from one(
            "lock_lease", event_id=event_id, generation=generation, **now.params()
        )
        if not lease:
            return False
    if request is not None:
        yield from changed(
            "keep_request", event_id=event_id, generation=generation, request=request
        )
    marked = yield from changed(
        "mark_sent",
        **_order(key),
        event_id=event_id,
        sent=sent,
        sent_at=now.lease if sent else None,
        sent_boot=now.boot if sent else None,
    )
    return marked == 1


def _matching(where: EventFilter) -> dict[str, object]:
    """The parameters of queries.sql's `matching` for a filter."""
    return {
        "status": where.status,
        "source": where.source,
        "shop": where.shop,
        "order": key_pattern(where.order) if where.order else None,
        "text": text_pattern(where.text) if where.text else None,
        "since": where.since,
        "until": where.until,
        "before": where.before,
        "flagged": int(where.flagged),
    }


def _with_keys(event_id: int, values: Sequence[object]) -> Rule[str | None]:
    """The event's search keys with `values` added, its row locked (see lock_event)."""
    row = yield from one("lock_event", event_id=event_id)
    return merged(row["search_keys"] if row else None, values)


class SQLStore(Store):
    """The store over a connector; SQLiteStore and PostgresStore only choose the connector."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        # A SQLite file has one bridge process; PostgreSQL is shared by replicas.
        self.shared = connector.dialect != "sqlite"

    # -- schema -----------------------------------------------------------------

    async def migrate(self) -> None:
        await self.connector.write(schema.upgrade(self.connector.dialect))

    async def schema_version(self) -> int | None:
        return await self.connector.read(schema.version())

    async def ping(self) -> None:
        await self.connector.read(rows("SELECT 1 AS alive"))

    async def close(self) -> None:
        await self.connector.close()

    # -- events -----------------------------------------------------------------

    @writes
    def record(self, delivery: NewDelivery) -> Rule[tuple[Event, bool]]:
        now = yield from clock()
        return (yield from self._record(delivery, now))

    @writes
    def record_claimed(
        self, delivery: NewDelivery, owner: str, lease: float
    ) -> Rule[tuple[Event, bool]]:
        now = yield from clock()
        return (yield from self._record(delivery, now, claim=(owner, lease)))

    @writes
    def record_with_order(
        self, delivery: NewDelivery, owner: str, lease: float, order: OrderIntent
    ) -> Rule[tuple[Event, bool, OrderClaim | None]]:
        now = yield from clock()
        # The new row is written claimed and bound to its order, as claim and claim_order
        # would leave it: this write holds its lock from the insert on, so lock_event,
        # bind_order and a read-back have nothing to add. The insert's answer is the event.
        event, created = yield from self._record(delivery, now, order, claim=(owner, lease))
        if not created:
            return event, False, None
        taken = yield from self._take_order(
            order.key, event.id, event.generation, lease, order.request, now, held=True
        )
        if taken.marked:
            event = dataclasses.replace(event, sent_request=order.request)
        return event, True, taken

    def _record(
        self,
        delivery: NewDelivery,
        now: Now,
        order: OrderIntent | None = None,
        *,
        claim: tuple[str, float] | None = None,
    ) -> Rule[tuple[Event, bool]]:
        """Insert the delivery's row; with `order`, bound to that order from the start; with
        `claim` (owner, lease), claimed by it as written. A repeat is neither."""
        key = {"source": delivery.source, "delivery_key": delivery.delivery_key}
        holder: dict[str, object] = {
            "status": RECEIVED,
            "generation": 0,
            "owner": None,
            "lease_until": None,
            "lease_boot": None,
        }
        if claim is not None:
            owner, lease = claim
            holder = {
                "status": PROCESSING,
                "generation": 1,
                "owner": owner,
                "lease_until": now.lease + lease,
                "lease_boot": now.boot,
            }
        order_id, order_name = delivery.order_id, delivery.order_name
        values: list[object] = [order_id, order_name]
        if order is not None:
            order_id, order_name = order.key.order_id, order.order_name
            values += [order_id, order_name, *order.keys]
        row = yield from one(
            "record",
            **key,
            shop=delivery.shop,
            topic=delivery.topic,
            order_id=order_id,
            order_name=order_name,
            search_keys=merged(None, values),
            **holder,
            now=now.wall,
            headers=orjson.dumps(delivery.headers).decode(),
            body=delivery.body,
        )
        if row is not None:
            if delivery.announce:
                yield from wake()
            return _event(row, delivery.headers), True
        # A concurrent insert of the same key waited for the other to commit, then yielded.
        row = yield from one("event_by_key", **key)
        if row is None:
            raise StoreError(f"delivery {delivery.delivery_key} vanished while recorded")
        return _event(row), False

    @looks_up
    def get(self, event_id: int) -> Rule[Event | None]:
        row = yield from one("event", event_id=event_id)
        return _event(row) if row else None

    @looks_up
    def history(self, event_id: int) -> Rule[list[Attempt]]:
        found = yield from rows(QUERIES["history"], event_id=event_id)
        return [Attempt(**row) for row in found]

    @reads
    def list_events(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        order: str | None = None,
        since: float | None = None,
        flagged: bool = False,
        limit: int = 100,
        where: EventFilter | None = None,
    ) -> Rule[list[Event]]:
        if where is None:
            where = EventFilter(
                status=status, source=source, order=order, since=since, flagged=flagged
            )
        found = yield from rows(QUERIES["list_events"], **_matching(where), limit=limit)
        return [_event(row) for row in found]

    @reads
    def count_events(self, where: EventFilter) -> Rule[dict[str, int]]:
        found = yield from rows(QUERIES["count_events"], **_matching(where))
        return {row["status"]: row["n"] for row in found}

    @looks_up
    def known_source(self, source: str) -> Rule[bool]:
        found = yield from one("known_source", source=source)
        return found is not None

    @writes
    def claim(self, event_id: int, owner: str, lease: float) -> Rule[Event | None]:
        now = yield from clock()
        return (yield from self._claim(event_id, owner, lease, now))

    def _claim(self, event_id: int, owner: str, lease: float, now: Now) -> Rule[Event | None]:
        row = yield from one(
            "claim", event_id=event_id, owner=owner, lease_until=now.lease + lease, **now.params()
        )
        return _event(row) if row else None

    @writes
    def claim_next(
        self, owner: str, lease: float, skip: Collection[int] = ()
    ) -> Rule[Event | None]:
        now = yield from clock()
        row = yield from one(
            "claim_next",
            owner=owner,
            lease_until=now.lease + lease,
            skip=tuple(skip),
            **now.params(),
        )
        return _event(row) if row else None

    @reads
    def next_due(self) -> Rule[float | None]:
        now = yield from clock()
        row = yield from one("next_due", **now.params())
        return None if row is None or row["wait"] is None else max(0.0, float(row["wait"]))

    @writes
    def renew(self, event_id: int, generation: int, lease: float) -> Rule[bool]:
        now = yield from clock()
        until = {"lease_until": now.lease + lease, "boot": now.boot}
        renewed = yield from changed("renew", event_id=event_id, generation=generation, **until)
        if renewed:
            yield from changed("renew_order", event_id=event_id, **until)
        return renewed == 1

    @looks_up
    def still_holds(self, event_id: int, generation: int) -> Rule[bool]:
        # The clock is read as the statement runs: on PostgreSQL, no round trip before it.
        row = yield from one_now("holding", event_id=event_id, generation=generation)
        return row is not None

    @writes
    def note(
        self, event_id: int, outcome: str, detail: str | None = None, delay: float | None = None
    ) -> Rule[None]:
        now = yield from clock()
        yield from _append(event_id, now, outcome, detail, delay)

    @writes
    def finish(
        self,
        event_id: int,
        generation: int,
        status: str,
        *,
        reason: str | None = None,
        details: list[dict[str, str]] | None = None,
        invoice_id: int | None = None,
        order_id: str | None = None,
        order_name: str | None = None,
        keys: Sequence[str] = (),
    ) -> Rule[bool]:
        if status not in FINISHED - {CREATED}:
            raise ValueError(
                f"finish() ends events skipped, dead, rejected or tagged, not {status}"
            )
        now = yield from clock()
        search_keys = yield from _with_keys(event_id, (order_id, order_name, *keys, invoice_id))
        done = yield from changed(
            "finish",
            event_id=event_id,
            generation=generation,
            status=status,
            reason=reason,
            details=_json(details),
            invoice_id=invoice_id,
            order_id=order_id,
            order_name=order_name,
            search_keys=search_keys,
            now=now.wall,
        )
        if done:
            yield from _append(event_id, now, status, reason, locked=True)
        return done == 1

    @writes
    def defer(
        self,
        event_id: int,
        generation: int,
        *,
        delay: float,
        reason: str,
        counted: bool = True,
        step: str | None = None,
    ) -> Rule[bool]:
        now = yield from clock()
        deferred = yield from changed(
            "defer",
            event_id=event_id,
            generation=generation,
            reason=reason,
            counted=int(counted),
            next_attempt_at=now.wall + delay,
            now=now.wall,
        )
        if deferred and step is not None:  # a lost claim writes no history either
            yield from _append(event_id, now, step, reason, delay)
        return deferred == 1

    @writes
    def release(self, event_id: int, generation: int) -> Rule[bool]:
        now = yield from clock()
        released = yield from changed(
            "release", event_id=event_id, generation=generation, now=now.wall
        )
        if released:
            yield from wake()  # another replica takes it up now, not at its next poll
        return released == 1

    # -- orders -----------------------------------------------------------------

    @writes
    def claim_order(
        self,
        key: OrderKey,
        event_id: int,
        generation: int,
        lease: float,
        order_name: str | None = None,
        keys: Sequence[str] = (),
        request: str | None = None,
    ) -> Rule[OrderClaim]:
        return (
            yield from self._claim_order(
                key, event_id, generation, lease, order_name, keys, request
            )
        )

    def _claim_order(
        self,
        key: OrderKey,
        event_id: int,
        generation: int,
        lease: float,
        order_name: str | None,
        keys: Sequence[str],
        request: str | None,
    ) -> Rule[OrderClaim]:
        """Bind the order to the claimed event and claim it."""
        now = yield from clock()
        search_keys = yield from _with_keys(event_id, (key.order_id, order_name, *keys))
        bound = yield from changed(
            "bind_order",
            event_id=event_id,
            generation=generation,
            order_id=key.order_id,
            order_name=order_name,
            search_keys=search_keys,
        )
        if not bound:
            return OrderClaim(acquired=False)
        return (yield from self._take_order(key, event_id, generation, lease, request, now))

    def _take_order(
        self,
        key: OrderKey,
        event_id: int,
        generation: int,
        lease: float,
        request: str | None,
        now: Now,
        *,
        held: bool = False,
    ) -> Rule[OrderClaim]:
        """Claim the order for the event bound to it; `held`: this write has just claimed
        the event, so its lease needs no second look before the send is marked."""
        taken = yield from one(
            "take_order",
            **_order(key),
            event_id=event_id,
            lease_until=now.lease + lease,
            **now.params(),
        )
        if taken is not None:
            sent = bool(taken["sent"])
            if request is not None and not sent:
                marked = yield from _mark_sent(
                    key, event_id, generation, now, True, request, held=held
                )
                return OrderClaim(acquired=True, marked=marked)
            age = now.since(taken["sent_at"], taken["sent_boot"]) if sent else None
            return OrderClaim(acquired=True, sent=sent, sent_age=age)
        holder = yield from one("order", **_order(key))
        if holder is None:  # released between the two statements: look again later
            return OrderClaim(acquired=False)
        return OrderClaim(
            acquired=False, invoice_id=holder["invoice_id"], event_id=holder["event_id"]
        )

    @writes
    def mark_sent(
        self,
        key: OrderKey,
        event_id: int,
        generation: int,
        sent: bool = True,
        request: str | None = None,
    ) -> Rule[bool]:
        now = yield from clock()
        return (yield from _mark_sent(key, event_id, generation, now, sent, request))

    @writes
    def complete_event(
        self,
        event_id: int,
        generation: int,
        key: OrderKey,
        invoice_id: int,
        total: Decimal | None = None,
        *,
        held: bool = False,
    ) -> Rule[tuple[Event | None, int]]:
        now = yield from clock()
        if held:  # the lease check locks the row and reads its keys, as lock_event would
            holding = now.params()
            row = yield from one("lock_lease", event_id=event_id, generation=generation, **holding)
            if row is None:
                return None, event_id
            search_keys = merged(row["search_keys"], (invoice_id,))
        else:
            search_keys = yield from _with_keys(event_id, (invoice_id,))
        row = yield from one(
            "record_invoice",
            **_order(key),
            invoice_id=invoice_id,
            event_id=event_id,
            now=now.wall,
            total=None if total is None else str(total),
        )
        if row is None:
            row = yield from one("order", **_order(key))
            assert row is not None  # the conflict that refused us is this row, now locked
        final_invoice, original = row["invoice_id"], row["event_id"]
        settled = yield from one(
            "created",
            event_id=event_id,
            generation=generation,
            invoice_id=final_invoice,
            duplicate_of=original if original != event_id else None,
            search_keys=merged(search_keys, (final_invoice,)),
            now=now.wall,
        )
        if settled is None:
            return None, original
        outcome = CREATED if original == event_id else "duplicate"
        yield from _append(event_id, now, outcome, f"invoice {final_invoice}", locked=True)
        return _event(settled), original

    @writes
    def flag(
        self,
        event_id: int,
        *,
        possible_duplicate: str | None,
        extra_invoice_ids: Sequence[int] = (),
    ) -> Rule[None]:
        yield from changed(
            "flag",
            event_id=event_id,
            possible_duplicate=possible_duplicate,
            extra_invoice_ids=_json(list(extra_invoice_ids)),
        )

    @writes
    def set_order(
        self, event_id: int, order_id: str, order_name: str | None, keys: Sequence[str] = ()
    ) -> Rule[None]:
        search_keys = yield from _with_keys(event_id, (order_id, order_name, *keys))
        yield from changed(
            "set_order",
            event_id=event_id,
            order_id=order_id,
            order_name=order_name,
            search_keys=search_keys,
        )

    @looks_up
    def invoice_for(self, key: OrderKey) -> Rule[int | None]:
        row = yield from one("order", **_order(key))
        return row["invoice_id"] if row else None

    @writes
    def release_order(self, key: OrderKey, event_id: int) -> Rule[None]:
        yield from changed("release_order", **_order(key), event_id=event_id)

    @reads
    def order_shops(self, source: str) -> Rule[list[str]]:
        found = yield from rows(QUERIES["order_shops"], source=source)
        return [row["shop"] for row in found]

    @writes
    def rescope_orders(self, source: str, old_shop: str, new_shop: str) -> Rule[tuple[int, int]]:
        moved = yield from changed(
            "rescope_orders", source=source, old_shop=old_shop, new_shop=new_shop
        )
        left = yield from one("orders_of_shop", source=source, old_shop=old_shop)
        return moved, int(left["n"]) if left else 0

    @reads
    def order_events(self, source: str, shop: str, order_ids: Collection[str]) -> Rule[list[Event]]:
        found: list[Event] = []
        for chunk in _chunks(order_ids):
            batch = yield from rows(
                QUERIES["order_events"], source=source, shop=shop, order_ids=chunk
            )
            found.extend(_event(row) for row in batch)
        return sorted(found, key=lambda event: event.id)

    @reads
    def order_records(
        self, source: str, shop: str, order_ids: Collection[str]
    ) -> Rule[dict[str, OrderRecord]]:
        found: dict[str, OrderRecord] = {}
        for chunk in _chunks(order_ids):
            batch = yield from rows(
                QUERIES["order_records"], source=source, shop=shop, order_ids=chunk
            )
            for row in batch:
                total = Decimal(row["total"]) if row["total"] is not None else None
                found[row["order_id"]] = OrderRecord(
                    row["order_id"], row["invoice_id"], row["event_id"], total
                )
        return found

    # -- sweeps -----------------------------------------------------------------

    @writes
    def claim_sweep(
        self, source: str, shop: str, owner: str, lease: float, every: float
    ) -> Rule[SweepLease | None]:
        now = yield from clock()
        yield from changed("add_sweep", source=source, shop=shop)
        row = yield from one(
            "claim_sweep",
            source=source,
            shop=shop,
            owner=owner,
            lease_until=now.lease + lease,
            every=every,
            **now.params(),
        )
        return SweepLease(source, shop, row["generation"], row["cursor"]) if row else None

    @looks_up
    def sweep_cursor(self, source: str, shop: str) -> Rule[SweepCursor]:
        row = yield from one("sweep_cursor", source=source, shop=shop)
        if row is None:
            return SweepCursor()
        return SweepCursor(row["cursor"], row["swept_at"], row["lease_owner"])

    @writes
    def renew_sweep(self, lease: SweepLease, seconds: float) -> Rule[bool]:
        now = yield from clock()
        renewed = yield from changed(
            "renew_sweep", **_sweep(lease), lease_until=now.lease + seconds, boot=now.boot
        )
        return renewed == 1

    @writes
    def end_sweep(self, lease: SweepLease, cursor: float | None) -> Rule[bool]:
        now = yield from clock()
        if cursor is None:
            ended = yield from changed("release_sweep", **_sweep(lease))
        else:
            ended = yield from changed("end_sweep", **_sweep(lease), cursor=cursor, now=now.wall)
        return ended == 1

    @writes
    def heartbeat(self) -> Rule[None]:
        now = yield from clock()
        yield from changed("heartbeat", key=_HEARTBEAT, beat=repr(now.wall))

    @looks_up
    def heartbeat_age(self) -> Rule[float | None]:
        now = yield from clock()
        row = yield from one("meta_value", key=_HEARTBEAT)
        return max(0.0, now.wall - float(row["value"])) if row else None

    # -- operations -------------------------------------------------------------

    @writes
    def replay(self, event_id: int) -> Rule[Event]:
        now = yield from clock()
        row = yield from one("lock_event", event_id=event_id)
        if row is None:
            raise StoreError(f"event {event_id} does not exist")
        if row["status"] not in REPLAYABLE:
            raise StoreError(
                f"event {event_id} is {row['status']}; only dead, rejected or dismissed "
                "events replay"
            )
        updated = yield from one("replay", event_id=event_id, now=now.wall)
        assert updated is not None  # locked above
        yield from _append(event_id, now, "replayed", f"was {row['status']}", locked=True)
        yield from wake()
        return _event(updated)

    @writes
    def dismiss(self, event_id: int, reason: str) -> Rule[Event]:
        now = yield from clock()
        row = yield from one("lock_event", event_id=event_id)
        if row is None:
            raise StoreError(f"event {event_id} does not exist")
        if row["status"] not in DISMISSABLE:
            raise StoreError(
                f"event {event_id} is {row['status']}; only dead or rejected events are dismissed"
            )
        updated = yield from one(
            "dismiss",
            event_id=event_id,
            reason=reason,
            # What it failed on stays findable by its text.
            search_keys=merged(row["search_keys"], (row["reason"],)),
            now=now.wall,
        )
        assert updated is not None  # locked above
        yield from _append(
            event_id,
            now,
            "dismissed",
            f"{reason} (was {row['status']}: {row['reason']})",
            locked=True,
        )
        return _event(updated)

    @writes
    def purge_payloads(
        self, older_than: float, statuses: Collection[str] = PURGED_BY_RETENTION
    ) -> Rule[int]:
        purged = yield from changed(
            "purge_payloads", older_than=older_than, statuses=tuple(statuses)
        )
        return purged

    @reads
    def counts(self) -> Rule[dict[str, int]]:
        found = yield from rows(QUERIES["counts"])
        return {row["status"]: row["n"] for row in found}

    @reads
    def backlog(self) -> Rule[Backlog]:
        row = yield from one("backlog")
        return Backlog(int(row["n"]), row["oldest"]) if row else Backlog(0, None)

    @reads
    def oldest_unfinished(self) -> Rule[Event | None]:
        row = yield from one("oldest_unfinished")
        return _event(row) if row else None

    @reads
    def received_by_hour(self, since: float) -> Rule[dict[int, dict[str, int]]]:
        found = yield from rows(QUERIES["received_by_hour"], since=since)
        hours: dict[int, dict[str, int]] = {}
        for row in found:
            hours.setdefault(int(row["hour"]), {})[row["status"]] = int(row["n"])
        return hours

    @writes
    def secret(self, name: str) -> Rule[str]:
        # Of replicas making it at once, the first insert wins and all read that one.
        yield from changed("add_meta", key=name, value=secrets.token_hex(32))
        row = yield from one("meta_value", key=name)
        assert row is not None  # inserted above, or already there
        return str(row["value"])
