"""Backfill: a shop's own orders recorded as events, for the same pipeline as a webhook.

Each order becomes a delivery keyed `backfill:<shop>:<order id>:<updated_at>`, so seeing an
unchanged order again records nothing. Its topic is the platform's "created" one when the
bridge has no event about the order yet, else its "updated" one: an order already seen then
follows the tag rules and is never invoiced twice (the order's exactly-once record would
refuse a second invoice anyway). Backfill only records; the workers of `bridge serve`, on
any replica, invoice what it recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.config import Shop, Source
from bridge.errors import ShopAPIError
from bridge.mapping import Delivery, Skip
from bridge.shop_api import Platform, ShopClient, ShopOrder, Window, platform_of
from bridge.shops import normalise_shop, order_scope
from bridge.store.base import NewDelivery, Store
from bridge.webhooks import identify

log = logging.getLogger("bridge.backfill")

ORIGIN_HEADER = "x-bridge-origin"  # on a backfilled event, in place of the webhook's headers


@dataclass
class Tally:
    """What a backfill (or a sweep) did, shop by shop or summed."""

    pages: int = 0
    orders: int = 0
    new: int = 0  # recorded under the "created" topic: the bridge never saw these orders
    updated: int = 0  # recorded under the "updated" topic: seen before, changed since
    known: int = 0  # seen unchanged: nothing recorded
    skipped: int = 0  # of the new events, those the pipeline will skip (test orders, …)
    failed: list[str] = field(default_factory=list)  # shops whose orders could not be fetched
    refused: list[str] = field(default_factory=list)  # orders not recorded, and why
    event_ids: list[int] = field(default_factory=list)  # the events recorded
    order_ids: list[str] = field(default_factory=list)  # and their orders

    def add(self, other: Tally) -> None:
        for name in ("pages", "orders", "new", "updated", "known", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.refused += other.refused
        self.event_ids += other.event_ids
        self.order_ids += other.order_ids


def delivery_key(shop: str, order: ShopOrder) -> str:
    return f"backfill:{shop}:{order.order_id}:{order.updated_at}"


def will_skip(source: Source, topic: str, order: ShopOrder, shop: str) -> bool:
    """Whether the pipeline ends this order's event skipped (a pure reading, no I/O)."""
    if source.topics and topic not in (*source.topics, *source.options.tag_topics):
        return True
    try:
        result = source.mapping.map(
            Delivery(order.payload, {ORIGIN_HEADER: "backfill"}, topic, shop), source.options
        )
    except Exception:  # the worker reports a refusal; here it only is not a skip
        return False
    return isinstance(result, Skip)


class Backfill:
    """Records a source's orders from its shops' APIs; `dry_run` fetches and counts only."""

    def __init__(
        self,
        store: Store,
        source: Source,
        *,
        dry_run: bool = False,
        progress: Callable[[str, Tally], None] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.platform: Platform = platform_of(source)
        self.dry_run = dry_run
        self.progress = progress

    async def run(self, shop: Shop, client: ShopClient, window: Window) -> Tally:
        """Every order of the window from one shop; a fetch failure is counted, not raised."""
        tally = Tally()
        try:
            async for page in client.pages(window):
                tally.pages += 1
                await self.record_page(shop, page, tally)
                if self.progress is not None:
                    self.progress(shop.name, tally)
        except ShopAPIError as exc:
            log.error("backfill of %s stopped: %s", shop.name, exc)
            tally.failed.append(f"{shop.name}: {exc}")
        return tally

    async def record_page(self, shop: Shop, orders: list[ShopOrder], tally: Tally) -> None:
        source = self.source
        scope = order_scope(source, shop.name)
        events = await self.store.order_events(source.name, scope, [o.order_id for o in orders])
        seen = {event.order_id for event in events}
        keys = {event.delivery_key for event in events}
        for order in orders:
            tally.orders += 1
            ref = identify(source, order.payload)
            if ref is not None and ref.shop and normalise_shop(ref.shop) != shop.name:
                # The body names another shop than the table it was fetched for: as a
                # webhook it would be refused, so it is not recorded under this one.
                tally.refused.append(
                    f"order {order.order_id} names shop {normalise_shop(ref.shop)}, not "
                    f"{shop.name}: name the shop table as the site's home URL"
                )
                continue
            new_order = order.order_id not in seen
            topic = self.platform.created_topic if new_order else self.platform.updated_topic
            key = delivery_key(shop.name, order)
            if self.dry_run:
                created = key not in keys
            else:
                event, created = await self.store.record(
                    NewDelivery(
                        source.name,
                        key,
                        shop.name,
                        topic,
                        {ORIGIN_HEADER: "backfill"},
                        order.body,
                        order_id=ref.order_id if ref else order.order_id,
                        order_name=ref.order_name if ref else None,
                    )
                )
                if created:
                    tally.event_ids.append(event.id)
                    tally.order_ids.append(order.order_id)
            if not created:
                tally.known += 1
                continue
            seen.add(order.order_id)
            keys.add(key)
            if new_order:
                tally.new += 1
            else:
                tally.updated += 1
            if will_skip(source, topic, order, shop.name):
                tally.skipped += 1
