"""Operator routes: events behind the admin token, and health, readiness and metrics."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import Settings
from bridge.errors import StoreError
from bridge.inputs import MAX_EVENT_ID, storable, whole_number
from bridge.responses import BridgeJSON, error
from bridge.store.base import REPLAYABLE, SCHEMA_VERSION, STATUSES, Event, Store
from bridge.worker import Worker

log = logging.getLogger("bridge.admin")

MAX_LISTED = 1000  # events in one `GET /events` answer


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def replay(store: Store, event: Event) -> Event | None:
    """Replay `event` as it was read; None when another change to it (a replay) came first."""
    try:
        return await store.replay(event.id)
    except StoreError:
        # The store refuses an event that is no longer dead or rejected; if it changed since
        # it was read, a concurrent request won the race. Anything else is a store failure.
        now = await store.get(event.id)
        if now is None or now.updated_at == event.updated_at:
            raise
        return None


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
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except StoreError as exc:
                log.error("admin %s: store unavailable: %s", request.url.path, exc)
                response = error(503, "unavailable", f"the store is unavailable: {exc}")
                response.headers["Retry-After"] = "30"
                return response

        return guarded

    async def healthz(self, request: Request) -> Response:
        # The container's HEALTHCHECK: a process whose worker loop died must be restarted.
        if not self.worker.alive:
            return BridgeJSON({"status": "worker loop stopped"}, status_code=503)
        return BridgeJSON({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """What stops the bridge from being ready; details only for the admin token."""
        problems: list[tuple[str, str | None]] = []
        try:
            await self.store.ping()
            version = await self.store.schema_version()
        except StoreError as exc:
            problems.append(("store unreachable", str(exc)))
        else:
            if version != SCHEMA_VERSION:
                behind = version is None or version < SCHEMA_VERSION
                problems.append(
                    (
                        "store schema behind" if behind else "store schema ahead",
                        f"the store's schema is {version}, this release needs {SCHEMA_VERSION}",
                    )
                )
        if self.worker.draining:
            problems.append(("draining", "shutting down"))
        if self.worker.paused:
            problems.append(("Luminous refuses the API token", self.worker.paused))
        if not self.worker.alive:
            problems.append(("worker loop stopped", None))
        elif self.worker.loop_error:
            problems.append(("worker loop failing and retrying", self.worker.loop_error))
        if not problems:
            return BridgeJSON({"status": "ready"})
        detailed = _authorized(request, self.settings.admin_token)
        shown = [f"{what}: {detail}" if detailed and detail else what for what, detail in problems]
        return BridgeJSON({"status": "not ready", "problems": shown}, status_code=503)

    async def metrics(self, request: Request) -> Response:
        try:
            counts = await self.store.counts()
        except StoreError as exc:
            log.error("metrics: events not counted, store unavailable: %s", exc)
            self.series.events.clear()  # absent rather than stale
        else:
            for status in STATUSES:
                self.series.events.labels(status).set(counts.get(status, 0))
        self.series.paused.set(1 if self.worker.paused else 0)
        return Response(generate_latest(self.series.registry), media_type=CONTENT_TYPE_LATEST)

    async def list_events(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status")
        if status and status not in STATUSES:
            return error(400, "bad_request", f"status must be one of {', '.join(STATUSES)}")
        for name in ("source", "order"):
            if not storable(query.get(name, "")):
                return error(400, "bad_request", f"{name} must not contain NUL characters")
        limit = whole_number(query.get("limit", "100"), 1, MAX_LISTED)
        if limit is None:
            return error(400, "bad_request", f"limit must be a whole number from 1 to {MAX_LISTED}")
        events = await self.store.list_events(
            status=status, source=query.get("source"), order=query.get("order"), limit=limit
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
        replayed = await replay(self.store, event)
        if replayed is None:
            return error(
                409, "not_replayable", f"event {event_id} changed while it was being replayed"
            )
        self.worker.kick(replayed.id)
        return BridgeJSON(replayed.summary(), status_code=202)
