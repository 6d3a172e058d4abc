"""HTTP plumbing shared by the sandbox's routes: exact JSON, method dispatch, refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from bridge import wire

Handler = Callable[[Request], Awaitable[Response]]


class WireJSONResponse(JSONResponse):
    """JSON written by `bridge.wire`, so a `Decimal` goes out as an exact number."""

    def render(self, content: Any) -> bytes:
        return wire.dumps(content)


def answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return WireJSONResponse(body, status_code=status, headers=headers)


def message(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    """The `{"message": ...}` body Luminous answers errors with."""
    return answer(status, {"message": text}, headers)


class Refused(Exception):
    """A request answered with an error status and a message, before any change was made."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(text)

    def response(self) -> Response:
        return message(self.status, self.text)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, numbers exact; refuse anything else."""
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.split(";")[0].lower():
        raise Refused(415, "The request body must be JSON (Content-Type: application/json).")
    try:
        body = wire.loads(await request.body())
    except wire.MalformedJSON as exc:
        raise Refused(400, f"Malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Refused(400, "The request body must be a JSON object.")
    return body


class Endpoint:
    """An ASGI app for one path: a handler per method, and a JSON 405 for any other.

    Dispatching here rather than per `Route` keeps 405s JSON even when the sandbox's routes
    are mounted inside another application.
    """

    def __init__(self, serve: Callable[[Request, Handler], Awaitable[Response]]) -> None:
        self._serve = serve
        self.handlers: dict[str, Handler] = {}

    def on(self, method: str, handler: Handler) -> Endpoint:
        self.handlers[method] = handler
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler = self.handlers.get(request.method)
        if handler is not None:
            response = await self._serve(request, handler)
        elif self.handlers:
            allowed = ", ".join(sorted(self.handlers))
            response = message(405, "Method not allowed.", {"Allow": allowed})
        else:
            response = message(404, "Not found.")
        await response(scope, receive, send)
