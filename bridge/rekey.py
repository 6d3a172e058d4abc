"""Order records keyed the way this release keys them, after an upgrade.

Earlier releases keyed an order by the shop header as sent; now its shop part is the
authenticated scope (`bridge.shops.order_scope`), "" for Shopify. Which scope a record
belongs to depends on each source's mapping, so this runs with the configuration, after
the schema migrations, in `bridge migrate` and at every start (it is idempotent).
"""

from __future__ import annotations

import logging

from bridge.config import Settings
from bridge.shops import order_scope
from bridge.store.base import Store

log = logging.getLogger("bridge.rekey")


async def rekey_orders(store: Store, settings: Settings) -> int:
    """Move every configured source's order records to their scope; returns how many moved."""
    total = 0
    for name, source in settings.sources.items():
        for shop in await store.order_shops(name):
            scope = order_scope(source, shop)
            if scope == shop:
                continue
            moved, left = await store.rescope_orders(name, shop, scope)
            total += moved
            if left:
                # Two records for one order: it was invoiced under both keys before.
                log.error(
                    "source=%s shop=%s: %s order records already exist under %r; those orders "
                    "were likely invoiced twice before this release: check them in Luminous",
                    name,
                    shop,
                    left,
                    scope,
                )
    if total:
        log.info("rekeyed %s order records to their authenticated shop scope", total)
    return total
