"""Local, strict stand-ins for the shops' own order APIs, for trying backfill and reconcile.

`bridge shop-sandbox shopify|woocommerce` serves one; tests build the same app in process.
Besides the shop's API each serves `/healthz`, `/_sandbox/stats` (answers by status, faults),
`POST /_sandbox/orders` (add or replace an order, as a shop's admin would change it) and
`GET /_sandbox/orders` (every order held, by id: outside the API, so neither its bucket nor
its counts see a test reading what the shop holds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge import wire
from bridge.shop_sandbox.common import (
    ORDERS_PATH,
    STATS_PATH,
    RequestLog,
    ShopSandboxSettings,
    json_response,
)
from bridge.shop_sandbox.orders import (
    OrderBook,
    generate_shopify,
    generate_woocommerce,
    load_orders,
    utc_now,
)
from bridge.shop_sandbox.shopify import ShopifyStandIn
from bridge.shop_sandbox.woocommerce import WooCommerceStandIn

__all__ = ["PLATFORMS", "ShopSandboxSettings", "create_shop_sandbox_app"]

PLATFORMS = ("shopify", "woocommerce")
WOO_OFFSET = dt.timedelta(hours=-4)  # the stand-in site's local time zone


def _book(platform: str, settings: ShopSandboxSettings, site: str) -> OrderBook:
    if settings.orders is not None:
        return OrderBook(load_orders(settings.orders))
    now = utc_now()
    if platform == "shopify":
        return OrderBook(generate_shopify(settings.generate, now, settings.days))
    return OrderBook(generate_woocommerce(settings.generate, now, site, WOO_OFFSET, settings.days))


def create_shop_sandbox_app(
    platform: str, settings: ShopSandboxSettings, *, site: str = "http://127.0.0.1"
) -> Starlette:
    """The stand-in for `platform`; `site` is the origin a WooCommerce order's _links name."""
    if platform not in PLATFORMS:
        raise ValueError(f"no stand-in for {platform!r} (choose {' or '.join(PLATFORMS)})")
    book = _book(platform, settings, settings.site_url or site)
    stand_in: ShopifyStandIn | WooCommerceStandIn = (
        ShopifyStandIn(settings, book)
        if platform == "shopify"
        else WooCommerceStandIn(settings, book)
    )
    served = RequestLog()

    def logged(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            response = await handler(request)
            served.add(request, response.status_code)
            return response

        return endpoint

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def stats(request: Request) -> Response:
        return json_response(served.stats(stand_in.faults, len(book)))

    async def all_orders(request: Request) -> Response:
        return json_response({"orders": book.by_id()})

    async def put_order(request: Request) -> Response:
        try:
            order = wire.loads(await request.body())
        except wire.MalformedJSON as exc:
            return json_response({"error": f"not JSON: {exc}"}, 400)
        if not isinstance(order, dict) or not isinstance(order.get("id"), int):
            return json_response({"error": "an order needs a numeric id"}, 400)
        book.put(order)
        return json_response({"id": order["id"]})

    api = logged(stand_in.handle)
    if platform == "shopify":
        routes = [
            Route("/admin/api/{version}/{rest:path}", api, methods=["GET"]),
            Route("/admin/oauth/{rest:path}", api, methods=["GET", "POST"]),
        ]
    else:
        routes = [Route("/wp-json/{rest:path}", api, methods=["GET"])]
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route(STATS_PATH, stats),
            Route(ORDERS_PATH, put_order, methods=["POST"]),
            Route(ORDERS_PATH, all_orders, methods=["GET"]),
            *routes,
        ]
    )
    app.state.book = book
    app.state.stand_in = stand_in
    return app
