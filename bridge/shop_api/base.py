"""What every shop API client offers, and the HTTP plumbing they share.

A client lists a shop's orders in a time range, page by page, each order as the exact JSON
its webhook would carry. Throttling (429 with `Retry-After`), 5xx answers and dropped
connections are retried here a few times; whatever is left becomes a `ShopAPIError` whose
message names the shop and the request and never a credential.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from bridge import wire
from bridge.errors import ShopAPIError
from bridge.luminous import USER_AGENT, retry_after_seconds

log = logging.getLogger("bridge.shop_api")

By = Literal["created", "updated"]

MAX_ATTEMPTS = 8  # per request: throttling and 5xx answers, then the run fails
_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
_SHOWN = 200  # characters of a shop's error message quoted
_REDACTED = "[redacted]"
_MIN_SECRET = 4

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ShopOrder:
    """One order as the shop's API returned it: the webhook's JSON, parsed exactly."""

    order_id: str
    updated_at: str  # as the shop writes it: part of a backfill's delivery key
    created: dt.datetime
    payload: dict[str, Any] = field(repr=False)

    @property
    def body(self) -> bytes:
        """The order's JSON, for an event (exact numbers and 64-bit ids kept)."""
        return wire.dumps(self.payload)


@dataclass(frozen=True)
class Window:
    """The orders a scan asks for: created (or updated) from `since` to `until`, inclusive."""

    since: dt.datetime
    until: dt.datetime | None = None
    by: By = "created"

    def __post_init__(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("a window's bounds must carry a time zone")
        if self.until is not None and self.until < self.since:
            raise ValueError("a window's end comes before its start")

    def holds(self, moment: dt.datetime) -> bool:
        return self.since <= moment and (self.until is None or moment <= self.until)


def utc_text(moment: dt.datetime) -> str:
    """`2026-11-02T10:00:00Z`: the one form both shops read the same (whole seconds, UTC)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, *, naive_is_utc: bool = False) -> dt.datetime | None:
    """An ISO-8601 time from an order; None when it is missing or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC) if naive_is_utc else None
    return moment


class Redactor:
    """Hides every credential a client holds from the text of its errors and logs."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= _MIN_SECRET:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
        return text


def shop_message(body: bytes) -> str:
    """What a shop's error answer says, in one short line (Shopify `errors`, Woo `message`)."""
    try:
        parsed = wire.loads(body)
    except wire.MalformedJSON:
        return ""
    said = parsed.get("errors", parsed.get("message")) if isinstance(parsed, dict) else None
    if isinstance(said, dict):
        said = "; ".join(f"{key}: {value}" for key, value in said.items())
    text = " ".join(str(said).split()) if said else ""
    return text[:_SHOWN]


class ShopClient(ABC):
    """One shop's order API over one pooled httpx client."""

    platform: str  # "Shopify", "WooCommerce": for people

    def __init__(
        self,
        shop: str,
        base_url: str,
        *,
        secrets: Iterable[str | None],
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.shop = shop
        self.base_url = base_url.rstrip("/")
        self.redact = Redactor(secrets)
        self.requests = 0  # sent, retries included: for progress and the summary
        self.throttled = 0  # of them answered 429
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @abstractmethod
    def pages(self, window: Window) -> AsyncIterator[list[ShopOrder]]:
        """The window's orders, one list per page, oldest first."""

    async def visibility(self) -> str | None:
        """A note on orders this shop hides from our credentials (Shopify's 60 days), if any."""
        return None

    # -- plumbing -------------------------------------------------------------------------

    async def _before(self) -> None:  # noqa: B027 - a hook: most platforms need no pacing
        """Wait, if needed, before a request (a leaky bucket's pace)."""

    def _after(self, response: httpx.Response) -> None:  # noqa: B027 - a hook, as above
        """Read what a response says about limits and versions."""

    async def _auth_headers(self, *, renew: bool) -> Mapping[str, str]:
        return {}

    @property
    def _renews(self) -> bool:
        """Whether a 401 may be cured by fetching a fresh token once."""
        return False

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        """GET with retries for throttling, 5xx and lost answers; a 2xx or `ShopAPIError`."""
        subject = f"{self.platform} shop {self.shop}: GET {httpx.URL(url).path}"
        renewed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._before()
            headers = await self._auth_headers(renew=False)
            self.requests += 1
            started = time.perf_counter()
            try:
                response = await self._http.get(url, params=params, headers=headers)
            except httpx.HTTPError as exc:
                cause = self.redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
                if attempt == MAX_ATTEMPTS:
                    raise ShopAPIError(f"{subject} failed: {cause}") from None
                await self._pause(attempt, None, f"{subject}: {cause}")
                continue
            log.debug(
                "%s -> %s in %.0f ms",
                subject,
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
            self._after(response)
            status = response.status_code
            if response.is_success:
                return response
            said = self.redact(shop_message(response.content))
            if status == 401 and self._renews and not renewed:
                renewed = True
                await self._auth_headers(renew=True)
                continue
            if status == 429 or status >= 500:
                if status == 429:
                    self.throttled += 1
                if attempt < MAX_ATTEMPTS:
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    await self._pause(attempt, wait, f"{subject}: {status}")
                    continue
            raise ShopAPIError(_refusal(subject, status, said), status=status)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pause(self, attempt: int, retry_after: float | None, why: str) -> None:
        delay = retry_after if retry_after is not None else _BACKOFF[attempt - 1]
        log.info("%s; trying again in %.1f s", why, delay)
        await self._sleep(delay)

    def parse_list(self, response: httpx.Response, key: str | None) -> list[Any]:
        """The orders of a list answer (`{"orders": […]}` or a bare array), parsed exactly."""
        try:
            body = wire.loads(response.content)
        except wire.MalformedJSON as exc:
            raise ShopAPIError(
                f"{self.platform} shop {self.shop} answered a list that is not JSON ({exc})"
            ) from None
        found = body.get(key) if key is not None and isinstance(body, dict) else body
        if not isinstance(found, list):
            raise ShopAPIError(
                f"{self.platform} shop {self.shop} answered something that is not a list of orders"
            )
        return found


def _refusal(subject: str, status: int, said: str) -> str:
    why = {
        401: "the shop refuses our API credentials",
        402: "the shop is frozen (unpaid)",
        403: "the API credentials lack a scope this needs (read_orders)",
        404: "not found: check the shop's api_url (and api_version)",
        429: "still throttled after several waits",
    }.get(status, "the shop's API failed")
    return f"{subject} answered {status}: {why}" + (f" ({said})" if said else "")
