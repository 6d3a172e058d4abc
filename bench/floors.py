"""The floors the bridge is measured against, served exactly as the bridge is served.

    python -m bench.floors bare --port P
    python -m bench.floors two-hop --port P --luminous http://127.0.0.1:S/external/api/v1

`bare` reads the body and answers 200. `two-hop` reads the delivery, sends one
`POST /invoices` with one pooled httpx client and answers the invoice id: the least any
webhook-to-invoice service can do. Both run under `bridge.server.serve`, so they share the
bridge's uvicorn settings and HTTP protocol class. `GET /healthz` answers 200 for start-up.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.config import ServerConfig
from bridge.server import serve, server_limits

# One line of a product the benchmark's sandbox is seeded with (tests.orders.seed).
INVOICE = {
    "company_id": 1,
    "order_date": "2026-01-15",
    "payment_terms": "Due on receipt",
    "items": [{"product_id": 100, "quantity": 1, "unit_price": 19.99}],
}


async def healthz(request: Request) -> Response:
    return Response("ok")


async def bare(request: Request) -> Response:
    await request.body()
    return Response("ok")


def bare_app() -> Starlette:
    return Starlette(
        routes=[Route("/healthz", healthz), Route("/webhooks/{source}", bare, methods=["POST"])]
    )


def two_hop_app(luminous: str) -> Starlette:
    client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        headers = {"Authorization": "Bearer bench-token"}
        async with httpx.AsyncClient(
            base_url=luminous, limits=limits, headers=headers, timeout=10
        ) as client:
            yield

    async def forward(request: Request) -> Response:
        await request.body()
        assert client is not None
        answer = await client.post("/invoices", json=INVOICE)
        answer.raise_for_status()
        return JSONResponse({"invoice_id": answer.json()["data"]["id"]}, status_code=201)

    routes = [Route("/healthz", healthz), Route("/webhooks/{source}", forward, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floors")
    parser.add_argument("kind", choices=["bare", "two-hop"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--luminous", default="")
    args = parser.parse_args()
    app = bare_app() if args.kind == "bare" else two_hop_app(args.luminous)
    serve(app, "127.0.0.1", args.port, server_limits(ServerConfig()))


if __name__ == "__main__":
    main()
