"""A stand-in for Shopify's Admin REST order API, strict where Shopify is (shop-apis.md §6).

`status` defaults to `open`; `*_min`/`*_max` are inclusive; `limit` is 50 by default and at
most 250; `page_info` is opaque, carries the first request's filters, and refuses any filter
beside it (as does `page`); every answer counts against a leaky bucket of 40 calls leaking 2 a
second and shows `X-Shopify-Shop-Api-Call-Limit`, and a full bucket answers 429 with
`Retry-After: 2.0`. Tokens come static or from the client credentials grant, which expire;
without `read_all_orders` only the last 60 days of orders are listed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from bridge.shop_api.base import parse_time
from bridge.shop_sandbox.common import Bucket, Faults, ShopSandboxSettings, json_response
from bridge.shop_sandbox.orders import Order, OrderBook

SUPPORTED_VERSIONS = ("2025-10", "2026-01", "2026-04", "2026-07", "2026-10", "unstable")
DEFAULT_LIMIT, MAX_LIMIT = 50, 250
WINDOW = dt.timedelta(days=60)
FILTERS = frozenset(
    {
        "ids", "since_id", "status", "financial_status", "fulfillment_status",
        "created_at_min", "created_at_max", "updated_at_min", "updated_at_max",
        "processed_at_min", "processed_at_max", "attribution_app_id", "name",
    }
)  # fmt: skip
PAGE_PARAMS = frozenset({"page_info", "limit", "fields"})
BAD_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLED = (
    "Exceeded 2 calls per second for api client. "
    "Reduce request rates to resume uninterrupted service."
)


class Refusal(Exception):
    def __init__(self, status: int, errors: Any, headers: dict[str, str] | None = None):
        self.status, self.errors, self.headers = status, errors, headers or {}


def _status_of(order: Order) -> set[str]:
    if order.get("cancelled_at"):
        return {"cancelled", "closed", "any"} if order.get("closed_at") else {"cancelled", "any"}
    return {"closed", "any"} if order.get("closed_at") else {"open", "any"}


def _time_filter(params: dict[str, str], name: str) -> dt.datetime | None:
    if name not in params:
        return None
    moment = parse_time(params[name])
    if moment is None:
        raise Refusal(400, {name: f"{name} is not a valid date"})
    return moment


class ShopifyStandIn:
    """The routes and the rules; `clock` and `wall` are injectable for tests of expiry."""

    def __init__(
        self,
        settings: ShopSandboxSettings,
        book: OrderBook,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings, self.book, self.clock, self.wall = settings, book, clock, wall
        self.bucket = Bucket(settings.bucket_size, settings.leak_rate, clock)
        self.faults = Faults(settings)
        self.granted: dict[str, float] = {}  # token -> expiry on `clock`

    async def handle(self, request: Request) -> Response:
        """Every `/admin/...` request: faults, the token, the bucket, then the route."""
        await self.faults.delay()
        path = request.url.path
        if path == "/admin/oauth/access_token" and request.method == "POST":
            return await self._grant(request)
        version = request.path_params.get("version")
        headers: dict[str, str] = {}
        try:
            self._authorise(request)
            if not self.bucket.take() or self.faults.throttled():
                raise Refusal(429, THROTTLED, {"Retry-After": "2.0"})
            headers["X-Shopify-Shop-Api-Call-Limit"] = f"{self.bucket.used}/{self.bucket.size}"
            if version is not None:
                # An unsupported version falls forward to the oldest supported one.
                known = version if version in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[0]
                headers["X-Shopify-API-Version"] = known
            status = self.faults.server_error()
            if status is not None:
                raise Refusal(status, "Internal Server Error")
            body, extra = self._route(request, path)
        except Refusal as refusal:
            full = {**headers, **refusal.headers}
            if refusal.status == 429:
                full["X-Shopify-Shop-Api-Call-Limit"] = f"{self.bucket.size}/{self.bucket.size}"
            return json_response({"errors": refusal.errors}, refusal.status, full)
        return json_response(body, 200, {**headers, **extra})

    # -- auth -----------------------------------------------------------------------------

    def _authorise(self, request: Request) -> None:
        token = request.headers.get("x-shopify-access-token", "")
        expiry = self.granted.get(token)
        if expiry is not None:
            if self.clock() >= expiry:
                raise Refusal(401, BAD_TOKEN)
            return
        static = self.settings.token
        if not token or (static is not None and not secrets.compare_digest(token, static)):
            raise Refusal(401, BAD_TOKEN)

    async def _grant(self, request: Request) -> Response:
        # Form-encoded, as OAuth has it; parsed here, so no multipart parser is needed.
        form = dict(parse_qsl((await request.body()).decode("latin-1")))
        settings = self.settings
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        given = (str(form.get("client_id", "")), str(form.get("client_secret", "")))
        if not (
            secrets.compare_digest(given[0], settings.client_id)
            and secrets.compare_digest(given[1], settings.client_secret)
        ):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
            )
        token = "shpat_" + secrets.token_hex(16)
        self.granted[token] = self.clock() + settings.token_lifetime
        body = {
            "access_token": token,
            "scope": ",".join(settings.scopes),
            "expires_in": int(settings.token_lifetime),
        }
        return json_response(body)

    # -- routes ---------------------------------------------------------------------------

    def _route(self, request: Request, path: str) -> tuple[Any, dict[str, str]]:
        params = dict(request.query_params)
        if path == "/admin/oauth/access_scopes.json":
            return {"access_scopes": [{"handle": s} for s in self.settings.scopes]}, {}
        rest = path.removeprefix(f"/admin/api/{request.path_params.get('version')}/")
        if rest == "orders.json":
            return self._list(request, params)
        if rest == "orders/count.json":
            return {"count": len(self._matching(params))}, {}
        if rest.startswith("orders/") and rest.endswith(".json"):
            wanted = rest.removeprefix("orders/").removesuffix(".json")
            order = self.book.get(int(wanted)) if wanted.isdigit() else None
            if order is None or not self._visible(order):
                raise Refusal(404, "Not Found")
            return {"order": order}, {}
        raise Refusal(404, "Not Found")

    def _visible(self, order: Order) -> bool:
        if "read_all_orders" in self.settings.scopes:
            return True
        created = parse_time(order.get("created_at"))
        return created is None or created >= self.wall() - WINDOW

    def _matching(self, params: dict[str, str]) -> list[Order]:
        statuses = params.get("status", "open")
        if statuses not in ("open", "closed", "cancelled", "any"):
            raise Refusal(400, {"status": "status is not valid"})
        bounds = {name: _time_filter(params, name) for name in (
            "created_at_min", "created_at_max", "updated_at_min", "updated_at_max",
        )}  # fmt: skip
        ids = (
            {int(i) for i in params["ids"].split(",") if i.strip().isdigit()}
            if "ids" in params
            else None
        )
        since_id = int(params["since_id"]) if params.get("since_id", "").isdigit() else None
        financial = params.get("financial_status", "any")
        found = []
        for order in self.book.by_id():
            if statuses not in _status_of(order) or not self._visible(order):
                continue
            if ids is not None and order["id"] not in ids:
                continue
            if since_id is not None and order["id"] <= since_id:
                continue
            if financial != "any" and order.get("financial_status") != financial:
                continue
            if not _within(order, "created_at", bounds) or not _within(order, "updated_at", bounds):
                continue
            found.append(order)
        return found

    def _list(self, request: Request, params: dict[str, str]) -> tuple[Any, dict[str, str]]:
        if "page" in params:
            raise Refusal(400, {"page": "page cannot be passed."})
        limit_text = params.get("limit", str(DEFAULT_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise Refusal(400, {"limit": f"limit must be between 1 and {MAX_LIMIT}"})
        limit = int(limit_text)
        if "page_info" in params:
            extra = sorted(set(params) - PAGE_PARAMS)
            if extra:
                raise Refusal(
                    400, {extra[0]: f"{extra[0]} cannot be passed when page_info is present."}
                )
            filters, after, backwards = _read_cursor(params["page_info"])
        else:
            # Parameters Shopify does not know are ignored, as Shopify does.
            filters = {k: v for k, v in params.items() if k in FILTERS}
            after, backwards = None, False
        orders = self._matching(filters)
        start = 0
        if after is not None:
            ids = [order["id"] for order in orders]
            start = next((n for n, i in enumerate(ids) if i > after), len(ids))
            if backwards:
                start = max(0, next((n for n, i in enumerate(ids) if i >= after), len(ids)) - limit)
        page = orders[start : start + limit]
        fields = params.get("fields")
        shown = [_only(order, fields) for order in page] if fields else page
        links = []
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        if start > 0 and page:
            links.append(_link(base, limit, filters, page[0]["id"], True, "previous", fields))
        if start + limit < len(orders) and page:
            links.append(_link(base, limit, filters, page[-1]["id"], False, "next", fields))
        return {"orders": shown}, ({"Link": ", ".join(links)} if links else {})


def _within(order: Order, field: str, bounds: dict[str, dt.datetime | None]) -> bool:
    low, high = bounds[f"{field}_min"], bounds[f"{field}_max"]
    if low is None and high is None:
        return True
    moment = parse_time(order.get(field))
    if moment is None:
        return False
    return (low is None or moment >= low) and (high is None or moment <= high)


def _only(order: Order, fields: str) -> Order:
    wanted = {name.strip() for name in fields.split(",")}
    return {key: value for key, value in order.items() if key in wanted}


def _link(
    base: str, limit: int, filters: dict[str, str], edge: int, backwards: bool, rel: str,
    fields: str | None,
) -> str:  # fmt: skip
    cursor = json.dumps({"f": filters, "a": edge, "b": backwards}, separators=(",", ":"))
    token = base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")
    query = f"limit={limit}" + (f"&fields={fields}" if fields else "") + f"&page_info={token}"
    return f'<{base}?{query}>; rel="{rel}"'


def _read_cursor(token: str) -> tuple[dict[str, str], int, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)
        filters, after, backwards = cursor["f"], int(cursor["a"]), bool(cursor["b"])
        if not isinstance(filters, dict):
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise Refusal(400, {"page_info": "Invalid value."}) from None
    return {str(k): str(v) for k, v in filters.items()}, after, backwards
