"""A stand-in for WooCommerce's REST v3 order API, strict where WooCommerce is (§6).

Basic auth (or `consumer_key`/`consumer_secret` in the query); `per_page` 10 by default and
1 to 100, else 400 `rest_invalid_param`; `after`/`before`/`modified_after`/`modified_before`
exclusive, in the site's local time unless `dates_are_gmt=true`; `orderby` and `order`
(default `date`, `desc`); `status` a list defaulting to `any` (no trash); `X-WP-Total`,
`X-WP-TotalPages` and a `Link` with `prev`/`next` only; an empty list past the last page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from bridge.shop_api.base import parse_time
from bridge.shop_sandbox.common import Faults, ShopSandboxSettings, json_response
from bridge.shop_sandbox.orders import Order, OrderBook

ORDERS = "/wp-json/wc/v3/orders"
DEFAULT_PER_PAGE, MAX_PER_PAGE = 10, 100
ORDERBY = {"date": "date_created", "modified": "date_modified", "id": "id", "include": "id"}
# Ranges on the published date, or the modified one; `dates_are_gmt` picks the *_gmt twin.
RANGES = {
    "after": ("date_created", "gt"),
    "before": ("date_created", "lt"),
    "modified_after": ("date_modified", "gt"),
    "modified_before": ("date_modified", "lt"),
}


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, params: dict[str, str] | None = None):
        self.status, self.code, self.message, self.params = status, code, message, params


def _error(refusal: Refusal) -> Response:
    data: dict[str, Any] = {"status": refusal.status}
    if refusal.params:
        data["params"] = refusal.params
    return json_response(
        {"code": refusal.code, "message": refusal.message, "data": data}, refusal.status
    )


def _whole(params: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    text = params.get(name, str(default))
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        limit = f"between {low} (inclusive) and {high} (inclusive)" if high else f"at least {low}"
        raise Refusal(
            400,
            "rest_invalid_param",
            f"Invalid parameter(s): {name}",
            {name: f"{name} must be {limit}"},
        )
    return int(text)


class WooCommerceStandIn:
    def __init__(self, settings: ShopSandboxSettings, book: OrderBook) -> None:
        self.settings, self.book = settings, book
        self.faults = Faults(settings)

    async def handle(self, request: Request) -> Response:
        await self.faults.delay()
        try:
            self._authorise(request)
            if self.faults.throttled():
                return json_response(
                    {
                        "code": "rest_too_many_requests",
                        "message": "Too many requests.",
                        "data": {"status": 429},
                    },
                    429,
                    {"Retry-After": "1"},
                )
            status = self.faults.server_error()
            if status is not None:
                raise Refusal(
                    status,
                    "internal_server_error",
                    "There has been a critical error on this website.",
                )
            path = request.url.path.rstrip("/")
            if path == ORDERS:
                return self._list(request)
            wanted = path.removeprefix(ORDERS + "/")
            order = self.book.get(int(wanted)) if wanted.isdigit() else None
            if order is None or order.get("status") == "trash":
                raise Refusal(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            return json_response(order)
        except Refusal as refusal:
            return _error(refusal)

    def _authorise(self, request: Request) -> None:
        key, secret = (
            request.query_params.get("consumer_key"),
            request.query_params.get("consumer_secret"),
        )
        header = request.headers.get("authorization", "")
        if key is None and header.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                key = None
        if not key:
            raise Refusal(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if not secrets.compare_digest(key, self.settings.key):
            raise Refusal(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not secrets.compare_digest(secret or "", self.settings.secret):
            raise Refusal(
                401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."
            )

    def _list(self, request: Request) -> Response:
        params = dict(request.query_params)
        per_page = _whole(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
        page = _whole(params, "page", 1, 1, None)
        gmt = params.get("dates_are_gmt", "false").lower() in ("true", "1")
        orderby = params.get("orderby", "date")
        direction = params.get("order", "desc")
        if orderby not in ORDERBY or direction not in ("asc", "desc"):
            raise Refusal(400, "rest_invalid_param", "Invalid parameter(s): orderby, order")
        statuses = {s.strip() for s in params.get("status", "any").split(",") if s.strip()}
        orders = [order for order in self.book.by_id() if _status_matches(order, statuses)]
        for name, (field, relation) in RANGES.items():
            if name in params:
                bound = parse_time(params[name], naive_is_utc=True)
                if bound is None:
                    raise Refusal(
                        400,
                        "rest_invalid_param",
                        f"Invalid parameter(s): {name}",
                        {name: "Invalid date."},
                    )
                orders = [o for o in orders if _compare(o, field, gmt, bound, relation)]
        key = ORDERBY[orderby]
        orders.sort(key=lambda o: (_sort_value(o, key), o["id"]), reverse=direction == "desc")
        total = len(orders)
        pages = -(-total // per_page)
        shown = orders[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        links = []
        if page > 1:
            links.append(f'<{base}?{urlencode({**params, "page": page - 1})}>; rel="prev"')
        if page < pages:
            links.append(f'<{base}?{urlencode({**params, "page": page + 1})}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return json_response(shown, 200, headers)


def _status_matches(order: Order, statuses: set[str]) -> bool:
    status = order.get("status")
    if "any" in statuses:
        return status != "trash"
    return status in statuses


def _moment(order: Order, field: str, gmt: bool) -> dt.datetime | None:
    # Local times carry no offset; compared as written, as WordPress compares them.
    return parse_time(order.get(f"{field}_gmt" if gmt else field), naive_is_utc=True)


def _compare(order: Order, field: str, gmt: bool, bound: dt.datetime, relation: str) -> bool:
    moment = _moment(order, field, gmt)
    if moment is None:
        return False
    bound = bound.astimezone(dt.UTC) if gmt else bound.replace(tzinfo=dt.UTC)
    return moment > bound if relation == "gt" else moment < bound


def _sort_value(order: Order, key: str) -> Any:
    if key == "id":
        return order["id"]
    return str(order.get(f"{key}_gmt") or "")
