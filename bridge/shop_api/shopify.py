"""Shopify Admin REST `orders.json`: the same Order JSON the `orders/*` webhooks carry.

Pages follow the `Link` header's `page_info`, which must be sent alone (with `limit`): the
filters belong to the first request only. The client keeps within the shop's leaky bucket
(`X-Shopify-Shop-Api-Call-Limit`), waits out a 429 for its `Retry-After` (seconds), and
holds either a static Admin API token or a Dev Dashboard app's client credentials, which it
exchanges for a token (`POST /admin/oauth/access_token`) and renews before it expires.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from bridge import wire
from bridge.errors import ShopAPIError
from bridge.shop_api.base import ShopClient, ShopOrder, Sleep, Window, parse_time, utc_text

log = logging.getLogger("bridge.shop_api.shopify")

DEFAULT_VERSION = "2025-10"
PAGE_LIMIT = 250  # Shopify's maximum
LEAK_PER_SECOND = 2.0  # the standard plan's; larger plans leak faster, so this is safe
HEADROOM = 0.8  # of the bucket kept free for the shop's other apps
RENEW_BEFORE = 0.1  # of a token's lifetime: renewed when less than this is left
_NEXT = re.compile(r'<([^<>]+)>;\s*rel="next"')
_CALL_LIMIT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class LeakyBucket:
    """Our view of the shop's call bucket: the last count it told us, leaking since."""

    def __init__(
        self, *, leak: float = LEAK_PER_SECOND, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.leak = leak
        self._clock = clock
        self._used = 0.0
        self._size = 40.0
        self._at = clock()

    def heard(self, header: str | None) -> None:
        match = _CALL_LIMIT.fullmatch(header or "")
        if match and int(match[2]) > 0:
            self._used, self._size, self._at = float(match[1]), float(match[2]), self._clock()

    def wait(self) -> float:
        """Seconds until one more call leaves the bucket below its headroom."""
        used = max(0.0, self._used - self.leak * (self._clock() - self._at))
        over = used + 1 - self._size * HEADROOM
        return over / self.leak if over > 0 else 0.0


class ClientCredentials:
    """A Dev Dashboard app's id and secret, exchanged for a token renewed before expiry."""

    def __init__(
        self, client_id: str, client_secret: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._clock = clock
        self.token: str | None = None
        self.scope: frozenset[str] = frozenset()
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    def due(self) -> bool:
        return self.token is None or self._clock() >= self._renew_at

    def accept(self, answer: Mapping[str, Any]) -> str:
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ShopAPIError("the shop's token answer holds no access_token")
        lifetime = answer.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 86400
        self.token = token
        scope = answer.get("scope")
        self.scope = frozenset(scope.split(",")) if isinstance(scope, str) else frozenset()
        self._renew_at = self._clock() + seconds * (1 - RENEW_BEFORE)
        return token


class ShopifyClient(ShopClient):
    platform = "Shopify"
    page_limit = PAGE_LIMIT

    def __init__(
        self,
        shop: str,
        base_url: str,
        *,
        version: str | None = None,
        token: str | None = None,
        credentials: ClientCredentials | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        bucket: LeakyBucket | None = None,
    ) -> None:
        if (token is None) == (credentials is None):
            raise ValueError("give either a token or client credentials")
        secrets = [token] + ([credentials.client_secret] if credentials else [])
        super().__init__(
            shop, base_url, secrets=secrets, timeout=timeout, transport=transport, sleep=sleep
        )
        self.version = version or DEFAULT_VERSION
        self._token = token
        self._credentials = credentials
        self.bucket = bucket or LeakyBucket()
        self._version_noted: str | None = None

    @property
    def orders_url(self) -> str:
        return f"{self.base_url}/admin/api/{self.version}/orders.json"

    async def pages(self, window: Window) -> AsyncIterator[list[ShopOrder]]:
        field = "created_at" if window.by == "created" else "updated_at"
        params: dict[str, str] | None = {
            "status": "any",  # the default, open, would leave closed and cancelled out
            "limit": str(self.page_limit),
            f"{field}_min": utc_text(window.since),
        }
        if window.until is not None:
            assert params is not None
            params[f"{field}_max"] = utc_text(window.until)
        url: str | None = self.orders_url
        while url is not None:
            response = await self.get(url, params)
            yield [self._order(raw) for raw in self.parse_list(response, "orders")]
            # The next page's URL carries page_info and limit only, exactly as given.
            url, params = _next_url(response.headers.get("link")), None

    async def visibility(self) -> str | None:
        scopes = await self.scopes()
        if scopes is None or "read_all_orders" in scopes:
            return None
        return (
            "Shopify shows this app only the last 60 days of orders (its token lacks the "
            "read_all_orders scope): older orders are not listed, so not reported"
        )

    async def scopes(self) -> frozenset[str] | None:
        """The scopes our token holds, or None when the shop does not say."""
        if self._credentials is not None:
            await self._auth_headers(renew=False)
            if self._credentials.scope:
                return self._credentials.scope
        url = f"{self.base_url}/admin/oauth/access_scopes.json"
        try:
            response = await self.get(url)
            body = wire.loads(response.content)
        except (ShopAPIError, wire.MalformedJSON):
            return None
        found = body.get("access_scopes") if isinstance(body, dict) else None
        if not isinstance(found, list):
            return None
        return frozenset(
            entry["handle"] for entry in found if isinstance(entry, dict) and "handle" in entry
        )

    def _order(self, raw: Any) -> ShopOrder:
        order_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            raise ShopAPIError(f"Shopify shop {self.shop} listed an order without a numeric id")
        assert isinstance(raw, dict)
        created = parse_time(raw.get("created_at"))
        updated = raw.get("updated_at")
        if created is None or not isinstance(updated, str):
            raise ShopAPIError(
                f"Shopify shop {self.shop}: order {order_id} has no readable created_at or "
                "updated_at"
            )
        return ShopOrder(str(order_id), updated, created, raw)

    async def _before(self) -> None:
        wait = self.bucket.wait()
        if wait > 0:
            await self._sleep(wait)

    def _after(self, response: httpx.Response) -> None:
        self.bucket.heard(response.headers.get("x-shopify-shop-api-call-limit"))
        answered = response.headers.get("x-shopify-api-version")
        if answered and answered != self.version and answered != self._version_noted:
            self._version_noted = answered
            log.warning(
                "Shopify shop %s answered with API version %s, not the %s asked for: the "
                "version has left support and Shopify fell forward; set api_version to the "
                "version the shop's webhooks use",
                self.shop,
                answered,
                self.version,
            )

    @property
    def _renews(self) -> bool:
        return self._credentials is not None

    async def _auth_headers(self, *, renew: bool) -> Mapping[str, str]:
        if self._credentials is None:
            assert self._token is not None
            return {"X-Shopify-Access-Token": self._token}
        credentials = self._credentials
        async with credentials._lock:
            if renew or credentials.due():
                await self._grant(credentials)
        assert credentials.token is not None
        return {"X-Shopify-Access-Token": credentials.token}

    async def _grant(self, credentials: ClientCredentials) -> None:
        url = f"{self.base_url}/admin/oauth/access_token"
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
        subject = f"Shopify shop {self.shop}: the client credentials grant"
        try:
            response = await self._http.post(url, data=form)
        except httpx.HTTPError as exc:
            cause = self.redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise ShopAPIError(f"{subject} failed: {cause}") from None
        self.requests += 1
        if not response.is_success:
            raise ShopAPIError(
                f"{subject} answered {response.status_code}: check api_client_id_env and "
                "api_client_secret_env (the app must be installed on this shop)",
                status=response.status_code,
            )
        try:
            answer = wire.loads(response.content)
        except wire.MalformedJSON:
            answer = None
        if not isinstance(answer, dict):
            raise ShopAPIError(f"{subject} answered something that is not a token")
        self.redact.add(credentials.accept(answer))
        log.info("Shopify shop %s: got an access token by the client credentials grant", self.shop)


def _next_url(link: str | None) -> str | None:
    match = _NEXT.search(link or "")
    return match[1] if match else None
