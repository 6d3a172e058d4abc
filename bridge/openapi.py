"""The OpenAPI 3.1 document of the bridge's own HTTP API, served at `/openapi.json`.

The answer bodies are pydantic models of what the routes return (`Event.summary()`, the
webhook answers, the error shape), and the bounds come from the constants the routes check
(`MAX_LISTED`, `MAX_REASON`, `MAX_EVENT_ID`, the statuses), so the document and the code
hold one copy of each rule. The partner order format is embedded from its JSON Schema file.
Only routes the app really serves are described; `tests/test_openapi.py` checks that every
one of them is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from bridge.admin import MAX_LISTED, MAX_REASON
from bridge.config import Settings
from bridge.inputs import MAX_EVENT_ID
from bridge.store.base import CREATED, FINISHED, STATUSES, UNFINISHED, Status
from bridge.verify import SCHEMES

_REF = "#/components/schemas/{model}"
EventId = Annotated[int, Field(ge=1, le=MAX_EVENT_ID)]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _only(chosen: Iterable[Status]) -> WithJsonSchema:
    """In the document, narrow `Status` to the states a route can answer with."""
    return WithJsonSchema({"enum": [str(s) for s in STATUSES if s in chosen]})


Pending = Annotated[Status, _only(UNFINISHED)]
NotInvoiced = Annotated[Status, _only(FINISHED - {CREATED})]


class Problem(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """What every refusal says: a code for programs, a message for people."""

    error: str
    message: str
    details: list[Problem] | None = None


class EventSummary(BaseModel):
    """An event without its payload (`Event.summary()`)."""

    event_id: EventId
    source: str
    shop: str | None
    topic: str | None
    status: Status
    order_id: str | None
    order_name: str | None
    invoice_id: int | None
    duplicate_of: EventId | None
    reason: str | None
    details: list[Problem] | None
    attempts: int
    retries: int
    generation: int
    possible_duplicate: str | None
    extra_invoice_ids: list[int] | None
    received_at: Time
    updated_at: Time
    next_attempt_at: Time | None
    payload_kept: bool


class AttemptView(BaseModel):
    """One step of an event's history (`Attempt.as_dict()`)."""

    number: int
    at: Time
    outcome: str
    detail: str | None
    delay: float | None


class EventView(EventSummary):
    """`GET /events/{id}`: the summary, the invoice request sent, every attempt."""

    request_sent: dict[str, Any] | None
    history: list[AttemptView]


class EventList(BaseModel):
    """A page of events, newest first; `next_before` is the next page's cursor."""

    data: list[EventSummary]
    next_before: EventId | None


class SenderStatus(BaseModel):
    """What a sender's status URL shows: no more than the sender may know."""

    event_id: EventId
    status: Status
    invoice_id: int | None
    reason: str | None


class Dismissal(BaseModel):
    """`POST /events/{id}/dismiss`: why the event needs no more work."""

    reason: Annotated[
        str,
        Field(min_length=1, max_length=MAX_REASON, pattern=r"^[^\u0000]*[^\s\u0000][^\u0000]*$"),
    ]


class Invoiced(BaseModel):
    """201 (new) or 200 (`duplicate`: a repeat, or an order that already has an invoice)."""

    event_id: EventId
    status: Literal["created"]
    invoice_id: int | None
    duplicate: Literal[True] | None = None


class StillWorking(BaseModel):
    """202: not finished within `respond_within`; `status_url` tells the sender later."""

    event_id: EventId
    status: Pending
    status_url: str


class NotInvoicedAnswer(BaseModel):
    """200: not invoiced, and why (a tagged event names the invoice it tagged)."""

    event_id: EventId
    status: NotInvoiced
    reason: str | None
    invoice_id: int | None = None
    duplicate: Literal[True] | None = None


class Ping(BaseModel):
    """200: WooCommerce's unsigned ping when a webhook is saved."""

    status: Literal["ping"]
    message: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    """`problems` name what stops the bridge; details only with the admin token."""

    status: Literal["ready", "not ready"]
    problems: list[str] | None = None


MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    EventList,
    EventView,
    SenderStatus,
    Dismissal,
    Invoiced,
    StillWorking,
    NotInvoicedAnswer,
    Ping,
    Health,
    Readiness,
)


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": _REF.format(model=model if isinstance(model, str) else model.__name__)}


def _answer(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {media: {"schema": schema}}
    return answer


def _refused(description: str) -> dict[str, Any]:
    return _answer(description, _ref(ErrorBody))


def _one_of(*models: type[BaseModel]) -> dict[str, Any]:
    return {"oneOf": [_ref(model) for model in models]}


# What the status page's buttons post (bridge/status_page.py checks each field).
_STATUS_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["event_id", "action", "nonce", "csrf"],
    "properties": {
        "event_id": {"type": "string"},
        "action": {"type": "string", "enum": ["replay", "dismiss"]},
        "reason": {"type": "string"},
        "nonce": {"type": "string"},
        "csrf": {"type": "string"},
    },
}
_UNAVAILABLE = _refused("the store is unavailable; try again after Retry-After")
_ADMIN_REFUSED = {
    "401": _refused("no or a wrong admin token"),
    "404": _refused("no such event, or admin routes are off (no admin token configured)"),
    "503": _UNAVAILABLE,
}
_EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _text() -> dict[str, Any]:
    return {"type": "string", "pattern": r"^[^\u0000]*$"}


def _events_query(settings: Settings) -> list[dict[str, Any]]:
    return [
        _query("status", {"enum": [str(s) for s in STATUSES]}, "only events in this state"),
        _query("source", {"enum": list(settings.sources)}, "only events of this source"),
        _query("shop", _text(), "only events of this shop"),
        _query(
            "order",
            _text(),
            "an order's id, name (with or without #), PO number, customer e-mail, invoice id "
            "or SKU",
        ),
        _query("q", _text(), "any part of an order's search keys or of the reason"),
        _query("since", _text(), "received at or after: an ISO time or an age such as 2h"),
        _query("until", _text(), "received before: an ISO time or an age such as 2h"),
        _query(
            "before",
            {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID},
            "the cursor: `next_before` of the previous page",
        ),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LISTED, "default": 100},
            "events on one page",
        ),
        _query("flagged", {"type": "boolean", "default": False}, "only possible duplicates"),
    ]


def _webhook(settings: Settings, name: str) -> dict[str, Any]:
    source = settings.sources[name]
    scheme = SCHEMES[source.scheme]
    # The headers this source's senders attach, as the scheme's own signer writes them.
    signed = scheme.sign(b"{}", "secret", topic="topic", shop="shop", delivery_id="id")
    headers = [name.lower() for name in signed if name.lower() != "authorization"]
    body = _ref("PartnerOrder") if source.mapping.name == "partner" else {"type": "object"}
    content: dict[str, Any] = {"application/json": {"schema": body}}
    if source.scheme == "woocommerce-hmac":
        content["application/x-www-form-urlencoded"] = {
            "schema": {"type": "object", "properties": {"webhook_id": {"type": "string"}}}
        }
    answers: dict[str, Any] = {
        "200": _answer(
            "a repeat, not invoiced, or a ping", _one_of(Invoiced, NotInvoicedAnswer, Ping)
        ),
        "201": _answer("the invoice was created", _ref(Invoiced)),
        "202": _answer("still working after respond_within", _ref(StillWorking)),
        "400": _refused("malformed JSON or Content-Length"),
        "401": _refused("a bad or missing signature"),
        "403": _refused("the shop is not accepted, or contradicts the signed bytes"),
        "408": _refused("the body did not arrive in time"),
        "413": _refused("the body is over server.max_body_bytes"),
        "415": _refused("not JSON in UTF-8"),
        "503": _UNAVAILABLE,
    }
    if source.strict_answers:
        answers["422"] = _refused("rejected or dead, with every field that is wrong")
    return _operation(
        "post",
        f"deliver_{name}",
        f"A delivery from source {name!r} (mapping {source.mapping.name})",
        answers,
        tags=["webhooks"],
        parameters=[
            {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
            for header in headers
        ],
        requestBody={"required": True, "content": content},
    )


def _operation(
    method: str, name: str, summary: str, responses: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """A path item with one operation."""
    return {method: {"summary": summary, "operationId": name, **more, "responses": responses}}


def _admin(method: str, name: str, summary: str, responses: dict[str, Any], **more: Any) -> Any:
    answers = {**responses, **_ADMIN_REFUSED}
    return _operation(
        method, name, summary, answers, tags=["admin"], security=[{"bearerAuth": []}], **more
    )


def _describe(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every path the bridge can serve, as OpenAPI path items."""
    paths: dict[str, dict[str, Any]] = {
        f"/webhooks/{name}": _webhook(settings, name) for name in settings.sources
    }
    paths["/healthz"] = _operation(
        "get",
        "healthz",
        "Liveness: the process and its worker loop are alive",
        {
            "200": _answer("alive", _ref(Health)),
            "503": _answer("the worker loop stopped: restart me", _ref(Health)),
        },
    )
    paths["/readyz"] = _operation(
        "get",
        "readyz",
        "Readiness: store reachable and current, not draining, token accepted",
        {
            "200": _answer("ready", _ref(Readiness)),
            "503": _answer("not ready, and why", _ref(Readiness)),
        },
    )
    paths["/metrics"] = _operation(
        "get",
        "metrics",
        "Prometheus metrics",
        {"200": _answer("the metrics", {"type": "string"}, "text/plain")},
    )
    paths["/openapi.json"] = _operation(
        "get", "openapi", "This document", {"200": _answer("OpenAPI 3.1", {"type": "object"})}
    )
    paths["/schemas/partner-order.json"] = _operation(
        "get",
        "partner_schema",
        "The partner order format as JSON Schema",
        {"200": _answer("JSON Schema 2020-12", {"type": "object"}, "application/schema+json")},
    )
    paths["/events"] = _admin(
        "get",
        "list_events",
        "Find events, newest first",
        {
            "200": _answer("a page of events", _ref(EventList)),
            "400": _refused("a filter names nothing the bridge knows"),
        },
        parameters=_events_query(settings),
    )
    paths["/events/{event_id}"] = _admin(
        "get",
        "show_event",
        "One event, its invoice request and its whole history",
        {"200": _answer("the event", _ref(EventView))},
        parameters=[_EVENT_ID],
    )
    paths["/events/{event_id}/replay"] = _admin(
        "post",
        "replay_event",
        "Put a dead, rejected or dismissed event back to work",
        {
            "202": _answer("replayed: the event is received again", _ref(EventSummary)),
            "409": _refused("the event is not dead, rejected or dismissed"),
        },
        parameters=[_EVENT_ID],
    )
    paths["/events/{event_id}/dismiss"] = _admin(
        "post",
        "dismiss_event",
        "Mark a dead or rejected event as handled by hand",
        {
            "200": _answer("dismissed", _ref(EventSummary)),
            "400": _refused("no reason, or not JSON"),
            "409": _refused("the event is not dead or rejected"),
        },
        parameters=[_EVENT_ID],
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": _ref(Dismissal)}},
        },
    )
    token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
    paths["/status/{event_id}/{token}"] = _operation(
        "get",
        "sender_status",
        "A sender's status URL (from a 202): status, invoice id and reason",
        {
            "200": _answer("the event's state", _ref(SenderStatus)),
            "404": _refused("no such event, or a wrong token (told apart by nobody)"),
            "503": _UNAVAILABLE,
        },
        tags=["webhooks"],
        parameters=[_EVENT_ID, token],
    )
    page_refused = {
        "401": _refused("no or a wrong admin token"),
        "404": _refused("no admin token configured"),
    }
    html = {"type": "string"}
    paths["/"] = {
        **_operation(
            "get",
            "status_page",
            "The status page for people (HTTP Basic: any user, the admin token)",
            {
                "200": _answer("the page", html, "text/html"),
                "503": _answer("the page, saying the store is unreachable", html, "text/html"),
                **page_refused,
            },
            security=[{"basicAuth": []}],
        ),
        **_operation(
            "post",
            "status_page_act",
            "The status page's replay and dismiss buttons (a form with its CSRF token)",
            {
                "303": _answer("done or refused: back to the page, with a notice"),
                "400": _refused("no event id, or an action other than replay or dismiss"),
                "403": _refused("a stale form, or one not from the status page"),
                "413": _refused("the form is too large"),
                **page_refused,
            },
            security=[{"basicAuth": []}],
            requestBody={
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": _STATUS_FORM},
                },
            },
        ),
    }
    return paths


def route_paths(routes: Iterable[BaseRoute], settings: Settings) -> set[str]:
    """The OpenAPI paths of `routes` (`{event_id:int}` as `{event_id}`, one webhook path per
    source); mounts, such as the sandbox's, are not the bridge's own API."""
    paths: set[str] = set()
    for route in routes:
        if not isinstance(route, Route):
            continue
        if route.path == "/webhooks/{source}":
            paths.update(f"/webhooks/{name}" for name in settings.sources)
        else:
            paths.add(route.path.replace(":int}", "}"))
    return paths


def partner_schema() -> dict[str, Any]:
    """The partner order's JSON Schema, its `#/$defs/…` references pointed at its new place."""
    from mappings.partner import SCHEMA

    here = _REF.format(model="PartnerOrder")

    def moved(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: here + value[1:] if key == "$ref" and value.startswith("#/") else moved(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [moved(item) for item in node]
        return node

    schema: dict[str, Any] = moved(copy.deepcopy(SCHEMA))
    return schema


def document(settings: Settings, routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of the routes the app serves, for this configuration."""
    served = route_paths(routes, settings)
    _, definitions = models_json_schema(
        [(model, "serialization") for model in MODELS], ref_template=_REF
    )
    schemas = {**definitions["$defs"], "PartnerOrder": partner_schema()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Luminous invoice bridge",
            "version": _version(),
            "description": "Order webhooks in, one Luminous invoice per order out.",
        },
        "paths": {path: item for path, item in _describe(settings).items() if path in served},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            },
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("luminous-invoice-bridge")
    except PackageNotFoundError:
        return "0"
