"""What a mapping is: a pure function from a delivery to an invoice draft, or a skip.

A mapping never does I/O. It sees the parsed payload, the headers and its options, and
returns a `Draft` (the invoice request plus what the bridge needs to check it) or a
`Skip` (not invoiced, and why). It raises `MappingError` for a payload it refuses. It may
also name a payload's order cheaply on receipt (`identify`), and declare whether its order
ids are unique across shops (`unique_order_ids`); a mapping without them still loads.

Mappings are found by name, one mechanism for built-ins and third parties alike: a name
registered in the `bridge.mappings` entry-point group (`shopify`), or an import string
`package.module:attr`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol, runtime_checkable

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from bridge.errors import ConfigError, InvoiceError, MappingError
from bridge.invoice import InvoiceRequest, ShipTo, request_total
from bridge.shops import normalise_shop

ENTRY_POINT_GROUP = "bridge.mappings"


class InvoiceOptions(BaseModel):
    """Options every mapping understands (`[sources.X.options]`); mappings may extend them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payment_terms: str = "Due on receipt"
    company_id: int | None = None
    warehouse_id: int | None = None
    sales_channel_id: int | None = None
    revenue_account_id: int | None = None
    invoice_export_template_id: int | None = None
    tags: list[str] = Field(default_factory=list)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    po_prefix: str = ""
    # Which Luminous company an invoice goes to: always `company_id`, or found per customer.
    company: Literal["fixed", "match"] = "fixed"
    default_company_id: int | None = None  # guests, and unmatched customers if not creating
    create_companies: bool = True
    company_custom_field: str | None = None  # company custom field holding the customer ID
    # A line whose SKU Luminous does not know: end the event dead, or create the product.
    unknown_sku: Literal["fail", "create"] = "fail"
    fallback_sku: str | None = None  # for lines with no SKU at all (custom items, tips)
    # An invoice custom field that carries the order ID, so a lost answer is found by it
    # (more exact than the PO number). The field must exist in Luminous for invoices.
    invoice_custom_field: str | None = None
    # Later events in an order's life (a topic, or a status for some sources) → invoice tag.
    # Filled from `[sources.X.tag_topics]`.
    tag_topics: dict[str, str] = Field(default_factory=dict)
    # Normalised shop → its own po_prefix, filled from the source's shop tables.
    shop_po_prefixes: dict[str, str] = Field(default_factory=dict)

    def po_prefix_for(self, shop: str | None) -> str:
        """The prefix of a delivery's customer_po_number: its shop's own, else the source's."""
        if not self.shop_po_prefixes:  # the usual case: no shop of its own, nothing to spell
            return self.po_prefix
        return self.shop_po_prefixes.get(normalise_shop(shop or ""), self.po_prefix)


@dataclass(frozen=True)
class Delivery:
    """One authentic delivery as a mapping sees it: plain data, nothing to call."""

    payload: Any
    headers: MappingABC[str, str] = field(default_factory=dict)  # lower-case names
    topic: str | None = None
    shop: str | None = None


@dataclass(frozen=True)
class CustomerRef:
    """Who bought: what the resolver needs to find or create the Luminous company."""

    email: str | None = None
    customer_id: str | None = None  # the source's own customer ID
    name: str | None = None  # the company or person to name a new company after
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    address: ShipTo | None = None  # billing address, for a new company


@dataclass(frozen=True)
class Draft:
    """An invoice ready to check and send.

    `expected_total` is the order's own total in the shop's currency: the bridge refuses to
    send a request whose Luminous total differs from it by a cent.
    """

    order_id: str
    request: InvoiceRequest
    expected_total: Decimal
    currency: str | None = None
    order_name: str | None = None
    customer: CustomerRef | None = None  # None: a guest order


@dataclass(frozen=True)
class Skip:
    """Not invoiced, on purpose; `reason` is shown to the sender and kept on the event."""

    reason: str
    order_id: str | None = None


@dataclass(frozen=True)
class Tag:
    """A later event in an invoiced order's life: tag its invoice, never create another."""

    order_id: str
    tag: str
    reason: str  # what happened, e.g. "orders/cancelled" or "status cancelled"
    order_name: str | None = None


MapResult = Draft | Skip | Tag


@dataclass(frozen=True)
class OrderRef:
    """Which order a payload is about, read without judging the rest of the payload."""

    order_id: str
    order_name: str | None = None
    shop: str | None = None  # the shop the payload itself names, as written (WooCommerce `_links`)


@runtime_checkable
class Mapping(Protocol):
    """A source's translation of its payloads into Luminous invoices."""

    name: str
    options_model: type[InvoiceOptions]

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Draft | Skip | Tag:
        """Translate one delivery; raise `MappingError` when the payload is unusable."""
        ...


@runtime_checkable
class IdentifyingMapping(Mapping, Protocol):
    """A mapping that also names a payload's order on receipt, as every built-in one does."""

    # True when an order id names one order across every shop of the source (Shopify's do):
    # then the shop is no part of the order's identity.
    unique_order_ids: bool

    def identify(self, payload: Any) -> OrderRef | None:
        """The order a parsed payload names, even one `map` would refuse; never raises."""
        ...


class MapOnlyMapping:
    """A mapping written before `identify`: its events learn their order once mapped."""

    unique_order_ids = False

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.name = mapping.name
        self.options_model = mapping.options_model

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Draft | Skip | Tag:
        return self.mapping.map(delivery, options)

    def identify(self, payload: Any) -> OrderRef | None:
        return None


def installed_mappings() -> dict[str, str]:
    """Registered mapping names and the import string each points to."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_mapping(name: str, *, key: str = "mapping") -> IdentifyingMapping:
    """Resolve a registered name or a `package.module:attr` string to a mapping object."""
    target = installed_mappings().get(name, name)
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        known = ", ".join(sorted(installed_mappings())) or "none"
        raise ConfigError(
            key, f"unknown mapping {name!r} (registered: {known}; or use 'package.module:attr')"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(key, f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(key, f"{module_name!r} has no attribute {attr!r}") from exc
    if isinstance(obj, IdentifyingMapping):
        return obj
    if not isinstance(obj, Mapping):
        raise ConfigError(key, f"{target!r} is not a mapping (needs name, options_model, map)")
    if hasattr(obj, "identify") or hasattr(obj, "unique_order_ids"):
        raise ConfigError(key, f"{target!r} needs both identify and unique_order_ids, or neither")
    return MapOnlyMapping(obj)


def invoice_request(
    values: dict[str, Any], options: InvoiceOptions, subject: str
) -> InvoiceRequest:
    """The request from a mapping's values plus what every invoice takes from the options.

    A value the model refuses becomes a `MappingError` naming its field, so a mapping that
    missed a bound still answers `rejected`, never crashes.
    """
    values = {
        "company_id": options.company_id,
        "payment_terms": options.payment_terms,
        "warehouse_id": options.warehouse_id,
        "sales_channel_id": options.sales_channel_id,
        "revenue_account_id": options.revenue_account_id,
        "invoice_export_template_id": options.invoice_export_template_id,
        **values,
    }
    try:
        return InvoiceRequest.model_validate(values)
    except pydantic.ValidationError as exc:
        details = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise MappingError(f"{subject} gives an invalid invoice", details) from exc


def reconcile_totals(draft: Draft) -> None:
    """Refuse a draft whose Luminous total would differ from the order's total."""
    computed = request_total(draft.request)
    if computed != draft.expected_total:
        difference = computed - draft.expected_total
        raise InvoiceError(
            f"totals do not reconcile: the order's total is {draft.expected_total}, "
            f"the invoice would total {computed} (difference {difference})",
            [("total", f"is {draft.expected_total}, but the invoice would total {computed}")],
        )


def check_currency(draft: Draft, options: InvoiceOptions) -> None:
    """Refuse an order in another currency than the one the source is configured for."""
    wanted = options.currency
    if wanted and draft.currency and draft.currency.upper() != wanted.upper():
        raise InvoiceError(
            f"order currency {draft.currency} is not the configured currency {wanted}; "
            "a Luminous invoice carries no currency, so it is not sent",
            [("currency", f"is {draft.currency}, this source takes {wanted}")],
        )
