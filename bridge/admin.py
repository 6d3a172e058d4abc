"""Operator routes: events behind the admin token, and health, readiness and metrics."""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import Settings
from bridge.errors import StoreError
from bridge.responses import BridgeJSON, error
from bridge.store.base import REPLAYABLE, SCHEMA_VERSION, STATUSES, Store
from bridge.worker import Worker

MAX_EVENT_ID = 2**63 - 1  # the store's integer keys are signed 64-bit


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def event_view(store: Store, event_id: int) -> dict[str, Any] | None:
    """An event's summary with its history, as `GET /events/{id}` and `bridge events show`."""
    event = await store.get(event_id)
    if event is None:
        return None
    view = event.summary()
    view["history"] = [attempt.as_dict() for attempt in await store.history(event_id)]
    return view


class Admin:
    """The routes an operator and an orchestrator use."""

    def __init__(self, settings: Settings, store: Store, worker: Worker) -> None:
        self.settings = settings
        self.store = store
        self.worker = worker
        self.series = worker.metrics

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/events", self._admin(self.list_events), methods=["GET"]),
            Route("/events/{event_id:int}", self._admin(self.show_event), methods=["GET"]),
            Route(
                "/events/{event_id:int}/replay", self._admin(self.replay_event), methods=["POST"]
            ),
        ]

    def _admin(self, handler: Any) -> Any:
        token = self.settings.admin_token

        async def guarded(request: Request) -> Response:
            if token is None:
                return error(404, "not_found", "admin routes are off: no admin token configured")
            if not _authorized(request, token):
                return error(
                    401, "unauthorized", "admin routes need 'Authorization: Bearer <admin token>'"
                )
            return await handler(request)  # type: ignore[no-any-return]

        return guarded

    async def healthz(self, request: Request) -> Response:
        # The container's HEALTHCHECK: a process whose worker loop died must be restarted.
        if not self.worker.alive:
            return BridgeJSON(
                {"status": "unhealthy", "problems": ["the worker loop has stopped"]},
                status_code=503,
            )
        return BridgeJSON({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        problems = []
        try:
            await self.store.ping()
            version = await self.store.schema_version()
            if version != SCHEMA_VERSION:
                problems.append(f"store schema is {version}, this release needs {SCHEMA_VERSION}")
        except StoreError as exc:
            problems.append(f"store unreachable: {exc}")
        if self.worker.draining:
            problems.append("draining: shutting down")
        if self.worker.paused:
            problems.append(self.worker.paused)
        if not self.worker.alive:
            problems.append("the worker loop has stopped")
        elif self.worker.loop_error:
            problems.append(f"the worker loop is failing and retrying: {self.worker.loop_error}")
        if problems:
            return BridgeJSON({"status": "not ready", "problems": problems}, status_code=503)
        return BridgeJSON({"status": "ready"})

    async def metrics(self, request: Request) -> Response:
        counts = await self.store.counts()
        for status in STATUSES:
            self.series.events.labels(status).set(counts.get(status, 0))
        self.series.paused.set(1 if self.worker.paused else 0)
        return Response(generate_latest(self.series.registry), media_type=CONTENT_TYPE_LATEST)

    async def list_events(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status")
        if status and status not in STATUSES:
            return error(400, "bad_request", f"status must be one of {', '.join(STATUSES)}")
        limit = query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return error(400, "bad_request", "limit must be a whole number from 1 to 1000")
        events = await self.store.list_events(
            status=status, source=query.get("source"), order=query.get("order"), limit=int(limit)
        )
        return BridgeJSON({"data": [event.summary() for event in events]})

    async def show_event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        view = await event_view(self.store, event_id) if event_id <= MAX_EVENT_ID else None
        if view is None:
            return error(404, "not_found", "no such event")
        return BridgeJSON(view)

    async def replay_event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        event = await self.store.get(event_id) if event_id <= MAX_EVENT_ID else None
        if event is None:
            return error(404, "not_found", "no such event")
        if event.status not in REPLAYABLE:
            return error(
                409,
                "not_replayable",
                f"event {event_id} is {event.status}; only dead or rejected events replay",
            )
        event = await self.store.replay(event_id)
        self.worker.kick(event.id)
        return BridgeJSON(event.summary(), status_code=202)
