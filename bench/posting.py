"""Signed Shopify deliveries, prepared ahead, posted by concurrent senders; what came back."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.http1 import Connection, request_bytes
from bridge.verify import SCHEMES
from bridge.wire import loads
from tests.orders import SKUS, body, shopify_order

SHOP = "acme.myshopify.com"
PRICES = ("4.99", "9.95", "12.50", "19.99", "24.00", "35.75")
FIRST_ORDER_ID = 6_100_000_000_000  # Shopify-sized IDs, past 2**32


@dataclass(frozen=True)
class Delivery:
    """One webhook post: exact bytes and the headers Shopify would send with them."""

    order_id: int
    content: bytes
    headers: dict[str, str]


def signed(content: bytes, order_id: int, delivery_id: str, secret: str) -> Delivery:
    headers = SCHEMES["shopify-hmac"].sign(
        content, secret, topic="orders/create", shop=SHOP, delivery_id=delivery_id
    )
    headers["Content-Type"] = "application/json"
    return Delivery(order_id, content, headers)


def new_orders(count: int, secret: str, rng: random.Random) -> list[Delivery]:
    """`count` distinct orders of one to five lines, each a first delivery."""
    deliveries = []
    for index in range(count):
        order_id = FIRST_ORDER_ID + index
        lines: list[tuple[str | None, int, str]] = [
            (rng.choice(SKUS), rng.randint(1, 3), rng.choice(PRICES))
            for _ in range(rng.randint(1, 5))
        ]
        order = shopify_order(order_id, lines=lines, number=1001 + index)
        # A thousand customers: with companies matched, some are new, most seen before.
        order["email"] = f"buyer-{index % 1000}@example.com"
        deliveries.append(signed(body(order), order_id, f"bench-{order_id}", secret))
    return deliveries


def with_repeats(originals: list[Delivery], share: float, rng: random.Random) -> list[Delivery]:
    """The originals in order, plus `share` of the posts being repeats of earlier deliveries.

    A repeat carries the same bytes and delivery ID (as a platform's retry does) and lands a
    little after its original, sometimes while the original is still being worked on.
    """
    repeats = round(len(originals) * share / (1 - share)) if share < 1 else 0
    spread = max(1.0, len(originals) * 0.05)
    keyed = [(float(index), delivery) for index, delivery in enumerate(originals)]
    for _ in range(repeats):
        index = rng.randrange(len(originals))
        keyed.append((index + rng.uniform(0.5, spread), originals[index]))
    keyed.sort(key=lambda pair: pair[0])
    return [delivery for _, delivery in keyed]


def redelivered(originals: list[Delivery], secret: str) -> list[Delivery]:
    """The same orders under new delivery IDs (another webhook subscription, a manual resend)."""
    return [signed(d.content, d.order_id, f"again-{d.order_id}", secret) for d in originals]


@dataclass
class Outcome:
    """What a batch of posts got back, and how long each answer took."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # "201 created", "200 duplicate", …

    def count(self, code: int) -> int:
        return sum(n for answer, n in self.answers.items() if answer.startswith(f"{code} "))

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _describe(status: int, content: bytes) -> str:
    try:
        parsed = loads(content)
    except ValueError:
        return f"{status} unreadable"
    if not isinstance(parsed, dict):
        return f"{status} not an object"
    kind = "duplicate" if parsed.get("duplicate") else parsed.get("status", parsed.get("error"))
    return f"{status} {kind}"


async def post_all(host: str, port: int, deliveries: list[Delivery], concurrency: int) -> Outcome:
    """Post every delivery in order with `concurrency` senders; time each answer."""
    outcome = Outcome()
    where = f"{host}:{port}"
    requests = [request_bytes(where, "/webhooks/shopify", d.content, d.headers) for d in deliveries]
    pending = iter(requests)

    async def sender() -> None:
        connection = await Connection.open(host, port)
        try:
            for request in pending:
                started = time.perf_counter()
                status, content = await connection.exchange(request)
                outcome.latencies.append(time.perf_counter() - started)
                outcome.answers[_describe(status, content)] += 1
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    outcome.seconds = time.perf_counter() - started
    return outcome
