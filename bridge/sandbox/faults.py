"""Fault injection: latency, server errors, throttling, and answers lost after a commit.

Faults are drawn from `random.Random(fault_seed)`, so a seed repeats the same sequence for
the same sequence of requests. Errors and throttling answer before any work is done; a
timeout-after-commit happens only once an invoice was stored.

A dropped answer sends the response's status line and headers, then raises
`ConnectionDropped`: uvicorn closes the socket mid-response (logging the exception), so the
client sees a broken connection instead of a body; under an in-process ASGI transport the
exception reaches the client directly. Raising before the headers would not do: uvicorn
answers that with a well-formed 500.
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bridge.sandbox.endpoint import message
from bridge.sandbox.settings import SandboxSettings

SERVER_ERRORS = {500: "Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
FAULT_NAMES = ("delayed", "http_500", "http_502", "http_503", "throttled", "stalled", "dropped")


class ConnectionDropped(Exception):
    """Raised mid-response so the server drops the connection without an answer."""


AfterCommit = Literal["stall", "drop"]


class FaultInjector:
    """Decides, request by request, which fault to inject, and counts what it injected."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.random = random.Random(settings.fault_seed)
        self.counts: dict[str, int] = dict.fromkeys(FAULT_NAMES, 0)

    async def delay(self) -> None:
        if self.settings.latency_ms > 0:
            self.counts["delayed"] += 1
            await asyncio.sleep(self.settings.latency_ms / 1000)

    def refusal(self) -> Response | None:
        """A 5xx or 429 to answer instead of doing the work, or None to go ahead."""
        settings = self.settings
        if settings.fail_rate and self.random.random() < settings.fail_rate:
            status = self.random.choice(sorted(SERVER_ERRORS))
            self.counts[f"http_{status}"] += 1
            return message(status, f"{SERVER_ERRORS[status]}.")
        if settings.throttle_rate and self.random.random() < settings.throttle_rate:
            self.counts["throttled"] += 1
            retry_after = self.random.randint(1, 3)
            return message(429, "Too Many Attempts.", {"Retry-After": str(retry_after)})
        return None

    def after_commit(self, *, drop_share: float) -> AfterCommit | None:
        """Whether to hold or drop the answer of an invoice just stored; None to answer."""
        rate = self.settings.timeout_after_commit_rate
        if not rate or self.random.random() >= rate:
            return None
        if self.random.random() < drop_share:
            self.counts["dropped"] += 1
            return "drop"
        self.counts["stalled"] += 1
        return "stall"


class DroppedResponse(Response):
    """Starts the answer, then breaks the connection before the body."""

    def __init__(self, answered: Response) -> None:
        super().__init__(status_code=answered.status_code)
        self.answered = answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.answered.status_code,
                "headers": self.answered.raw_headers,
            }
        )
        raise ConnectionDropped("the sandbox dropped this answer after storing the invoice")
