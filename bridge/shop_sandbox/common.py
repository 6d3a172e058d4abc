"""What both shop stand-ins share: their settings, faults, leaky bucket and request log."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge import wire

STATS_PATH = "/_sandbox/stats"
ORDERS_PATH = "/_sandbox/orders"  # GET every order held; POST one to add or change it


@dataclass(frozen=True)
class ShopSandboxSettings:
    """Everything `bridge shop-sandbox` takes as flags; rates are shares of requests."""

    orders: Path | None = None
    generate: int = 0
    days: float = 3.0  # generated orders are spread over this many days before now
    token: str | None = None  # Shopify: the only static token accepted (else any)
    client_id: str = "sandbox-client"  # Shopify: the app the client credentials grant knows
    client_secret: str = "sandbox-secret"
    token_lifetime: float = 86400.0  # Shopify: seconds a granted token lives
    scopes: tuple[str, ...] = ("read_orders",)  # no read_all_orders: the 60-day window
    bucket_size: int = 40  # Shopify's standard plan: 40 calls, leaking 2 a second
    leak_rate: float = 2.0
    key: str = "ck_sandbox"  # WooCommerce consumer key and secret
    secret: str = "cs_sandbox"
    site_url: str | None = None  # WooCommerce: the site its orders' _links name
    latency_ms: float = 0
    fail_rate: float = 0
    throttle_rate: float = 0
    fault_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.orders is not None and self.generate:
            raise ValueError("give --orders or --generate, not both")
        if self.generate < 0 or self.bucket_size < 1 or self.leak_rate <= 0:
            raise ValueError("--generate, --bucket-size and --leak-rate must be positive")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.dumps(body), status, headers, media_type="application/json")


class Bucket:
    """The server side of Shopify's leaky bucket: `size` calls, leaking `rate` a second."""

    def __init__(self, size: int, rate: float, clock: Callable[[], float] = time.monotonic):
        self.size, self.rate, self._clock = size, rate, clock
        self._level, self._at = 0.0, clock()

    def _leak(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.rate)
        self._at = now

    def take(self) -> bool:
        """Count one call; False (and nothing counted) when the bucket is full."""
        self._leak()
        if self._level + 1 > self.size:
            return False
        self._level += 1
        return True

    @property
    def used(self) -> int:
        self._leak()
        return min(self.size, int(-(-self._level // 1)))  # rounded up, as Shopify shows it


class Faults:
    """Latency, 5xx and throttling, drawn from a seeded random sequence."""

    def __init__(self, settings: ShopSandboxSettings) -> None:
        self.settings = settings
        self.random = random.Random(settings.fault_seed)
        self.counts: Counter[str] = Counter()

    async def delay(self) -> None:
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)

    def server_error(self) -> int | None:
        rate = self.settings.fail_rate
        if rate and self.random.random() < rate:
            status = self.random.choice((500, 502, 503))
            self.counts[f"http_{status}"] += 1
            return status
        return None

    def throttled(self) -> bool:
        rate = self.settings.throttle_rate
        hit = bool(rate) and self.random.random() < rate
        if hit:
            self.counts["throttled"] += 1
        return hit


class RequestLog:
    """What each API request was answered, for tests that read the pace from outside."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.recent: list[tuple[float, str, int]] = []

    def add(self, request: Request, status: int) -> None:
        self.statuses[status] += 1
        self.recent.append((time.time(), request.url.path, status))
        del self.recent[:-5000]

    def stats(self, faults: Faults, orders: int) -> dict[str, Any]:
        return {
            "orders": orders,
            "requests": sum(self.statuses.values()),
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            "faults": dict(faults.counts),
        }
