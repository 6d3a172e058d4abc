"""Operator routes: events behind the admin token, and health, readiness and metrics."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import Settings
from bridge.errors import InputError, StoreError
from bridge.finding import Asked, BadFilter, event_filter
from bridge.inputs import MAX_EVENT_ID, storable, whole_number
from bridge.logs import transition
from bridge.responses import BridgeJSON, error
from bridge.store.base import (
    DISMISSABLE,
    DISMISSED,
    RECEIVED,
    REPLAYABLE,
    SCHEMA_VERSION,
    STATUSES,
    Event,
    Store,
)
from bridge.wire import MalformedJSON, loads
from bridge.worker import Worker

log = logging.getLogger("bridge.admin")

MAX_LISTED = 1000  # events in one `GET /events` answer
MAX_REASON = 1000  # characters of a dismissal's reason


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def _unless_raced(
    store: Store, event: Event, change: Callable[[], Awaitable[Event]]
) -> Event | None:
    """`change` applied to `event` as it was read; None when another change came first."""
    try:
        return await change()
    except StoreError:
        # The store refuses an event no longer in a state the change applies to; if it
        # changed since it was read, a concurrent request won the race. Anything else is a
        # store failure.
        now = await store.get(event.id)
        if now is None or now.updated_at == event.updated_at:
            raise
        return None


async def replay(store: Store, event: Event) -> Event | None:
    """Replay `event` as it was read; None when another change to it (a replay) came first."""
    replayed = await _unless_raced(store, event, lambda: store.replay(event.id))
    if replayed is not None:
        transition(log, replayed, RECEIVED, replayed_from=str(event.status))
    return replayed


async def dismiss(store: Store, event: Event, reason: str) -> Event | None:
    """Dismiss `event` as it was read; None when another change to it came first."""
    dismissed = await _unless_raced(store, event, lambda: store.dismiss(event.id, reason))
    if dismissed is not None:
        transition(log, dismissed, DISMISSED, reason=reason, was=str(event.status))
    return dismissed


class Refused(InputError):
    """An operator's action that does not apply to the event: 404 unknown, 409 wrong state."""


async def _actionable(store: Store, event_id: int, states: frozenset[str], code: str) -> Event:
    event = await store.get(event_id) if 0 < event_id <= MAX_EVENT_ID else None
    if event is None:
        raise Refused(404, "not_found", "no such event")
    if event.status not in states:
        allowed = ", ".join(state for state in STATUSES if state in states)
        raise Refused(409, code, f"event {event_id} is {event.status}; only {allowed} can be")
    return event


async def replay_by_id(store: Store, worker: Worker, event_id: int) -> Event:
    """Replay a dead, rejected or dismissed event and wake a worker for it; `Refused` if not."""
    event = await _actionable(store, event_id, REPLAYABLE, "not_replayable")
    replayed = await replay(store, event)
    if replayed is None:
        raise Refused(409, "not_replayable", f"event {event_id} changed while being replayed")
    worker.kick(replayed.id)
    return replayed


async def dismiss_by_id(store: Store, worker: Worker, event_id: int, reason: str) -> Event:
    """Dismiss a dead or rejected event, counted in the metrics; `Refused` if not."""
    event = await _actionable(store, event_id, DISMISSABLE, "not_dismissable")
    dismissed = await dismiss(store, event, reason)
    if dismissed is None:
        raise Refused(409, "not_dismissable", f"event {event_id} changed while being dismissed")
    worker.metrics.outcomes.labels(event.source, DISMISSED).inc()
    return dismissed


async def event_view(store: Store, event_id: int) -> dict[str, Any] | None:
    """An event's summary with its whole history and the invoice request it sent, as
    `GET /events/{id}` and `bridge events show` show it."""
    event = await store.get(event_id)
    if event is None:
        return None
    view = event.summary()
    view["request_sent"] = loads(event.sent_request) if event.sent_request else None
    view["history"] = [attempt.as_dict() for attempt in await store.history(event_id)]
    return view


def dismissal_reason(value: object) -> str:
    """The reason given for a dismissal: text a person wrote, checked; `BadFilter` if not."""
    if not isinstance(value, str) or not value.strip():
        raise BadFilter("a dismissal needs a reason: what was done instead, in a few words")
    if not storable(value) or len(value) > MAX_REASON:
        raise BadFilter(f"the reason must be UTF-8 text without NUL, at most {MAX_REASON} long")
    return " ".join(value.split())


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
            Route(
                "/events/{event_id:int}/dismiss",
                self._admin(self.dismiss_event),
                methods=["POST"],
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
            except BadFilter as exc:
                return error(400, "bad_request", str(exc))
            except Refused as exc:
                return error(exc.status, exc.code, exc.message)
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
        await self.series.read_store(self.store)  # cached; never raises, never waits long
        self.series.paused.set(1 if self.worker.paused else 0)
        return Response(generate_latest(self.series.registry), media_type=CONTENT_TYPE_LATEST)

    async def list_events(self, request: Request) -> Response:
        """Newest first; `next_before` is the cursor of the next page (None on the last)."""
        query = request.query_params
        limit = whole_number(query.get("limit", "100"), 1, MAX_LISTED)
        if limit is None:
            return error(400, "bad_request", f"limit must be a whole number from 1 to {MAX_LISTED}")
        flagged = query.get("flagged", "false").lower()
        if flagged not in ("true", "false", "1", "0"):
            return error(400, "bad_request", "flagged must be true or false")
        asked = Asked(
            status=query.get("status") or None,
            source=query.get("source") or None,
            shop=query.get("shop") or None,
            order=query.get("order") or None,
            text=query.get("q") or None,
            since=query.get("since") or None,
            until=query.get("until") or None,
            before=query.get("before") or None,
            flagged=flagged in ("true", "1"),
        )
        where = await event_filter(self.settings, self.store, asked)
        events = await self.store.list_events(where=where, limit=limit)
        more = len(events) == limit
        return BridgeJSON(
            {
                "data": [event.summary() for event in events],
                "next_before": events[-1].id if more else None,
            }
        )

    async def show_event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        view = await event_view(self.store, event_id) if event_id <= MAX_EVENT_ID else None
        if view is None:
            return error(404, "not_found", "no such event")
        return BridgeJSON(view)

    async def replay_event(self, request: Request) -> Response:
        replayed = await replay_by_id(self.store, self.worker, request.path_params["event_id"])
        return BridgeJSON(replayed.summary(), status_code=202)

    async def dismiss_event(self, request: Request) -> Response:
        try:
            body = loads(await request.body())
        except MalformedJSON as exc:
            return error(400, "bad_request", f'the body must be JSON {{"reason": …}}: {exc}')
        reason = dismissal_reason(body.get("reason") if isinstance(body, dict) else None)
        event_id = request.path_params["event_id"]
        dismissed = await dismiss_by_id(self.store, self.worker, event_id, reason)
        return BridgeJSON(dismissed.summary())
