"""The app factory: a lifespan that owns the store, the one Luminous client and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from bridge import openapi
from bridge.admin import Admin
from bridge.alerts import Alerts
from bridge.config import Settings
from bridge.errors import StoreError
from bridge.luminous import LuminousClient
from bridge.metrics import Metrics
from bridge.rekey import rekey_orders
from bridge.resolver import Resolver
from bridge.responses import error
from bridge.status import StatusLinks
from bridge.status_page import StatusPage
from bridge.store import Store, open_store
from bridge.sweep import Sweeps
from bridge.webhooks import WebhookEndpoint
from bridge.wire import dumps
from bridge.worker import Worker

log = logging.getLogger("bridge.app")

PURGE_INTERVAL = 3600.0
HEARTBEAT_INTERVAL = 5.0  # a worker silent for a few of these is taken as not running


@dataclass
class Runtime:
    """What the lifespan built, reachable from tests as `app.state.runtime`."""

    store: Store
    client: LuminousClient
    worker: Worker
    sweeps: Sweeps
    settings: Settings
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    openapi: bytes | None = None


async def _purge_forever(store: Store, retention_days: int) -> None:
    while True:
        try:
            purged = await store.purge_payloads(time.time() - retention_days * 86400)
            if purged:
                log.info("purged the payloads of %s finished events", purged)
        except StoreError as exc:
            log.error("payload purge failed: %s", exc)
        await asyncio.sleep(PURGE_INTERVAL)


async def _beat_forever(store: Store, worker: Worker) -> None:
    """Tell other commands (backfill --wait) that a worker is taking up events."""
    while True:
        if worker.alive and not worker.draining:
            try:
                await store.heartbeat()
            except StoreError as exc:
                log.warning("heartbeat not written: %s", exc)
        await asyncio.sleep(HEARTBEAT_INTERVAL)


async def _partner_schema(request: Request) -> Response:
    """The partner order format as JSON Schema, for partners to validate against."""
    from mappings.partner import SCHEMA_PATH

    return Response(SCHEMA_PATH.read_bytes(), media_type="application/schema+json")


async def _openapi(request: Request) -> Response:
    """This app's OpenAPI document: made on first use, from the routes it serves."""
    runtime: Runtime = request.app.state.runtime
    if runtime.openapi is None:
        runtime.openapi = dumps(openapi.document(runtime.settings, request.app.routes))
    return Response(runtime.openapi, media_type="application/json")


async def _not_found(request: Request, exc: Exception) -> Response:
    return error(404, "not_found", f"no route for {request.method} {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error(405, "method_not_allowed", f"{request.method} is not allowed here")


def create_app(
    settings: Settings,
    *,
    sandbox_routes: list[BaseRoute] | None = None,
    luminous_url: str | None = None,
    luminous_token: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    worker_options: dict[str, Any] | None = None,
) -> Starlette:
    """The bridge's ASGI app; `sandbox_routes` also serves the sandbox under its API path."""
    config = settings.config
    base_url = luminous_url or config.luminous.base_url
    token = luminous_token or settings.luminous_token
    if not base_url or not token:
        raise ValueError("the Luminous base URL and token are required (or run the sandbox)")
    store = open_store(config.store, create=True)
    metrics = Metrics()
    client = LuminousClient(
        base_url,
        token,
        timeout=config.luminous.timeout,
        max_concurrency=config.luminous.max_concurrency,
        max_requests_per_second=config.luminous.max_requests_per_second or None,
        transport=transport,
        on_answer=metrics.luminous_answered,
    )
    key_locks = getattr(store, "key_locks", None)  # a shared store locks across replicas
    resolver = Resolver(
        client,
        locks=key_locks() if key_locks else None,
        cache_size=config.luminous.cache_size,
        cache_ttl=config.luminous.cache_ttl,
        on_lookup=metrics.cache_lookup,
    )
    worker = Worker(
        settings, store, client, resolver=resolver, metrics=metrics, **(worker_options or {})
    )
    sweeps = Sweeps(settings, store, metrics, worker.owner, recorded=worker.kick)
    runtime = Runtime(store=store, client=client, worker=worker, sweeps=sweeps, settings=settings)
    links = StatusLinks(store)
    admin = Admin(settings, store, worker)
    page = StatusPage(settings, store, worker)
    webhooks = WebhookEndpoint(settings, store, worker, links)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.migrate()
        await rekey_orders(store, settings)
        await links.load()
        if settings.admin_token is None:
            log.warning(
                "no admin token (%s is not set): admin routes answer 404, the status page is off",
                config.server.admin_token_env,
            )
        worker.listener = store.listener(worker.wake, config.store.listen_poll_interval)
        if worker.listener is not None:
            runtime.tasks.append(asyncio.create_task(worker.listener.run()))
        if settings.alert_url:
            worker.alerts = Alerts(settings.alert_url, config.alerts.every)
            runtime.tasks.append(asyncio.create_task(worker.alerts.run()))
        worker.start()
        sweeps.start()
        runtime.tasks.append(
            asyncio.create_task(_purge_forever(store, config.store.retention_days))
        )
        runtime.tasks.append(asyncio.create_task(_beat_forever(store, worker)))
        log.info("bridge ready: sources %s, Luminous at %s", ", ".join(settings.sources), base_url)
        try:
            yield
        finally:
            log.info("draining: finishing work in flight (up to %ss)", config.server.drain_seconds)
            await sweeps.stop()
            await worker.stop(config.server.drain_seconds)
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            await client.aclose()
            await store.close()

    routes: list[BaseRoute] = [
        Route("/webhooks/{source}", webhooks.handle, methods=["POST"]),
        Route("/schemas/partner-order.json", _partner_schema, methods=["GET"]),
        *admin.routes(),
        *links.routes(),
        *page.routes(),
    ]
    if sandbox_routes is not None:
        routes.append(Mount("/external/api/v1", routes=sandbox_routes))
    routes.append(Route("/openapi.json", _openapi, methods=["GET"]))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.runtime = runtime
    return app
