"""The sandbox that `bridge sandbox` serves, plus a count of the Luminous requests it answered.

Run as `python bench/counting_sandbox.py --port P [--seed F] [--latency MS]`; the counts are at
`GET /bench/requests`, keyed "METHOD /path status" with numeric IDs folded into `{id}`.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import wire
from bridge.sandbox import API_PREFIX, SandboxSettings, create_sandbox_app

COUNTS_PATH = "/bench/requests"
_ID = re.compile(r"/[0-9]+(?=/|$)")


class RequestCounter:
    """ASGI middleware: counts API requests by route and status, and serves the counts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            if path == COUNTS_PATH:
                await self._serve_counts(send)
                return
            await self.app(scope, receive, send)
            return
        route = f"{scope['method']} {_ID.sub('/{id}', path.removeprefix(API_PREFIX))}"

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counts[f"{route} {message['status']}"] += 1
            await send(message)

        await self.app(scope, receive, counting_send)

    async def _serve_counts(self, send: Send) -> None:
        body = wire.dumps(dict(sorted(self.counts.items())))
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--seed", type=Path)
    parser.add_argument("--latency", type=float, default=0, help="milliseconds per request")
    args = parser.parse_args()
    app = create_sandbox_app(SandboxSettings(seed=args.seed, latency_ms=args.latency))
    uvicorn.run(
        RequestCounter(app), host=args.host, port=args.port, log_config=None, access_log=False
    )


if __name__ == "__main__":
    main()
