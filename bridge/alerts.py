"""Alerts: one Slack-compatible message a minute at most when events go dead or rejected.

Configured by `[alerts] webhook_url_env`, the name of the variable that holds an incoming
webhook's URL (a secret: never logged). A message lists counts by source and status and a
few events with their order and a shortened reason, never a payload. Posting is best effort:
a receiver that fails or hangs only costs that batch, which is logged and dropped, so no
event ever waits on an alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bridge.store.base import Event

log = logging.getLogger("bridge.alerts")

SHOWN = 5  # events named in one message
REASON_CHARS = 120
TIMEOUT = 5.0


@dataclass
class Batch:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, event: Event, status: str, reason: str | None) -> None:
        self.counts[(event.source, status)] += 1
        if len(self.examples) < SHOWN:
            said = " ".join((reason or "").split())
            if len(said) > REASON_CHARS:
                said = said[: REASON_CHARS - 1] + "…"
            order = event.order_ref or "no order"
            self.examples.append(f"event {event.id} ({event.source} {order}) {status}: {said}")

    def text(self) -> str:
        total = sum(self.counts.values())
        parts = ", ".join(f"{n} {status} ({source})" for (source, status), n in self.counts.items())
        lines = [f"Luminous invoice bridge: {total} events need a person: {parts}", *self.examples]
        if total > len(self.examples):
            lines.append(f"… and {total - len(self.examples)} more (bridge events list)")
        return "\n".join(lines)


class Alerts:
    """Collects failures and posts them in batches, every `every` seconds at most."""

    def __init__(self, url: str, every: float, transport: httpx.AsyncBaseTransport | None = None):
        self._url = url
        self.every = every
        self._batch = Batch()
        self._client = httpx.AsyncClient(timeout=TIMEOUT, transport=transport)
        self.sent = 0

    def note(self, event: Event, status: str, reason: str | None) -> None:
        self._batch.add(event, status, reason)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.every)
                await self.flush()
        finally:
            await self.flush()
            await self._client.aclose()

    async def flush(self) -> None:
        batch, self._batch = self._batch, Batch()
        if not batch.counts:
            return
        try:
            answer = await self._client.post(self._url, json={"text": batch.text()})
        except httpx.HTTPError as exc:  # its message may hold the URL: only the kind is logged
            log.warning("alert not sent (%s); dropped", type(exc).__name__)
            return
        if answer.status_code >= 300:
            log.warning("alert refused with %s; dropped", answer.status_code)
            return
        self.sent += 1
