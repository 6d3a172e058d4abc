"""The event store's interface: what every backend must do, and the records it keeps.

An event is one authentic delivery, recorded before it is answered. An order record ties
(source, shop, order id) to its one invoice, and carries the claim that keeps a second
worker from sending while the first still may.
"""

from __future__ import annotations

import datetime as dt
import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.store.listener import Listener

SCHEMA_VERSION = 5  # the highest migration in bridge/store/migrations/<dialect>/


class Status(enum.StrEnum):
    """An event's state; a `str`, so stored and compared as its value."""

    RECEIVED = "received"
    PROCESSING = "processing"
    RETRYING = "retrying"
    CREATED = "created"
    SKIPPED = "skipped"
    DEAD = "dead"
    REJECTED = "rejected"
    TAGGED = "tagged"  # a later event (cancellation, refund) tagged the order's invoice
    DISMISSED = "dismissed"  # dead or rejected, then marked as handled by hand


RECEIVED = Status.RECEIVED
PROCESSING = Status.PROCESSING
RETRYING = Status.RETRYING
CREATED = Status.CREATED
SKIPPED = Status.SKIPPED
DEAD = Status.DEAD
REJECTED = Status.REJECTED
TAGGED = Status.TAGGED
DISMISSED = Status.DISMISSED

STATUSES = tuple(Status)
FINISHED = frozenset({CREATED, SKIPPED, DEAD, REJECTED, TAGGED, DISMISSED})
UNFINISHED = frozenset(STATUSES) - FINISHED
DISMISSABLE = frozenset({DEAD, REJECTED})
REPLAYABLE = frozenset({DEAD, REJECTED, DISMISSED})
PURGED_BY_RETENTION = (CREATED, SKIPPED, TAGGED)  # dead and rejected keep theirs for a replay


def utc(timestamp: float | None) -> str | None:
    """A stored Unix time as ISO-8601 UTC, for people and JSON answers."""
    if timestamp is None:
        return None
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class NewDelivery:
    """What the front door records for an authentic delivery."""

    source: str
    delivery_key: str
    shop: str
    topic: str | None
    headers: dict[str, str]
    body: bytes
    order_id: str | None = None  # when the payload names its order
    order_name: str | None = None
    # Wake other replicas' idle workers; the front door hands its events to its own worker
    # instead, so that the replica which answers the sender is the one that invoices.
    announce: bool = True


@dataclass(frozen=True)
class EventFilter:
    """Which events `list_events` and `count_events` take; every field left out matches all.

    `order` is one whole search key (order id, name with or without `#`, PO number, e-mail,
    invoice id, SKU), `text` any part of a key or of the reason; `before` is an event id,
    the cursor of the next page (newest first).
    """

    status: str | None = None
    source: str | None = None
    shop: str | None = None
    order: str | None = None
    text: str | None = None
    since: float | None = None
    until: float | None = None
    before: int | None = None
    flagged: bool = False


@dataclass(frozen=True)
class Backlog:
    """Unfinished events: how many, and when the oldest of them was received."""

    depth: int
    oldest_received_at: float | None


@dataclass(frozen=True)
class Event:
    """A recorded delivery; `generation` counts its claims and fences each claim's writes."""

    id: int
    source: str
    delivery_key: str
    shop: str
    topic: str | None
    status: str
    received_at: float
    updated_at: float
    started_at: float = 0.0  # received, or last replayed: the retry budget's clock
    order_id: str | None = None
    order_name: str | None = None
    reason: str | None = None
    details: list[dict[str, str]] = field(default_factory=list)
    invoice_id: int | None = None
    duplicate_of: int | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    generation: int = 0
    lease_owner: str | None = None  # a label for people; `generation` fences
    lease_until: float | None = None  # on the store's lease clock, not the wall clock
    possible_duplicate: str | None = None  # why a send may have landed twice
    extra_invoice_ids: list[int] = field(default_factory=list)  # more invoices for the order
    sent_request: str | None = None  # JSON: the invoice request as last sent, ids resolved
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def order_ref(self) -> str | None:
        """The order as people name it: its name (#1001), else its id."""
        return self.order_name or self.order_id

    def summary(self) -> dict[str, Any]:
        """The event without its payload, as admin answers and `bridge events` show it."""
        return {
            "event_id": self.id,
            "source": self.source,
            "shop": self.shop or None,
            "topic": self.topic,
            "status": self.status,
            "order_id": self.order_id,
            "order_name": self.order_name,
            "invoice_id": self.invoice_id,
            "duplicate_of": self.duplicate_of,
            "reason": self.reason,
            "details": self.details or None,
            # Every time a worker took the event up, across replays; `retries` is what counts
            # towards `retry.max_attempts` since it was received or last replayed.
            "attempts": self.generation,
            "retries": self.attempts,
            "generation": self.generation,
            "possible_duplicate": self.possible_duplicate,
            "extra_invoice_ids": self.extra_invoice_ids or None,
            "received_at": utc(self.received_at),
            "updated_at": utc(self.updated_at),
            "next_attempt_at": utc(self.next_attempt_at),
            "payload_kept": self.body is not None,
        }


@dataclass(frozen=True)
class Attempt:
    """One step in an event's history: what happened, Luminous's answer, the wait after."""

    event_id: int
    number: int
    at: float
    outcome: str
    detail: str | None = None
    delay: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": utc(self.at),
            "outcome": self.outcome,
            "detail": self.detail,
            "delay": self.delay,
        }


@dataclass(frozen=True)
class OrderKey:
    source: str
    shop: str
    order_id: str


@dataclass(frozen=True)
class OrderRecord:
    """An order's exactly-once record: its invoice, the event that made it, its total then."""

    order_id: str
    invoice_id: int | None
    event_id: int
    total: Decimal | None = None


@dataclass(frozen=True)
class OrderClaim:
    """The answer to `claim_order`.

    `invoice_id` set: the order is already invoiced (by event `event_id`).
    `acquired`: this event may send; `sent`: an earlier send's outcome is unknown, so look
    the invoice up in Luminous before sending again. `sent_age`: how many seconds ago (by
    the lease clock) that send was marked; None when unknown, which means long ago.
    `marked`: claim_order marked this send too; unset though asked, the lease has lapsed.
    """

    acquired: bool
    invoice_id: int | None = None
    event_id: int | None = None
    sent: bool = False
    sent_age: float | None = None
    marked: bool = False  # `request` was given, and the send is marked (see claim_order)


@dataclass(frozen=True)
class OrderIntent:
    """An order to claim as its event is recorded: `claim_order`'s arguments past the claim."""

    key: OrderKey
    order_name: str | None
    keys: Sequence[str]
    request: str | None  # the request to mark sent with, as `claim_order` takes it


@dataclass(frozen=True)
class SweepCursor:
    """How far a shop's sweep has looked, and who sweeps it now."""

    cursor: float | None = None  # Unix time: orders updated before it were swept
    swept_at: float | None = None  # when the last sweep ended (wall clock)
    holder: str | None = None  # the lease's owner, a label for people; None when free


@dataclass(frozen=True)
class SweepLease:
    """The right to sweep one shop; `generation` fences every write made under it."""

    source: str
    shop: str
    generation: int
    cursor: float | None  # as it was when the lease was taken


class Store(ABC):
    """Durable, deduplicated events and the order → invoice record.

    A claim (`claim`, `claim_next`) returns the event with a new `generation`; every write
    made under the claim passes it back and succeeds only while the event is still
    `processing` under that generation, so a worker that lost its claim changes nothing.
    """

    # Whether other processes (replicas) may work on its events; when not, this process's
    # worker makes every change to an event it waits for, and says so.
    shared: bool = True

    @abstractmethod
    async def migrate(self) -> None:
        """Create or upgrade the schema to `SCHEMA_VERSION`; refuse a newer one."""

    @abstractmethod
    async def schema_version(self) -> int | None:
        """The schema version on disk, or None before `migrate`."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `StoreError` unless the store answers."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def record(self, delivery: NewDelivery) -> tuple[Event, bool]:
        """Record a delivery durably; `(event, False)` when its key was seen before."""

    async def record_claimed(
        self, delivery: NewDelivery, owner: str, lease: float
    ) -> tuple[Event, bool]:
        """`record`, and a new event claimed for `owner` as `claim` would claim it.

        The SQL stores do both in one transaction. A repeat is answered as `record`
        answers it, unclaimed.
        """
        event, created = await self.record(delivery)
        if created:
            event = await self.claim(event.id, owner, lease) or event
        return event, created

    async def record_with_order(
        self, delivery: NewDelivery, owner: str, lease: float, order: OrderIntent
    ) -> tuple[Event, bool, OrderClaim | None]:
        """`record_claimed`, then `claim_order` for the new claim; the SQL stores do it all
        in one transaction. The OrderClaim is None when nothing was claimed (a repeat)."""
        event, created = await self.record_claimed(delivery, owner, lease)
        if not created or event.lease_owner != owner:
            return event, created, None
        taken = await self.claim_order(
            order.key,
            event.id,
            event.generation,
            lease,
            order.order_name,
            order.keys,
            request=order.request,
        )
        return await self.get(event.id) or event, True, taken

    @abstractmethod
    async def get(self, event_id: int) -> Event | None: ...

    @abstractmethod
    async def history(self, event_id: int) -> list[Attempt]: ...

    @abstractmethod
    async def list_events(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        order: str | None = None,
        since: float | None = None,
        flagged: bool = False,
        limit: int = 100,
        where: EventFilter | None = None,
    ) -> list[Event]:
        """Newest first; `order` matches any of the order's search keys (see `EventFilter`);
        `flagged`: only events with a duplicate flag. `where` gives every filter at once."""

    @abstractmethod
    async def count_events(self, where: EventFilter) -> dict[str, int]:
        """How many events match, by status (the limit aside)."""

    @abstractmethod
    async def known_source(self, source: str) -> bool:
        """Whether any event of `source` was ever recorded."""

    @abstractmethod
    async def claim(self, event_id: int, owner: str, lease: float) -> Event | None:
        """Take one event for processing if it is due (or its lease has lapsed)."""

    @abstractmethod
    async def claim_next(
        self, owner: str, lease: float, skip: Collection[int] = ()
    ) -> Event | None:
        """Take the oldest due event whose id is not in `skip` (the caller's own), if any."""

    @abstractmethod
    async def next_due(self) -> float | None:
        """Seconds until an unfinished event may be due (0: now); None when there is none."""

    def listener(self, wake: Callable[[], None], check_every: float) -> Listener | None:
        """What wakes this process's worker when another process makes an event due; None
        for a store that only one process works on."""
        return None

    @abstractmethod
    async def renew(self, event_id: int, generation: int, lease: float) -> bool:
        """Extend the lease on an event and on the order claim it holds; False if lost."""

    @abstractmethod
    async def still_holds(self, event_id: int, generation: int) -> bool:
        """Whether the claim still stands and its lease has not lapsed: a cheap read, made
        right before a request that must not be sent twice."""

    @abstractmethod
    async def note(
        self, event_id: int, outcome: str, detail: str | None = None, delay: float | None = None
    ) -> None:
        """Append a step to the event's history."""

    @abstractmethod
    async def finish(
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
    ) -> bool:
        """End an event skipped, dead, rejected or tagged; False if the claim was lost.

        `order_id`/`order_name` fill in an order the record did not know; `keys` are more
        search keys (a PO number, an e-mail, SKUs)."""

    @abstractmethod
    async def defer(
        self,
        event_id: int,
        generation: int,
        *,
        delay: float,
        reason: str,
        counted: bool = True,
        step: str | None = None,
    ) -> bool:
        """Put an event back as `retrying` for `delay` seconds; `counted` adds an attempt;
        `step` also writes the attempt to the history (reason and delay with it)."""

    @abstractmethod
    async def release(self, event_id: int, generation: int) -> bool:
        """Give an unfinished event back untouched (drain), keeping its status due now."""

    @abstractmethod
    async def claim_order(
        self,
        key: OrderKey,
        event_id: int,
        generation: int,
        lease: float,
        order_name: str | None = None,
        keys: Sequence[str] = (),
        request: str | None = None,
    ) -> OrderClaim:
        """Bind the event to its order and try to take the right to send its invoice.

        Refused (`acquired=False`, nothing changed) when the claim on the event was lost.
        With `request`, an order acquired with no earlier send of unknown outcome is also
        marked sent with it, as `mark_sent` would, in the same write (`marked`).
        """

    @abstractmethod
    async def mark_sent(
        self,
        key: OrderKey,
        event_id: int,
        generation: int,
        sent: bool = True,
        request: str | None = None,
    ) -> bool:
        """Record that a send is (or is no longer) of unknown outcome, before/after it;
        `request` (JSON) is kept on the event as the request about to be sent.

        Requires that the claim still stands and its lease has not lapsed; False means it
        does not, and the caller must not send: another worker may have the event now.
        """

    async def complete(
        self,
        event_id: int,
        generation: int,
        key: OrderKey,
        invoice_id: int,
        total: Decimal | None = None,
    ) -> tuple[bool, int]:
        """Atomically record the order's invoice (and its total) and end the event `created`.

        Returns (done, original event id): when the order already had an invoice the event
        is ended `created` as its duplicate, with that invoice id. The invoice is recorded
        even when the claim was lost (done False): it exists in Luminous either way.
        """
        settled, original = await self.complete_event(event_id, generation, key, invoice_id, total)
        return settled is not None, original

    @abstractmethod
    async def complete_event(
        self,
        event_id: int,
        generation: int,
        key: OrderKey,
        invoice_id: int,
        total: Decimal | None = None,
        *,
        held: bool = False,
    ) -> tuple[Event | None, int]:
        """`complete`, answering the event as it was ended (None when the claim was lost).

        `held`: only while the claim stands with its lease unlapsed, as `still_holds` says;
        otherwise nothing is written and (None, event_id) is answered.
        """

    @abstractmethod
    async def flag(
        self,
        event_id: int,
        *,
        possible_duplicate: str | None,
        extra_invoice_ids: Sequence[int] = (),
    ) -> None:
        """Set (replace) the event's duplicate flags, whoever holds it now."""

    @abstractmethod
    async def set_order(
        self, event_id: int, order_id: str, order_name: str | None, keys: Sequence[str] = ()
    ) -> None:
        """Remember which order an event is about (for listing and `--order`)."""

    @abstractmethod
    async def invoice_for(self, key: OrderKey) -> int | None:
        """The invoice an order already has, if any."""

    @abstractmethod
    async def release_order(self, key: OrderKey, event_id: int) -> None:
        """Drop this event's claim on an order that got no invoice (it ended dead)."""

    @abstractmethod
    async def order_shops(self, source: str) -> list[str]:
        """The shop parts of a source's order records."""

    @abstractmethod
    async def rescope_orders(self, source: str, old_shop: str, new_shop: str) -> tuple[int, int]:
        """Move a source's order records from one shop part to another (an upgrade's rekeying).

        Returns (moved, left): records kept under `old_shop` collided with one already under
        `new_shop`, i.e. the order was recorded, and likely invoiced, under both keys.
        """

    @abstractmethod
    async def order_events(self, source: str, shop: str, order_ids: Collection[str]) -> list[Event]:
        """Every event about these orders, oldest first, without payloads; `shop` "" matches
        every shop (order ids unique across shops)."""

    @abstractmethod
    async def order_records(
        self, source: str, shop: str, order_ids: Collection[str]
    ) -> dict[str, OrderRecord]:
        """The exactly-once records of these orders, by order id."""

    @abstractmethod
    async def claim_sweep(
        self, source: str, shop: str, owner: str, lease: float, every: float
    ) -> SweepLease | None:
        """Take a shop's sweep lease if no one holds it and its last sweep ended `every`
        seconds ago or more; None otherwise. Every claim is a new generation."""

    @abstractmethod
    async def sweep_cursor(self, source: str, shop: str) -> SweepCursor:
        """The shop's cursor and lease as they stand (all None before its first sweep)."""

    @abstractmethod
    async def renew_sweep(self, lease: SweepLease, seconds: float) -> bool:
        """Extend a sweep lease; False when it was lost (claimed again or released)."""

    @abstractmethod
    async def end_sweep(self, lease: SweepLease, cursor: float | None) -> bool:
        """Release the lease; with a `cursor`, also advance the shop's cursor to it (never
        back) and note the sweep as done. False, and nothing written, when it was lost."""

    @abstractmethod
    async def heartbeat(self) -> None:
        """Note that a worker is running now (for commands that need one)."""

    @abstractmethod
    async def heartbeat_age(self) -> float | None:
        """Seconds since a worker last noted it was running; None if none ever did."""

    @abstractmethod
    async def replay(self, event_id: int) -> Event:
        """Put a dead, rejected or dismissed event back to `received`, keeping its history."""

    @abstractmethod
    async def dismiss(self, event_id: int, reason: str) -> Event:
        """Mark a dead or rejected event as handled by hand (`dismissed`), with why."""

    @abstractmethod
    async def purge_payloads(
        self, older_than: float, statuses: Collection[str] = PURGED_BY_RETENTION
    ) -> int:
        """Drop payloads of events in `statuses` last changed before a Unix time."""

    @abstractmethod
    async def counts(self) -> dict[str, int]:
        """Number of events in each status."""

    @abstractmethod
    async def backlog(self) -> Backlog:
        """The unfinished events: how many, and the oldest one's age."""

    @abstractmethod
    async def oldest_unfinished(self) -> Event | None:
        """The unfinished event received first, if any: what the backlog waits on."""

    @abstractmethod
    async def received_by_hour(self, since: float) -> dict[int, dict[str, int]]:
        """Events received since a Unix time, by whole hours after it (0 first), then by
        their status now."""

    @abstractmethod
    async def secret(self, name: str) -> str:
        """A random secret kept in the store under `name`, made on first use; replicas
        sharing the store share it."""
