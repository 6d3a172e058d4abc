"""WooCommerce REST v3 `/wp-json/wc/v3/orders`: the same order JSON its webhooks carry.

Basic auth with the consumer key and secret (over HTTPS, as WooCommerce requires), times in
UTC with `dates_are_gmt=true`, 100 orders a page counted by `X-WP-TotalPages`. WordPress's
`after` and `before` are exclusive, so each bound is widened by a second and the orders are
held to the window here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bridge.errors import ShopAPIError
from bridge.shop_api.base import ShopClient, ShopOrder, Sleep, Window, parse_time, utc_text

PER_PAGE = 100  # WooCommerce's maximum
_SECOND = dt.timedelta(seconds=1)


class WooCommerceClient(ShopClient):
    platform = "WooCommerce"

    def __init__(
        self,
        shop: str,
        base_url: str,
        *,
        key: str,
        secret: str,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # The Basic header's own spelling too: a server that echoes it must not show it.
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        super().__init__(
            shop,
            base_url,
            secrets=[key, secret, basic],
            timeout=timeout,
            transport=transport,
            sleep=sleep,
        )
        self._http.auth = httpx.BasicAuth(key, secret)

    @property
    def orders_url(self) -> str:
        return f"{self.base_url}/wp-json/wc/v3/orders"

    async def pages(self, window: Window) -> AsyncIterator[list[ShopOrder]]:
        after, before = (
            ("after", "before")
            if window.by == "created"
            else (
                "modified_after",
                "modified_before",
            )
        )
        params = {
            "dates_are_gmt": "true",
            "per_page": str(PER_PAGE),
            "orderby": "date" if window.by == "created" else "modified",
            "order": "asc",
            after: utc_text(window.since - _SECOND),
        }
        if window.until is not None:
            params[before] = utc_text(window.until + _SECOND)
        page, last = 1, 1
        while page <= last:
            response = await self.get(self.orders_url, {**params, "page": str(page)})
            last = _total_pages(response.headers.get("x-wp-totalpages"), page)
            orders = [self._order(raw) for raw in self.parse_list(response, None)]
            yield [order for order in orders if window.holds(_moment(order, window))]
            if not orders:
                return
            page += 1

    def _order(self, raw: Any) -> ShopOrder:
        order_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            raise ShopAPIError(f"WooCommerce site {self.shop} listed an order without a numeric id")
        assert isinstance(raw, dict)
        created = parse_time(raw.get("date_created_gmt"), naive_is_utc=True)
        modified = raw.get("date_modified_gmt")
        if created is None or not isinstance(modified, str):
            raise ShopAPIError(
                f"WooCommerce site {self.shop}: order {order_id} has no readable "
                "date_created_gmt or date_modified_gmt"
            )
        return ShopOrder(str(order_id), modified, created, raw)


def _moment(order: ShopOrder, window: Window) -> dt.datetime:
    if window.by == "created":
        return order.created
    return parse_time(order.updated_at, naive_is_utc=True) or order.created


def _total_pages(header: str | None, page: int) -> int:
    text = (header or "").strip()
    return int(text) if text.isdigit() else page
