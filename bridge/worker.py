"""The worker: map, check, and create each recorded event's invoice, exactly once.

Events are claimed with a lease that outlasts the Luminous client's timeout and is renewed
while work is in flight, so no second worker sends while the first still may. Before
sending, the event claims its order; after a send whose outcome is unknown (a timeout, a
dropped connection, a 5xx) the next attempt looks the invoice up in Luminous and adopts it
instead of sending again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from typing import Protocol

from bridge.config import Settings, Source
from bridge.errors import (
    AuthError,
    InvoiceError,
    LuminousError,
    MappingError,
    PermanentError,
    RetryableError,
    StoreError,
    UnknownOutcome,
)
from bridge.invoice import Invoice, InvoiceRequest, request_total
from bridge.mapping import (
    Delivery,
    Draft,
    InvoiceOptions,
    Skip,
    Tag,
    check_currency,
    reconcile_totals,
)
from bridge.metrics import Metrics
from bridge.resolver import CatalogClient, ResolutionError, Resolver
from bridge.retry import RetryPolicy
from bridge.store.base import DEAD, REJECTED, SKIPPED, TAGGED, Event, OrderKey, Store
from bridge.wire import MalformedJSON, loads

log = logging.getLogger("bridge.worker")

CONTENDED_DELAY = 2.0  # another event of the same order holds the claim: look again soon
UNKNOWN_OUTCOME_DELAY = 5.0  # let a slow Luminous finish before looking the invoice up


class InvoiceClient(CatalogClient, Protocol):
    """What the worker needs from Luminous (see `bridge.luminous.LuminousClient`)."""

    async def create_invoice(self, request: InvoiceRequest) -> Invoice: ...

    async def add_invoice_tags(self, invoice_id: int, tags: list[str]) -> list[str]: ...

    async def find_invoices(self, *, customer_po_number: str) -> list[Invoice]: ...

    async def find_invoices_by_custom_field(self, label: str, value: str) -> list[Invoice]: ...

    async def check_token(self) -> None: ...


class Worker:
    """Processes events: the ones the front door hands over, then anything due in the store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: InvoiceClient,
        *,
        policy: RetryPolicy | None = None,
        resolver: Resolver | None = None,
        metrics: Metrics | None = None,
        poll_interval: float = 1.0,
        probe_interval: float = 15.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.policy = policy or RetryPolicy.from_config(settings.config.retry)
        self.resolver = resolver or Resolver(client)
        self.metrics = metrics or Metrics()
        self.poll_interval = poll_interval
        self.probe_interval = probe_interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Outlasts any one Luminous request (and is renewed while work is in flight), so no
        # second worker sends while this one still may.
        self.lease = settings.config.luminous.timeout * 3 + 5
        self.paused: str | None = None
        self.draining = False
        self._slots = asyncio.Semaphore(settings.config.luminous.max_concurrency)
        self._wake = asyncio.Event()
        self._changed: dict[int, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._sending: set[int] = set()  # events whose POST /invoices is in flight

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="bridge-worker")

    async def stop(self, deadline: float) -> None:
        """Drain: take nothing new, give in-flight work `deadline` seconds, release the rest."""
        self.draining = True
        self._wake.set()
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=deadline)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def kick(self, event_id: int) -> None:
        """Process this event now, if it is due and a slot is free soon."""
        if self.draining or self.paused:
            return
        self._spawn(self._claim_and_process(event_id))

    async def wait(self, event_id: int, timeout: float) -> Event | None:
        """The event once it is finished, or its state when `timeout` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            changed = self._changed.setdefault(event_id, asyncio.Event())
            event = await self.store.get(event_id)
            remaining = deadline - time.monotonic()
            if event is None or event.finished or remaining <= 0:
                self._changed.pop(event_id, None)
                return event
            with contextlib.suppress(TimeoutError):
                # Poll too: another replica may be the one working on it.
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, 0.5))
            changed.clear()

    # -- loop -------------------------------------------------------------------

    def _spawn(self, work: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while not self.draining:
            try:
                if self.paused:
                    await self._probe()
                    continue
                await self._slots.acquire()
                try:
                    event = await self.store.claim_next(self.owner, self.lease)
                except BaseException:
                    self._slots.release()  # else each failed claim would leak a slot
                    raise
                if event is None:
                    self._slots.release()
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
                    continue
                self._spawn(self._process_in_slot(event))
            except StoreError as exc:
                log.error("store unavailable, worker waits: %s", exc)
                await asyncio.sleep(self.poll_interval)

    async def _probe(self) -> None:
        await asyncio.sleep(self.probe_interval)
        try:
            await self.client.check_token()
        except AuthError as exc:
            log.warning("Luminous still refuses the token: %s", exc)
            return
        except LuminousError as exc:
            log.info("Luminous unreachable while paused: %s", exc)
            return
        log.info("Luminous accepts the token again; resuming work")
        self.paused = None

    async def _claim_and_process(self, event_id: int) -> None:
        async with self._slots:
            if self.draining:  # waited for a slot while the drain began
                return
            try:
                event = await self.store.claim(event_id, self.owner, self.lease)
            except StoreError as exc:  # the polling loop takes the event up later
                log.error("event=%s could not be claimed: %s", event_id, exc)
                return
            if event is not None:
                await self._process(event)

    async def _process_in_slot(self, event: Event) -> None:
        try:
            await self._process(event)
        finally:
            self._slots.release()

    async def _process(self, event: Event) -> None:
        keeper = asyncio.create_task(self._keep_lease(event.id, event.generation))
        try:
            await self._handle(event)
        except StoreError as exc:
            log.error(
                "event=%s store error, its lease will lapse and it retries: %s", event.id, exc
            )
        except Exception:
            log.exception("event=%s unexpected error; retrying later", event.id)
            with contextlib.suppress(StoreError):
                await self.store.defer(
                    event.id,
                    event.generation,
                    delay=self.poll_interval * 30,
                    reason="internal error",
                )
        except asyncio.CancelledError:
            await self._give_back(event)
            raise
        finally:
            keeper.cancel()
            self._sending.discard(event.id)
            self._notify(event.id)
            self._wake.set()

    async def _give_back(self, event: Event) -> None:
        """The drain cut this event short: hand it back instead of holding it for a lease.

        If its invoice was being sent, that send may still land after we hung up, so it is
        due only once a send could have landed (the wait a timeout gets); then it looks the
        invoice up first. Otherwise it is due again at once.
        """
        delay = 0.0
        with contextlib.suppress(StoreError):
            if event.id in self._sending:
                delay = self.settings.config.luminous.timeout + UNKNOWN_OUTCOME_DELAY
                reason = "shutdown while sending the invoice; it is looked up before any resend"
                await self.store.defer(
                    event.id, event.generation, delay=delay, reason=reason, counted=False
                )
            else:
                await self.store.release(event.id, event.generation)
        log.info("event=%s handed back at shutdown, due in %.0fs", event.id, delay)

    async def _keep_lease(self, event_id: int, generation: int) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(StoreError):
                await self.store.renew(event_id, generation, self.lease)

    def _notify(self, event_id: int) -> None:
        changed = self._changed.get(event_id)
        if changed:
            changed.set()

    # -- one event --------------------------------------------------------------

    async def _handle(self, event: Event) -> None:
        source = self.settings.sources.get(event.source)
        if source is None:
            await self._end(event, DEAD, f"source {event.source!r} is no longer configured")
            return
        known_topics = (*source.topics, *source.options.tag_topics)
        if event.topic and source.topics and event.topic not in known_topics:
            topics = ", ".join(known_topics) or "none"
            await self._end(
                event, SKIPPED, f"topic {event.topic} does not create invoices ({topics} do)"
            )
            return
        result = await self._map(event, source)
        if isinstance(result, Tag):
            await self._tag(event, result)
        elif isinstance(result, Draft):
            await self._invoice(event, source, result)

    async def _map(self, event: Event, source: Source) -> Draft | Tag | None:
        if event.body is None:
            await self._end(event, DEAD, "the payload was purged; nothing to map")
            return None
        try:
            payload = loads(event.body)
            result = source.mapping.map(
                Delivery(payload, event.headers, event.topic, event.shop or None), source.options
            )
        except MalformedJSON as exc:
            await self._end(event, REJECTED, f"payload is not JSON: {exc}")
            return None
        except MappingError as exc:
            details = [{"field": field, "problem": problem} for field, problem in exc.details]
            await self._end(event, REJECTED, exc.message, details)
            return None
        except Exception as exc:  # a bug in a mapping must not stall the event forever
            log.exception("event=%s mapping %s raised", event.id, source.mapping.name)
            reason = f"mapping {source.mapping.name} failed: {type(exc).__name__}: {exc}"
            await self._end(event, DEAD, reason)
            return None
        if isinstance(result, Skip):
            await self._end(event, SKIPPED, result.reason)
            return None
        if isinstance(result, Tag):
            return result
        try:
            check_currency(result, source.options)
            reconcile_totals(result)
        except InvoiceError as exc:
            details = [{"field": field, "problem": problem} for field, problem in exc.details]
            await self._end(event, DEAD, str(exc), details)
            return None
        return result

    async def _invoice(self, event: Event, source: Source, draft: Draft) -> None:
        key = OrderKey(event.source, event.shop, draft.order_id)
        claim = await self.store.claim_order(
            key, event.id, event.generation, self.lease, draft.order_name
        )
        event = dataclasses.replace(event, order_id=draft.order_id, order_name=draft.order_name)
        if claim.invoice_id is not None:
            await self._complete(event, key, claim.invoice_id, draft)
            return
        if not claim.acquired:
            await self.store.defer(
                event.id,
                event.generation,
                delay=CONTENDED_DELAY,
                reason=f"order is being invoiced by event {claim.event_id}",
                counted=False,
            )
            return
        unknown_before = claim.sent
        sending = False
        try:
            if unknown_before:
                found = await self._find_existing(draft, source.options)
                if found is not None:
                    await self.store.note(
                        event.id, "adopted", f"found invoice {found.id} in Luminous"
                    )
                    await self._complete(event, key, found.id, draft)
                    return
            request = await self.resolver.resolve(draft, source.options)
            label = source.options.invoice_custom_field
            if label:
                fields = {**(request.custom_fields or {}), label: draft.order_id}
                request = request.model_copy(update={"custom_fields": fields})
            if not await self.store.mark_sent(key, event.id, event.generation):
                # Our lease lapsed (a stall longer than the lease): the event is another
                # worker's now, and only it may send.
                log.warning("event=%s lease lost before sending; leaving it", event.id)
                return
            sending = True
            self._sending.add(event.id)  # until `_process` ends: a drain must know
            invoice = await self.client.create_invoice(request)
        except ResolutionError as exc:
            if not unknown_before:
                await self.store.release_order(key, event.id)
            await self._end(event, DEAD, str(exc))
            return
        except LuminousError as exc:
            if sending and not isinstance(exc, UnknownOutcome):
                await self.store.mark_sent(key, event.id, event.generation, sent=False)
            refused = isinstance(exc, PermanentError) and not isinstance(exc, AuthError)
            if refused and not unknown_before:
                await self.store.release_order(key, event.id)
            await self._failed(event, exc)
            return
        await self._complete(event, key, invoice.id, draft)

    async def _tag(self, event: Event, tag: Tag) -> None:
        """Tag the order's invoice; wait (retrying) while the invoice does not exist yet."""
        key = OrderKey(event.source, event.shop, tag.order_id)
        await self.store.set_order(event.id, tag.order_id, tag.order_name)
        invoice_id = await self.store.invoice_for(key)
        if invoice_id is None:
            order = tag.order_name or tag.order_id
            waiting = RetryableError(f"order {order} has no invoice yet to tag {tag.tag!r}")
            await self._retry(event, waiting)
            return
        try:
            await self.client.add_invoice_tags(invoice_id, [tag.tag])
        except LuminousError as exc:
            await self._failed(event, exc)
            return
        reason = f"invoice {invoice_id} tagged {tag.tag!r} ({tag.reason})"
        await self.store.finish(
            event.id, event.generation, TAGGED, reason=reason, invoice_id=invoice_id
        )
        self.metrics.outcomes.labels(event.source, TAGGED).inc()
        log.info("event=%s source=%s %s", event.id, event.source, reason)

    async def _failed(self, event: Event, exc: LuminousError) -> None:
        """Luminous said no, or nothing: pause, retry or end the event, as the error says."""
        self.metrics.luminous_failures.labels(_failure_kind(exc)).inc()
        if isinstance(exc, AuthError):
            self.paused = f"Luminous refuses the API token ({exc.status}): {exc}"
            log.error("work paused: %s", self.paused)
            await self.store.note(event.id, "paused", str(exc))
            await self.store.defer(
                event.id,
                event.generation,
                delay=self.probe_interval,
                reason=self.paused,
                counted=False,
            )
        elif isinstance(exc, UnknownOutcome):
            await self._retry(event, exc, minimum=UNKNOWN_OUTCOME_DELAY)
        elif isinstance(exc, RetryableError):
            await self._retry(event, exc)
        else:
            await self._end(event, DEAD, str(exc))  # it says what Luminous refused, and why

    async def _find_existing(self, draft: Draft, options: InvoiceOptions) -> Invoice | None:
        """The invoice an earlier send may have created: same order reference, date, total."""
        label = options.invoice_custom_field
        if label:
            candidates = await self.client.find_invoices_by_custom_field(label, draft.order_id)
        elif draft.request.customer_po_number:
            po_number = draft.request.customer_po_number
            candidates = await self.client.find_invoices(customer_po_number=po_number)
        else:
            return None
        total = request_total(draft.request)
        for invoice in candidates:
            if invoice.order_day == draft.request.order_date and invoice.total == total:
                return invoice
        return None

    async def _retry(self, event: Event, exc: RetryableError, *, minimum: float = 0.0) -> None:
        attempts = event.attempts + 1
        age = time.time() - (event.started_at or event.received_at)
        if self.policy.gives_up(attempts, age):
            await self._end(
                event, DEAD, f"gave up after {attempts} attempts over {age / 3600:.1f} h: {exc}"
            )
            return
        floor = min(minimum, self.policy.max_delay)
        delay = max(floor, self.policy.delay(attempts, exc.retry_after))
        await self.store.note(event.id, "retry", str(exc), delay)
        await self.store.defer(event.id, event.generation, delay=delay, reason=str(exc))
        self.metrics.outcomes.labels(event.source, "retrying").inc()
        log.warning(
            "event=%s order=%s attempt=%s retry_in=%.1fs: %s",
            event.id,
            event.order_name or event.order_id,
            attempts,
            delay,
            exc,
        )

    async def _complete(self, event: Event, key: OrderKey, invoice_id: int, draft: Draft) -> None:
        done, original = await self.store.complete(event.id, event.generation, key, invoice_id)
        if done:
            outcome = "created" if original == event.id else "duplicate"
            self.metrics.outcomes.labels(event.source, outcome).inc()
            log.info(
                "event=%s source=%s order=%s invoice=%s%s",
                event.id,
                event.source,
                draft.order_name or draft.order_id,
                invoice_id,
                "" if original == event.id else f" duplicate_of={original}",
            )

    async def _end(
        self, event: Event, status: str, reason: str, details: list[dict[str, str]] | None = None
    ) -> None:
        await self.store.finish(event.id, event.generation, status, reason=reason, details=details)
        self.metrics.outcomes.labels(event.source, status).inc()
        level = logging.INFO if status == SKIPPED else logging.WARNING
        log.log(
            level, "event=%s source=%s status=%s reason=%s", event.id, event.source, status, reason
        )


def _failure_kind(exc: LuminousError) -> str:
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, UnknownOutcome):
        return "unknown_outcome"
    if isinstance(exc, RetryableError):
        return "retryable"
    return "permanent"
