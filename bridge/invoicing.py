"""One event's way to its invoice: map, check, resolve, send, and say what came of it.

`Invoicer.process(claim)` does everything that must happen in order while the claim is held
(binding the order, marking the send, the send itself) and returns an `Outcome`; the worker's
loop records the outcome. Luminous has no conditional create, so what fences a send is the
claim's generation, checked again just before the request is written. A send that still
lands after the claim was lost (a process paused between that check and the socket) is
flagged on the event as a possible duplicate, and the next lookup confirms or clears it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from bridge.config import Settings, Source
from bridge.errors import (
    AuthError,
    ForbiddenError,
    InvoiceError,
    LeaseLost,
    LuminousError,
    MappingError,
    PermanentError,
    RetryableError,
    UnknownOutcome,
)
from bridge.invoice import Invoice, InvoiceRequest, request_total
from bridge.luminous import Guard
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
from bridge.resolver import CatalogClient, Known, ResolutionError, Resolver
from bridge.shops import order_reference, order_scope, scoped_alternate_ids
from bridge.store.base import (
    DEAD,
    REJECTED,
    SKIPPED,
    TAGGED,
    Event,
    NewDelivery,
    OrderClaim,
    OrderIntent,
    OrderKey,
    Store,
)
from bridge.wire import MalformedJSON, Parsed, dumps, parse_body

log = logging.getLogger("bridge.invoicing")

CONTENDED_DELAY = 2.0  # another event of the same order holds the claim: look again soon
LOOKUP_INTERVAL = 15.0  # while an earlier send may still land, look it up this often


class InvoiceClient(CatalogClient, Protocol):
    """What invoicing needs from Luminous (see `bridge.luminous.LuminousClient`)."""

    deadline: float

    async def create_invoice(
        self, request: InvoiceRequest, *, guard: Guard | None = None
    ) -> Invoice: ...

    async def add_invoice_tags(self, invoice_id: int, tags: list[str]) -> list[str]: ...

    async def find_invoices(self, *, customer_po_number: str) -> list[Invoice]: ...

    async def find_invoices_by_custom_field(self, label: str, value: str) -> list[Invoice]: ...

    async def check_token(self) -> None: ...


@dataclass
class Claim:
    """An event this process holds, under the generation its claim was given."""

    event: Event
    generation: int
    lost: bool = False  # set when a renewal finds the claim gone
    sending: bool = False  # a POST /invoices may be on the wire
    parsed: Parsed | None = None  # the body as the front door parsed it, if it did
    ended: Event | None = None  # the event as its outcome was recorded, when that says
    # Mapped and resolved on the front door, and its order claimed as the event was recorded.
    ready: Ready | None = None
    order: OrderClaim | None = None

    @property
    def event_id(self) -> int:
        return self.event.id


@dataclass(frozen=True)
class Ready:
    """A delivery mapped and resolved from what is known, before it is recorded."""

    draft: Draft
    known: Known
    request: InvoiceRequest
    intent: OrderIntent  # its order, to claim (and its send to mark) as it is recorded


# -- outcomes: what the loop records once `process` is done --------------------------------


@dataclass(frozen=True)
class Created:
    """The order has its invoice (created now, adopted, or the one it already had)."""

    key: OrderKey
    invoice_id: int
    how: str = "created"  # created | adopted | existing
    total: Decimal | None = None  # the order's total as invoiced, kept for reconcile
    # Sent now under the claim: recorded only while its lease stands, else it landed late.
    sent: bool = False


@dataclass(frozen=True)
class Ended:
    """Finished without a new invoice: skipped, dead, rejected or tagged.

    `order_id`, `order_name` and `keys` are what the mapping learnt of the order, so that an
    event ended before its order was claimed can still be found by it.
    """

    status: str
    reason: str
    details: list[dict[str, str]] | None = None
    invoice_id: int | None = None
    order_id: str | None = None
    order_name: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retry:
    """A failure worth trying again; the retry policy decides when, or gives up."""

    error: RetryableError
    minimum: float = 0.0


@dataclass(frozen=True)
class Wait:
    """Not a failure: look again in `delay` seconds, without spending an attempt."""

    delay: float
    reason: str


@dataclass(frozen=True)
class Pause:
    """Luminous refuses our token: all work pauses until it is accepted again."""

    error: AuthError


@dataclass(frozen=True)
class Lost:
    """The claim is gone: another worker has the event, and this one writes nothing."""

    reason: str


Outcome = Created | Ended | Retry | Wait | Pause | Lost


@dataclass(frozen=True)
class _Candidates:
    """Luminous's invoices that are provably this order's, lowest id first."""

    invoices: list[Invoice] = field(default_factory=list)

    @property
    def first(self) -> Invoice | None:
        return self.invoices[0] if self.invoices else None

    @property
    def extra_ids(self) -> list[int]:
        return [invoice.id for invoice in self.invoices[1:]]


def order_key(source: Source, event: Event, order_id: str) -> OrderKey:
    """The (source, shop, order id) that identifies an order for exactly-once."""
    return OrderKey(event.source, order_scope(source, event.shop), order_id)


def draft_keys(draft: Draft) -> tuple[str, ...]:
    """What a person may search the order by, beyond its id and name: PO number, e-mail, SKUs."""
    request = draft.request
    email = draft.customer.email if draft.customer else None
    skus = (item.sku for item in request.items)
    return tuple(key for key in (request.customer_po_number, email, *skus) if key)


def _details(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"field": name, "problem": problem} for name, problem in pairs]


def _lines(request: InvoiceRequest) -> Counter[tuple[str, str]]:
    return Counter((str(item.product_id or item.sku), str(item.quantity)) for item in request.items)


def _invoice_lines(invoice: Invoice) -> Counter[tuple[str, str]]:
    return Counter(
        (str(line.product_id or line.sku), str(line.qty)) for line in invoice.items or []
    )


def _alternate_ids_agree(invoice: Invoice, request: InvoiceRequest, draft: Draft) -> bool:
    # Where Luminous answers the ids ("shopify:<order id>", "woocommerce:<site>/<order id>"),
    # two shops' orders #1001 of the same day, total and lines still differ by them. An
    # invoice sent before the ids named the site carries the mapping's own: no proof either way.
    answered = sorted(map(str, (invoice.model_extra or {}).get("alternate_ids") or []))
    if not answered or not request.alternate_ids:
        return True
    return answered in (sorted(request.alternate_ids), sorted(draft.request.alternate_ids or []))


class Invoicer:
    """Turns one claimed event into its outcome."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: InvoiceClient,
        resolver: Resolver,
        metrics: Metrics,
        *,
        lease: float,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.resolver = resolver
        self.metrics = metrics
        self.lease = lease
        self.unknown_outcome_wait = settings.config.luminous.unknown_outcome_wait

    async def process(self, claim: Claim) -> Outcome:
        event = claim.event
        source = self.settings.sources.get(event.source)
        if source is None:
            return Ended(DEAD, f"source {event.source!r} is no longer configured")
        known_topics = (*source.topics, *source.options.tag_topics)
        if event.topic and source.topics and event.topic not in known_topics:
            topics = ", ".join(known_topics) or "none"
            return Ended(SKIPPED, f"topic {event.topic} does not create invoices ({topics} do)")
        if claim.ready is not None and claim.order is not None:
            return await self._invoice(claim, source, claim.ready.draft)
        result = await self._map(event, source, claim.parsed)
        if isinstance(result, Draft):
            return await self._invoice(claim, source, result)
        if isinstance(result, Tag):
            return await self._tag(claim, source, result)
        return result

    def ready(self, delivery: NewDelivery, parsed: Parsed) -> Ready | None:
        """The delivery's invoice request, when it maps to a draft and resolves from what is
        known; None for anything else (a skip, a tag, a refusal, a lookup, a mapping's bug),
        which the worker then maps and says as ever. Never awaits or raises."""
        source = self.settings.sources.get(delivery.source)
        if source is None or (
            delivery.topic and source.topics and delivery.topic not in source.topics
        ):
            return None
        options = source.options
        try:
            draft = source.mapping.map(
                Delivery(parsed.value, delivery.headers, delivery.topic, delivery.shop or None),
                options,
            )
            if not isinstance(draft, Draft):
                return None
            check_currency(draft, options)
            reconcile_totals(draft)
        except Exception:  # the worker maps it again, and says what went wrong
            return None
        namespace = f"{delivery.source}/{delivery.shop}"
        known = self.resolver.known(draft, options, namespace=namespace)
        if known is None:
            return None
        key = OrderKey(delivery.source, order_scope(source, delivery.shop), draft.order_id)
        request = self._for_order(known.request, key, draft, options)
        intent = OrderIntent(key, draft.order_name, draft_keys(draft), _wire(request))
        return Ready(draft, known, request, intent)

    # -- map and check ------------------------------------------------------------

    async def _map(
        self, event: Event, source: Source, parsed: Parsed | None = None
    ) -> Draft | Tag | Ended:
        if event.body is None:
            return Ended(DEAD, "the payload was purged; nothing to map")
        try:
            payload = (parsed or await parse_body(event.body)).value
            result = source.mapping.map(
                Delivery(payload, event.headers, event.topic, event.shop or None), source.options
            )
        except MalformedJSON as exc:
            return Ended(REJECTED, f"payload is not JSON: {exc}")
        except MappingError as exc:
            return Ended(REJECTED, exc.message, _details(exc.details))
        except Exception as exc:  # a bug in a mapping must not stall the event forever
            log.exception("event=%s mapping %s raised", event.id, source.mapping.name)
            return Ended(DEAD, f"mapping {source.mapping.name} failed: {type(exc).__name__}: {exc}")
        if isinstance(result, Skip):
            return Ended(SKIPPED, result.reason, order_id=result.order_id)
        if isinstance(result, Tag):
            return result
        try:
            check_currency(result, source.options)
            reconcile_totals(result)
        except InvoiceError as exc:
            return Ended(
                DEAD,
                str(exc),
                _details(exc.details),
                order_id=result.order_id,
                order_name=result.order_name,
                keys=draft_keys(result),
            )
        return result

    # -- the invoice --------------------------------------------------------------

    async def _invoice(self, claim: Claim, source: Source, draft: Draft) -> Outcome:
        event = claim.event
        key = order_key(source, event, draft.order_id)
        options = source.options
        namespace = f"{event.source}/{event.shop}"
        known: Known | None
        ready: InvoiceRequest | None
        if claim.ready is not None and claim.order is not None:  # claimed as it was recorded
            known, ready, order = claim.ready.known, claim.ready.request, claim.order
        else:
            # Resolved from what is known, the request is marked sent as the order is claimed.
            known = self.resolver.known(draft, options, namespace=namespace)
            ready = None if known is None else self._for_order(known.request, key, draft, options)
            order = await self.store.claim_order(
                key,
                event.id,
                claim.generation,
                self.lease,
                draft.order_name,
                draft_keys(draft),
                request=None if ready is None else _wire(ready),
            )
        if order.invoice_id is not None:
            return Created(key, order.invoice_id, "existing")
        if not order.acquired:
            if order.event_id is None or order.event_id == event.id:
                return Lost("the claim on the event was taken over")
            return Wait(CONTENDED_DELAY, f"order is being invoiced by event {order.event_id}")
        if known is not None:
            self.resolver.hits(known)
        if ready is not None and not order.sent and not order.marked:
            return Lost("the claim lapsed before sending")
        if ready is None:
            try:
                resolved = await self.resolver.resolve(draft, options, namespace=namespace)
            except ResolutionError as exc:
                if not order.sent:
                    await self.store.release_order(key, event.id)
                return Ended(DEAD, str(exc))
            except LuminousError as exc:
                return await self._luminous_failed(exc)
            ready = self._for_order(resolved, key, draft, options)
        request = ready
        if order.sent:
            # An earlier send's outcome is unknown: it may have landed, or may still.
            try:
                found = await self._candidates(draft, request, options)
            except LuminousError as exc:
                return await self._luminous_failed(exc)
            if found.first is not None:
                await self._adopted(claim, key, found)
                return Created(key, found.first.id, "adopted", draft.expected_total)
            age = order.sent_age
            if age is not None and age < self.unknown_outcome_wait:
                remaining = self.unknown_outcome_wait - age
                return Wait(
                    min(remaining, LOOKUP_INTERVAL),
                    f"an earlier send may still land; not found yet, looking again "
                    f"(sending again in {remaining:.0f} s if it never does)",
                )
        return await self._send(
            claim, key, draft, request, unknown_before=order.sent, marked=order.marked
        )

    @staticmethod
    def _for_order(
        request: InvoiceRequest, key: OrderKey, draft: Draft, options: InvoiceOptions
    ) -> InvoiceRequest:
        """The resolved request with the order's own reference and scoped alternate ids."""
        label = options.invoice_custom_field
        if label:
            fields = {
                **(request.custom_fields or {}),
                label: order_reference(key.shop, draft.order_id),
            }
            request = request.model_copy(update={"custom_fields": fields})
        if key.shop and request.alternate_ids:
            scoped = scoped_alternate_ids(request.alternate_ids, key.shop, draft.order_id)
            request = request.model_copy(update={"alternate_ids": scoped})
        return request

    async def _send(
        self,
        claim: Claim,
        key: OrderKey,
        draft: Draft,
        request: InvoiceRequest,
        *,
        unknown_before: bool,
        marked: bool = False,
    ) -> Outcome:
        """Send the request; `marked` when claim_order already marked the send."""
        event = claim.event
        if not marked and not await self.store.mark_sent(
            key, event.id, claim.generation, request=_wire(request)
        ):
            return Lost("the claim lapsed before sending")
        claim.sending = True

        async def guard() -> None:
            if claim.lost or not await self.store.still_holds(event.id, claim.generation):
                raise LeaseLost(f"event {event.id} is no longer ours to send")

        try:
            invoice = await self.client.create_invoice(request, guard=guard)
        except LeaseLost as exc:
            return Lost(str(exc))  # nothing was written; the send stays marked, so it is looked up
        except LuminousError as exc:
            if isinstance(exc, UnknownOutcome):
                if not await self.store.still_holds(event.id, claim.generation):
                    await self.sent_late(claim, key, None)
                    return Lost("the claim was lost while the send's outcome was unknown")
            else:
                await self.store.mark_sent(key, event.id, claim.generation, sent=False)
                refused = isinstance(exc, PermanentError) and not isinstance(
                    exc, AuthError | ForbiddenError
                )
                if refused and not unknown_before:
                    await self.store.release_order(key, event.id)
            return await self._luminous_failed(exc)
        # Whether the claim still held when the answer came is asked as it is recorded.
        return Created(key, invoice.id, total=draft.expected_total, sent=True)

    async def _luminous_failed(self, exc: LuminousError) -> Outcome:
        """Luminous said no, or nothing: pause, retry or end the event, as the error says."""
        self.metrics.luminous_failures.labels(failure_kind(exc)).inc()
        if isinstance(exc, ForbiddenError):
            # One endpoint forbidden: the token check tells the token's fault from the request's.
            try:
                await self.client.check_token()
            except AuthError as refused:
                return Pause(refused)
            except LuminousError:
                return Retry(RetryableError(str(exc), status=exc.status, body=exc.body))
            return Ended(DEAD, str(exc))
        if isinstance(exc, AuthError):
            return Pause(exc)
        if isinstance(exc, UnknownOutcome):
            return Retry(exc, minimum=self.client.deadline)
        if isinstance(exc, RetryableError):
            return Retry(exc)
        return Ended(DEAD, str(exc))  # it says what Luminous refused, and why

    # -- unknown outcomes and doubles ---------------------------------------------

    async def _candidates(
        self, draft: Draft, request: InvoiceRequest, options: InvoiceOptions
    ) -> _Candidates:
        """Luminous's invoices that are provably this order's.

        By the order id in `invoice_custom_field` when it is set; otherwise the same PO
        number, company, order date, total and lines (SKUs and quantities): a PO number
        alone can be another shop's order of the same name.
        """
        label = options.invoice_custom_field
        value = (request.custom_fields or {}).get(label) if label else None
        if label and value is not None:
            # Invoices sent before the field named the shop hold the bare order id.
            values = list(dict.fromkeys((str(value), draft.order_id)))
            proven = []
            for wanted in values:
                found = await self.client.find_invoices_by_custom_field(label, wanted)
                # The filter is trusted when the answer leaves the field out.
                proven += [
                    invoice
                    for invoice in found
                    if str((invoice.custom_fields or {}).get(label, wanted)) == wanted
                ]
        elif request.customer_po_number:
            found = await self.client.find_invoices(customer_po_number=request.customer_po_number)
            total, lines = request_total(request), _lines(request)
            proven = [
                invoice
                for invoice in found
                if invoice.company == request.company_id
                and invoice.order_day == request.order_date
                and invoice.total == total
                and _invoice_lines(invoice) == lines
                and _alternate_ids_agree(invoice, request, draft)
            ]
        else:
            return _Candidates()
        return _Candidates(sorted(proven, key=lambda invoice: invoice.id))

    async def _adopted(self, claim: Claim, key: OrderKey, found: _Candidates) -> None:
        event = claim.event
        await self.store.note(
            event.id, "adopted", f"found invoice {found.invoices[0].id} in Luminous"
        )
        if found.extra_ids:
            await self._doubled(event, key, found)

    async def _doubled(self, event: Event, key: OrderKey, found: _Candidates) -> None:
        extra = found.extra_ids
        why = f"Luminous holds {len(found.invoices)} invoices for order {key.order_id}"
        await self.store.flag(event.id, possible_duplicate=why, extra_invoice_ids=extra)
        self.metrics.doubled.labels(event.source).inc()
        log.error(
            "event=%s source=%s order=%s DOUBLED: invoices %s",
            event.id,
            event.source,
            key.order_id,
            ", ".join(str(invoice.id) for invoice in found.invoices),
        )

    async def sent_late(self, claim: Claim, key: OrderKey, invoice_id: int | None) -> None:
        """A send finished after the claim was lost: flag it, and confirm it if we can."""
        event = claim.event
        what = f"invoice {invoice_id}" if invoice_id is not None else "a send of unknown outcome"
        why = f"{what} was sent after this worker's claim was lost; it may double the order"
        await self.store.flag(event.id, possible_duplicate=why)
        self.metrics.possible_duplicates.labels(event.source).inc()
        log.error(
            "event=%s source=%s order=%s POSSIBLE DUPLICATE: %s",
            event.id,
            event.source,
            key.order_id,
            why,
        )
        recorded = await self.store.invoice_for(key)
        if recorded is not None and invoice_id is not None and recorded != invoice_id:
            await self.store.flag(
                event.id,
                possible_duplicate=f"{why}; confirmed: the order's invoice is {recorded}",
                extra_invoice_ids=[invoice_id],
            )
            self.metrics.doubled.labels(event.source).inc()

    async def confirm(self, event: Event, key: OrderKey) -> None:
        """After an order got its invoice: check a flagged possible duplicate in Luminous."""
        source = self.settings.sources.get(event.source)
        if source is None or event.body is None:
            return
        draft = await self._map(event, source)
        if not isinstance(draft, Draft):
            return
        request = await self.resolver.resolve(
            draft, source.options, namespace=f"{event.source}/{event.shop}"
        )
        found = await self._candidates(draft, request, source.options)
        if found.extra_ids:
            await self._doubled(event, key, found)
        elif not event.extra_invoice_ids:
            await self.store.flag(event.id, possible_duplicate=None)
            log.info("event=%s possible duplicate cleared: Luminous holds one invoice", event.id)

    # -- later life ---------------------------------------------------------------

    async def _tag(self, claim: Claim, source: Source, tag: Tag) -> Outcome:
        """Tag the order's invoice; wait (retrying) while the invoice does not exist yet."""
        event = claim.event
        key = order_key(source, event, tag.order_id)
        await self.store.set_order(event.id, tag.order_id, tag.order_name)
        invoice_id = await self.store.invoice_for(key)
        if invoice_id is None:
            order = tag.order_name or tag.order_id
            return Retry(RetryableError(f"order {order} has no invoice yet to tag {tag.tag!r}"))
        try:
            await self.client.add_invoice_tags(invoice_id, [tag.tag])
        except LuminousError as exc:
            return await self._luminous_failed(exc)
        reason = f"invoice {invoice_id} tagged {tag.tag!r} ({tag.reason})"
        return Ended(TAGGED, reason, invoice_id=invoice_id)


def _wire(request: InvoiceRequest) -> str:
    """The request as it goes on the wire, kept on the event for `events show`."""
    return dumps(request.to_wire()).decode()


def failure_kind(exc: LuminousError) -> str:
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, UnknownOutcome):
        return "unknown_outcome"
    if isinstance(exc, RetryableError):
        return "retryable"
    if isinstance(exc, ForbiddenError):
        return "forbidden"
    return "permanent"
