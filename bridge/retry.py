"""When to try again: exponential backoff with full jitter, Luminous's `Retry-After` honoured.

An event gives up only when it has used its attempts *and* its age has passed `max_age`,
so an outage shorter than `max_age` (default 24 h) never kills an order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bridge.config import RetryConfig


@dataclass
class RetryPolicy:
    max_attempts: int = 25
    base_delay: float = 1.0
    max_delay: float = 300.0
    max_age: float = 86400.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        return cls(
            max_attempts=config.max_attempts,
            base_delay=config.base_delay,
            max_delay=config.max_delay,
            max_age=config.max_age,
        )

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `attempts`-th failure (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(max(attempts - 1, 0), 32))
        wait = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def gives_up(self, attempts: int, age: float) -> bool:
        """True once both the attempt budget and the age budget are spent."""
        return attempts >= self.max_attempts and age >= self.max_age
