"""A sender's status URL: `/status/{event_id}/{token}`, readable without any admin token.

The 202 answer hands the sender this URL. Its token is an HMAC of the event id under a
secret kept in the store (so every replica makes and accepts the same URLs), and it shows
only what the sender may know: the status, the invoice id and the reason. A wrong token is
answered exactly like an unknown event, so the URL cannot be guessed from its answers.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.errors import StoreError
from bridge.inputs import MAX_EVENT_ID
from bridge.responses import BridgeJSON, error
from bridge.store.base import Store

SECRET_NAME = "status_url_secret"
_TOKEN_CHARS = 32  # hex characters: 128 bits


class StatusLinks:
    """Makes and checks the per-event status URLs; `load` reads the store's secret first."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._secret: bytes | None = None

    async def load(self) -> None:
        self._secret = (await self.store.secret(SECRET_NAME)).encode()

    def token(self, event_id: int) -> str:
        if self._secret is None:
            raise RuntimeError("StatusLinks.load() has not run")
        mac = hmac.new(self._secret, f"event:{event_id}".encode(), hashlib.sha256)
        return mac.hexdigest()[:_TOKEN_CHARS]

    def url(self, event_id: int) -> str:
        return f"/status/{event_id}/{self.token(event_id)}"

    def routes(self) -> list[Route]:
        return [Route("/status/{event_id:int}/{token}", self.show, methods=["GET"])]

    async def show(self, request: Request) -> Response:
        event_id: int = request.path_params["event_id"]
        token: str = request.path_params["token"]
        unknown = error(404, "not_found", "no such event")
        if self._secret is None or not 0 < event_id <= MAX_EVENT_ID:
            return unknown
        if not hmac.compare_digest(token.encode(), self.token(event_id).encode()):
            return unknown
        try:
            event = await self.store.get(event_id)
        except StoreError:
            response = error(503, "unavailable", "the bridge cannot read events right now")
            response.headers["Retry-After"] = "30"
            return response
        if event is None:
            return unknown
        return BridgeJSON(
            {
                "event_id": event.id,
                "status": event.status,
                "invoice_id": event.invoice_id,
                "reason": event.reason,
            }
        )
