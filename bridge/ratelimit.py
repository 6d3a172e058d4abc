"""A client-side rate limit, so a backlog drains at a pace Luminous accepts.

Without it a queue of retries would all fire at once and come back as a storm of 429s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]

_ROUNDING = 1e-9


class RateLimiter:
    """A token bucket shared by every request of one client: `burst` at once, then `rate`/s.

    The clock and the sleep are injectable so tests can drive time instead of waiting for it.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._refilled_at = clock()
        # Waiters queue on the lock in arrival order; only the head of the queue sleeps, so
        # a cancelled waiter gives its turn back instead of taking a token with it.
        self._turn = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request fits in the rate, then take its token."""
        async with self._turn:
            while True:
                self._refill()
                # Rounding can leave a full wait one ulp short of a token; that counts as one.
                if self._tokens >= 1 - _ROUNDING:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._refilled_at = now
