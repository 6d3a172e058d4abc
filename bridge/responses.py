"""JSON answers written with the bridge's exact encoder, and the error body every 4xx uses."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from bridge.wire import dumps


class BridgeJSON(JSONResponse):
    """A JSON response whose Decimals are exact numbers and whose 64-bit IDs stay ints."""

    def render(self, content: Any) -> bytes:
        self.content = content  # kept: what an answer said is read from it, not parsed back
        return dumps(content)


def error(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> BridgeJSON:
    """`{"error", "message"[, "details"]}` — what went wrong, for a person."""
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    return BridgeJSON(body, status_code=status)
