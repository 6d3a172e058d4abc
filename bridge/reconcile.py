"""Reconcile: each of a shop's orders against the bridge's events and Luminous's invoices.

Orders are keyed by their id, never their number. An invoice is the order's when its
`invoice_custom_field` names the order, or, where that field is not set, when it carries the
order's PO number (with the shop's prefix) and, where both are known, its company; the
invoice the bridge recorded for the order counts as well. `mismatched` compares the invoice
with the total the order had when it was invoiced (kept with the order's record), so a
later refund is not a mismatch; for an order invoiced before that was kept, the order's
total as the mapping reads it now stands in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from bridge.config import Source
from bridge.invoice import Invoice
from bridge.mapping import Delivery, Draft, Skip
from bridge.shop_api import ShopOrder, platform_of
from bridge.shops import order_reference, order_scope
from bridge.store.base import FINISHED, Event, OrderRecord

INVOICED = "invoiced"
MISSING = "missing"
DOUBLED = "doubled"
MISMATCHED = "mismatched"
STUCK = "stuck"
PENDING = "pending"  # unfinished, but not yet for --stuck-after
SKIPPED = "skipped"
DEAD = "dead"
REJECTED = "rejected"
DISMISSED = "dismissed"  # set by hand (bridge events dismiss): a plain status here

STATES = (
    INVOICED,
    MISSING,
    DOUBLED,
    MISMATCHED,
    STUCK,
    PENDING,
    SKIPPED,
    DEAD,
    REJECTED,
    DISMISSED,
)
FAILING = frozenset({MISSING, DOUBLED, MISMATCHED})  # any of these: exit 1
# Which event explains an order without an invoice, when it has several.
_PRECEDENCE = (DEAD, REJECTED, DISMISSED, SKIPPED)


@dataclass(frozen=True)
class Line:
    """One order's state in the report."""

    shop: str
    order_id: str
    order_name: str | None
    state: str
    detail: str = ""
    invoice_ids: list[int] = field(default_factory=list)
    event_id: int | None = None
    order_total: Decimal | None = None
    invoice_total: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "shop": self.shop or None,
            "order_id": self.order_id,
            "order_name": self.order_name,
            "state": self.state,
            "detail": self.detail or None,
            "invoice_ids": self.invoice_ids,
            "event_id": self.event_id,
            "order_total": self.order_total,
            "invoice_total": self.invoice_total,
        }


class InvoiceIndex:
    """Luminous's invoices of the range, found by custom field or by PO number."""

    def __init__(self, invoices: Iterable[Invoice], label: str | None) -> None:
        self.label = label
        self.by_id: dict[int, Invoice] = {}
        self.by_field: dict[str, list[Invoice]] = {}
        self.by_po: dict[str, list[Invoice]] = {}
        for invoice in invoices:
            self.add(invoice)

    def add(self, invoice: Invoice) -> None:
        if invoice.id in self.by_id:
            return
        self.by_id[invoice.id] = invoice
        value = (invoice.custom_fields or {}).get(self.label) if self.label else None
        if value not in (None, ""):
            self.by_field.setdefault(str(value), []).append(invoice)
        elif invoice.customer_po_number:
            self.by_po.setdefault(invoice.customer_po_number, []).append(invoice)

    def of(self, reference: str, draft: Draft | None, recorded: int | None) -> list[Invoice]:
        found = list(self.by_field.get(reference, []))
        if draft is not None and draft.request.customer_po_number:
            company = draft.request.company_id
            found += [
                invoice
                for invoice in self.by_po.get(draft.request.customer_po_number, [])
                if company is None or invoice.company is None or invoice.company == company
            ]
        if recorded is not None and recorded in self.by_id:
            found.append(self.by_id[recorded])
        unique = {invoice.id: invoice for invoice in found}
        return [unique[key] for key in sorted(unique)]


def mapped(source: Source, order: ShopOrder, shop: str) -> Draft | Skip | None:
    """What the source's mapping makes of the order as new (pure); None when it refuses."""
    topic = platform_of(source).created_topic
    try:
        result = source.mapping.map(Delivery(order.payload, {}, topic, shop), source.options)
    except Exception:
        return None
    return result if isinstance(result, Draft | Skip) else None


def _explain(events: list[Event], now: float, stuck_after: float) -> tuple[str, Event]:
    unfinished = [e for e in events if e.status not in FINISHED and e.status != DISMISSED]
    if unfinished:
        oldest = min(unfinished, key=lambda e: e.received_at)
        return (STUCK if now - oldest.received_at > stuck_after else PENDING), oldest
    for state in _PRECEDENCE:
        matching = [e for e in events if e.status == state]
        if matching:
            return state, matching[-1]
    return events[-1].status, events[-1]


def classify(
    source: Source,
    shop: str,
    order: ShopOrder,
    events: list[Event],
    record: OrderRecord | None,
    invoices: InvoiceIndex,
    *,
    now: float,
    stuck_after: float,
) -> Line:
    """The one state that describes this order."""
    result = mapped(source, order, shop)
    draft = result if isinstance(result, Draft) else None
    name = draft.order_name if draft else None
    reference = order_reference(order_scope(source, shop), order.order_id)
    recorded = record.invoice_id if record else None
    found = invoices.of(reference, draft, recorded)
    base = Line(shop, order.order_id, name, MISSING, "no event: the webhook never came")
    ids = [invoice.id for invoice in found]
    if len(found) > 1:
        return replace(base, state=DOUBLED, detail=f"{len(found)} invoices", invoice_ids=ids)
    if found or recorded is not None:
        expected = record.total if record and record.total is not None else None
        basis = "as invoiced"
        if expected is None and draft is not None:
            expected, basis = draft.expected_total, "as the order reads now"
        invoice = found[0] if found else None
        total = invoice.total if invoice else None
        invoiced = replace(
            base,
            state=INVOICED,
            detail="",
            invoice_ids=ids or ([recorded] if recorded is not None else []),
            order_total=expected,
            invoice_total=total,
        )
        if expected is not None and total is not None and total != expected:
            detail = f"invoice total {total} ≠ order total {expected} ({basis})"
            return replace(invoiced, state=MISMATCHED, detail=detail)
        return invoiced
    if events:
        state, event = _explain(events, now, stuck_after)
        detail = event.reason or ""
        if state in (STUCK, PENDING):
            age = now - event.received_at
            detail = f"{event.status} for {age / 60:.0f} min" + (f": {detail}" if detail else "")
        return replace(base, state=state, detail=detail, event_id=event.id)
    if isinstance(result, Skip):
        detail = f"no event; the mapping skips it: {result.reason}"
        return replace(base, state=SKIPPED, detail=detail)
    return base


def invoice_days(since: dt.datetime, until: dt.datetime) -> tuple[str, str]:
    """The invoice dates to list: a day either side, since a shop's local day may differ."""
    first = (since - dt.timedelta(days=1)).date().isoformat()
    last = (until + dt.timedelta(days=1)).date().isoformat()
    return first, last
