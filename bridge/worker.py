"""The worker's loop: claim due events, hold their leases, and record what each came to.

Each claim is fenced by its own generation, and an event this process already holds is never
claimed again by it. The lease outlasts one whole Luminous request (the client's deadline)
with a margin and is renewed while the work is in flight. The loop is supervised: an
unexpected error is logged and retried after a backoff, and `/healthz` fails only if the
loop itself has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from bridge.alerts import Alerts
from bridge.config import Settings
from bridge.errors import AuthError, LuminousError, RetryableError, StoreError
from bridge.invoicing import (
    Claim,
    Created,
    Ended,
    InvoiceClient,
    Invoicer,
    Lost,
    Outcome,
    Pause,
    Ready,
    Retry,
    Wait,
)
from bridge.logs import transition
from bridge.metrics import Metrics
from bridge.resolver import Resolver
from bridge.retry import RetryPolicy
from bridge.store.base import (
    CREATED,
    DEAD,
    PROCESSING,
    REJECTED,
    RETRYING,
    SKIPPED,
    TAGGED,
    Event,
    NewDelivery,
    OrderClaim,
    Store,
)
from bridge.store.listener import Listener
from bridge.wire import Parsed

log = logging.getLogger("bridge.worker")

LEASE_MARGIN = 5.0  # seconds a lease outlasts the longest request it may cover
# Kicks that may wait for each Luminous slot; more would hold a task per delivery in memory.
HANDOFF_PER_SLOT = 8
WAIT_POLL = 2.0  # seconds between reads of an awaited event in a shared store
_LOOP_BACKOFF = (0.5, 30.0)  # first and longest pause after an unexpected loop error


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
        self.metrics = metrics or Metrics()
        self.poll_interval = poll_interval
        self.probe_interval = probe_interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Three whole requests plus a margin, renewed every third of it: the lease never
        # lapses while a renewing worker may still write a request.
        self.lease = client.deadline * 3 + LEASE_MARGIN
        self.invoicer = Invoicer(
            settings,
            store,
            client,
            resolver or Resolver(client),
            self.metrics,
            lease=self.lease,
        )
        self.paused: str | None = None
        self.draining = False
        self.loop_error: str | None = None  # the last unexpected error the loop survived
        self._slots = asyncio.Semaphore(settings.config.luminous.max_concurrency)
        self._wake = asyncio.Event()
        self.alerts: Alerts | None = None  # set by the app when alerts are configured
        self.listener: Listener | None = None  # set by the app when the store has one
        self._changed: dict[int, list[asyncio.Future[Event | None]]] = {}  # waiters, by event
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._held: dict[int, Claim] = {}  # events this process holds, by id
        self._kicked = 0  # kicks waiting for a slot
        self.handoff_bound = HANDOFF_PER_SLOT * settings.config.luminous.max_concurrency

    @property
    def resolver(self) -> Resolver:
        return self.invoicer.resolver

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="bridge-worker")

    @property
    def alive(self) -> bool:
        """False once the loop has stopped other than by a drain: restart the process."""
        task = self._loop_task
        return task is not None and (not task.done() or self.draining)

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

    def kick(self, event_id: int, parsed: Parsed | None = None) -> None:
        """Process this event now, if it is due and a slot is free soon.

        `parsed` is its body as the front door parsed it, so it is not parsed again.

        At most `handoff_bound` kicks wait for a slot; past that the event waits in the
        store, where the loop claims it in turn, so a burst costs no memory per delivery.
        """
        if self.draining or self.paused or event_id in self._held:
            return
        if self._kicked >= self.handoff_bound:
            self._wake.set()
            return
        self._kicked += 1
        self._spawn(self._claim_and_process(event_id, parsed))

    async def record(
        self, delivery: NewDelivery, parsed: Parsed | None = None
    ) -> tuple[Event, bool, bool]:
        """Record a delivery; a new one is claimed in the same write when a slot is free now.

        Answers (event, created, taken): `taken` when this worker claimed the event and
        processes it in that slot, so the caller neither kicks it nor reads it again.
        """
        if self.draining or self.paused or self._slots.locked():
            event, created = await self.store.record(delivery)
            return event, created, False
        # Not locked: acquire takes the slot without yielding, so no other task can take it.
        await self._slots.acquire()
        try:
            event, created, ready, order = await self._record_claimed(delivery, parsed)
        except BaseException:
            self._slots.release()
            raise
        if not created or event.status != PROCESSING or event.lease_owner != self.owner:
            self._slots.release()
            return event, created, False
        if self.draining:  # stop() no longer waits for new work: hand the event back
            with contextlib.suppress(StoreError):
                if order is not None and order.marked and ready is not None:
                    # Nothing was sent: left marked, the next holder would wait out a
                    # send's deadline before sending.
                    key = ready.intent.key
                    await self.store.mark_sent(key, event.id, event.generation, sent=False)
                await self.store.release(event.id, event.generation)
            self._slots.release()
            return event, created, False
        claim = self._hold(event, parsed)
        if order is not None:
            claim.ready, claim.order = ready, order
        self._spawn(self._process_in_slot(claim))
        return event, created, True

    async def _record_claimed(
        self, delivery: NewDelivery, parsed: Parsed | None
    ) -> tuple[Event, bool, Ready | None, OrderClaim | None]:
        """Record and claim; with its order too when it maps and resolves from what is known."""
        ready = self.invoicer.ready(delivery, parsed) if parsed is not None else None
        if ready is not None:
            try:
                event, created, order = await self.store.record_with_order(
                    delivery, self.owner, self.lease, ready.intent
                )
                return event, created, ready, order
            except Exception:  # the order's part must not cost the delivery its record
                log.exception("recording with its order failed; recording it alone")
        event, created = await self.store.record_claimed(delivery, self.owner, self.lease)
        return event, created, None, None

    async def wait(self, event_id: int, timeout: float, known: Event | None = None) -> Event | None:
        """The event once it is finished, or its state when `timeout` runs out.

        `known` is its state as the caller just read or wrote it, so it is not read again.
        The worker wakes waiters when it is done with the event, with the event as it ended
        when it has it. Only a shared store is polled too, and rarely: another replica may
        be the one working on it.
        """
        if known is not None and (known.finished or timeout <= 0):
            return known  # nothing to wait for (`respond_within = 0` answers at once)
        deadline = time.monotonic() + timeout
        poll = WAIT_POLL if self.store.shared else None
        woken: asyncio.Future[Event | None] | None = None
        try:
            event = known
            while True:
                if woken is None or woken.done():
                    woken = asyncio.get_running_loop().create_future()
                    self._changed.setdefault(event_id, []).append(woken)
                if event is None:
                    event = await self.store.get(event_id)
                    if event is None:
                        return None
                remaining = deadline - time.monotonic()
                if event.finished or remaining <= 0:
                    return event
                await asyncio.wait((woken,), timeout=min(remaining, poll or remaining))
                # Woken with the event as it ended, or for it to be read again.
                event = woken.result() if woken.done() else None
        finally:
            self._forget(event_id, woken)

    def _forget(self, event_id: int, woken: asyncio.Future[Event | None] | None) -> None:
        waiting = self._changed.get(event_id)
        if waiting is not None and woken in waiting:
            waiting.remove(woken)
            if not waiting:
                del self._changed[event_id]

    # -- loop -------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        backoff = _LOOP_BACKOFF[0]
        while not self.draining:
            try:
                if self.paused:
                    await self._probe()
                else:
                    await self._take_next()
                backoff = _LOOP_BACKOFF[0]
                self.loop_error = None
            except StoreError as exc:
                self.loop_error = f"store unavailable: {exc}"
                log.error("store unavailable, worker waits: %s", exc)
                await asyncio.sleep(self.poll_interval)
            except Exception as exc:
                # A bug must not end polling for good: log it, back off, go on.
                self.loop_error = f"{type(exc).__name__}: {exc}"
                log.exception("worker loop error; going on in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _LOOP_BACKOFF[1])

    async def _take_next(self) -> None:
        await self._slots.acquire()
        try:
            event = await self.store.claim_next(self.owner, self.lease, skip=set(self._held))
        except BaseException:
            self._slots.release()  # else each failed claim would leak a slot
            raise
        if event is None:
            self._slots.release()
            self._wake.clear()
            idle = await self._idle_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle)
            return
        claim = self._hold(event)
        self._spawn(self._process_in_slot(claim))

    async def _idle_wait(self) -> float:
        """How long an idle loop sleeps unless woken: a poll interval, or, while a listener
        announces what other processes make due, until the next retry or lease is due."""
        if self.listener is None or not self.listener.connected:
            return self.poll_interval
        due = await self.store.next_due()
        fallback = self.settings.config.store.listen_poll_interval
        return max(self.poll_interval, min(fallback, fallback if due is None else due))

    def wake(self) -> None:
        """Look for due events now (another process made one due)."""
        self._wake.set()

    def _hold(self, event: Event, parsed: Parsed | None = None) -> Claim:
        claim = Claim(event, event.generation, parsed=parsed)
        self._held[event.id] = claim
        return claim

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

    async def _claim_and_process(self, event_id: int, parsed: Parsed | None) -> None:
        try:
            await self._slots.acquire()
        finally:
            self._kicked -= 1  # acquired or cancelled, it no longer waits
        try:
            if self.draining or event_id in self._held:
                return
            try:
                event = await self.store.claim(event_id, self.owner, self.lease)
            except StoreError as exc:  # the polling loop takes the event up later
                log.error("event=%s could not be claimed: %s", event_id, exc)
                return
            if event is not None:
                await self._process(self._hold(event, parsed))
        finally:
            self._slots.release()

    async def _process_in_slot(self, claim: Claim) -> None:
        try:
            await self._process(claim)
        finally:
            self._slots.release()

    async def _process(self, claim: Claim) -> None:
        event = claim.event
        keeper = asyncio.create_task(self._keep_lease(claim))
        started = time.monotonic()
        try:
            outcome = await self.invoicer.process(claim)
            await self._record(claim, outcome, time.monotonic() - started)
        except StoreError as exc:
            log.error(
                "event=%s store error, its lease will lapse and it retries: %s", event.id, exc
            )
        except Exception:
            log.exception("event=%s unexpected error; retrying later", event.id)
            with contextlib.suppress(StoreError):
                await self.store.defer(
                    event.id,
                    claim.generation,
                    delay=self.poll_interval * 30,
                    reason="internal error",
                )
        except asyncio.CancelledError:
            await self._give_back(claim)
            raise
        finally:
            keeper.cancel()
            self._held.pop(event.id, None)
            self._notify(event.id, claim.ended)
            self._wake.set()

    async def _give_back(self, claim: Claim) -> None:
        """The drain cut this event short: hand it back instead of holding it for a lease.

        If its invoice was being sent, the send stays marked, so whoever takes the event
        next looks the invoice up, and waits for a late answer, before sending again.
        """
        with contextlib.suppress(StoreError):
            if claim.sending:
                reason = "shutdown while sending the invoice; it is looked up before any resend"
                await self.store.defer(
                    claim.event_id, claim.generation, delay=0, reason=reason, counted=False
                )
            else:
                await self.store.release(claim.event_id, claim.generation)
        what = "while sending its invoice" if claim.sending else "before sending"
        log.info("event=%s handed back at shutdown %s", claim.event_id, what)

    async def _keep_lease(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                held = await self.store.renew(claim.event_id, claim.generation, self.lease)
            except StoreError as exc:
                log.warning("event=%s lease not renewed: %s", claim.event_id, exc)
                continue
            if not held:
                claim.lost = True  # the send guard refuses from now on
                log.warning("event=%s claim lost to another worker; stopping", claim.event_id)
                return

    def _notify(self, event_id: int, ended: Event | None = None) -> None:
        """Wake whoever waits for this event, with the event as it ended if it is known."""
        for woken in self._changed.pop(event_id, ()):
            if not woken.done():
                woken.set_result(ended)

    # -- recording outcomes -----------------------------------------------------

    async def _record(self, claim: Claim, outcome: Outcome, seconds: float) -> None:
        event = claim.event
        if isinstance(outcome, Created):
            await self._complete(claim, outcome, seconds)
        elif isinstance(outcome, Ended):
            await self._end(claim, outcome, seconds)
        elif isinstance(outcome, Retry):
            await self._retry(claim, outcome.error, outcome.minimum, seconds)
        elif isinstance(outcome, Wait):
            if await self.store.defer(
                event.id,
                claim.generation,
                delay=outcome.delay,
                reason=outcome.reason,
                counted=False,
                step="waiting",
            ):
                transition(
                    log,
                    event,
                    RETRYING,
                    seconds=seconds,
                    retry_in=round(outcome.delay, 1),
                    reason=outcome.reason,
                )
        elif isinstance(outcome, Pause):
            self.paused = (
                f"Luminous refuses the API token ({outcome.error.status}): {outcome.error}"
            )
            log.error("work paused: %s", self.paused)
            await self.store.defer(
                event.id,
                claim.generation,
                delay=self.probe_interval,
                reason=self.paused,
                counted=False,
                step="paused",
            )
        elif isinstance(outcome, Lost):
            self.metrics.outcomes.labels(event.source, "lost_claim").inc()
            log.warning(
                "event=%s source=%s left to its new holder: %s",
                event.id,
                event.source,
                outcome.reason,
            )

    async def _complete(self, claim: Claim, outcome: Created, seconds: float) -> None:
        event = claim.event
        settled, original = await self.store.complete_event(
            event.id,
            claim.generation,
            outcome.key,
            outcome.invoice_id,
            outcome.total,
            held=outcome.sent,
        )
        if settled is None:
            if outcome.sent:  # the claim was lost before the answer was recorded
                await self.invoicer.sent_late(claim, outcome.key, outcome.invoice_id)
                lost = f"invoice {outcome.invoice_id} was created after the claim was lost"
                await self._record(claim, Lost(lost), seconds)
            return
        claim.ended = settled
        kind = "created" if original == event.id else "duplicate"
        self.metrics.outcomes.labels(event.source, kind).inc()
        if kind == "duplicate" or outcome.how == "existing":
            self.metrics.duplicates.labels(event.source, "order").inc()
        else:
            self.metrics.invoices.labels(event.source).inc()
        transition(
            log,
            settled,
            CREATED,
            seconds=seconds,
            invoice_id=outcome.invoice_id,
            how=outcome.how,
            duplicate_of=None if original == event.id else original,
        )
        if settled.possible_duplicate:
            try:
                await self.invoicer.confirm(settled, outcome.key)
            except LuminousError as exc:  # it stays flagged; reconcile reports it too
                log.warning("event=%s possible duplicate not checked: %s", event.id, exc)

    async def _end(self, claim: Claim, outcome: Ended, seconds: float) -> None:
        event = claim.event
        done = await self.store.finish(
            event.id,
            claim.generation,
            outcome.status,
            reason=outcome.reason,
            details=outcome.details,
            invoice_id=outcome.invoice_id,
            order_id=outcome.order_id,
            order_name=outcome.order_name,
            keys=outcome.keys,
        )
        if not done:
            return
        self.metrics.outcomes.labels(event.source, outcome.status).inc()
        level = logging.INFO if outcome.status in (SKIPPED, TAGGED) else logging.WARNING
        transition(
            log,
            event,
            outcome.status,
            seconds=seconds,
            invoice_id=outcome.invoice_id,
            level=level,
            order=event.order_ref or outcome.order_name or outcome.order_id,
            reason=outcome.reason,
        )
        if self.alerts is not None and outcome.status in (DEAD, REJECTED):
            self.alerts.note(event, outcome.status, outcome.reason)

    async def _retry(
        self, claim: Claim, exc: RetryableError, minimum: float, seconds: float
    ) -> None:
        event = claim.event
        attempts = event.attempts + 1
        age = time.time() - (event.started_at or event.received_at)
        if self.policy.gives_up(attempts, age):
            reason = f"gave up after {attempts} attempts over {age / 3600:.1f} h: {exc}"
            await self._end(claim, Ended(DEAD, reason), seconds)
            return
        floor = min(minimum, self.policy.max_delay)
        delay = max(floor, self.policy.delay(attempts, exc.retry_after))
        if not await self.store.defer(
            event.id, claim.generation, delay=delay, reason=str(exc), step="retry"
        ):
            return
        self.metrics.outcomes.labels(event.source, "retrying").inc()
        transition(
            log,
            event,
            RETRYING,
            seconds=seconds,
            level=logging.WARNING,
            attempt=attempts,
            retry_in=round(delay, 1),
            reason=str(exc),
        )
