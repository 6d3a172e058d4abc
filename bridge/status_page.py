"""The status page at `/`: the bridge at a glance for people, behind HTTP Basic.

Any user name, the admin token as password; without an admin token the page is off, like the
admin routes. Its replay and dismiss buttons are POST forms to `/`. A browser sends the Basic
credentials with any request to the bridge, whoever's page makes it, so each form carries a
CSRF token (an HMAC, under a key derived from the admin token, of a nonce that holds its own
time) and a cross-site request is refused by its Origin and Sec-Fetch-Site headers too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
import urllib.parse
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.admin import Refused, dismiss_by_id, dismissal_reason, replay_by_id
from bridge.config import Settings
from bridge.errors import StoreError
from bridge.finding import BadFilter
from bridge.inputs import MAX_EVENT_ID, whole_number
from bridge.responses import error
from bridge.status_html import HOURS_SHOWN, Glance, Notice, render
from bridge.store.base import DEAD, REJECTED, EventFilter, Store
from bridge.worker import Worker

log = logging.getLogger("bridge.status_page")

REALM = 'Basic realm="Luminous invoice bridge", charset="UTF-8"'
FORM_LIFETIME = 12 * 3600.0  # a page left open this long must be reloaded before acting
MAX_FORM_BYTES = 8192
FAILURES_SHOWN = 20
CROSS_SITE = ("cross-site", "same-site")  # Sec-Fetch-Site values a form of ours never sends


def _password(request: Request) -> str | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


@dataclass(frozen=True)
class FormGuard:
    """Makes and checks the CSRF token each form of the page carries."""

    key: bytes

    @classmethod
    def for_token(cls, admin_token: str) -> FormGuard:
        return cls(hmac.new(admin_token.encode(), b"status page forms", hashlib.sha256).digest())

    def _mac(self, nonce: str) -> str:
        return hmac.new(self.key, nonce.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float) -> tuple[str, str]:
        nonce = f"{int(now)}.{secrets.token_urlsafe(16)}"
        return nonce, self._mac(nonce)

    def accepts(self, nonce: str, token: str, now: float) -> bool:
        issued = whole_number(nonce.partition(".")[0], 0, 2**40)
        if issued is None or not -60 <= now - issued <= FORM_LIFETIME:
            return False
        return hmac.compare_digest(token.encode(), self._mac(nonce).encode())


def _same_origin(request: Request) -> bool:
    if request.headers.get("sec-fetch-site", "").lower() in CROSS_SITE:
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers send none on a same-origin POST; the token still holds
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host")


async def _form(request: Request) -> dict[str, str] | None:
    """The url-encoded form, first value of each field; None when it is too big."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


class StatusPage:
    """`GET /` shows the page; `POST /` replays or dismisses one event, then shows it again."""

    def __init__(self, settings: Settings, store: Store, worker: Worker) -> None:
        self.token = settings.admin_token
        self.store = store
        self.worker = worker
        self.guard = FormGuard.for_token(self.token) if self.token else None

    def routes(self) -> list[Route]:
        return [
            Route("/", self.show, methods=["GET"]),
            Route("/", self.act, methods=["POST"]),
        ]

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            return error(404, "not_found", "the status page is off: no admin token configured")
        given = _password(request)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            response = error(
                401, "unauthorized", "the status page needs the admin token as the password"
            )
            response.headers["WWW-Authenticate"] = REALM
            return response
        return None

    async def show(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        assert self.guard is not None  # there is an admin token
        now = time.time()
        glance = await self._glance(now)
        nonce, token = self.guard.issue(now)
        notice = Notice.from_query(request.query_params)
        page = render(glance, notice, nonce=nonce, csrf=token, script_nonce=secrets.token_hex(16))
        return page.response(503 if glance.unreachable else 200)

    async def _glance(self, now: float) -> Glance:
        first_hour = (now // 3600 - (HOURS_SHOWN - 1)) * 3600
        try:
            counts = await self.store.counts()
            hours = await self.store.received_by_hour(first_hour)
            oldest = await self.store.oldest_unfinished()
            failures = [
                event
                for status in (DEAD, REJECTED)
                for event in await self.store.list_events(
                    where=EventFilter(status=status), limit=FAILURES_SHOWN
                )
            ]
        except StoreError as exc:
            log.error("status page: store unreachable: %s", exc)
            return Glance(now=now, first_hour=first_hour, unreachable=True)
        failures.sort(key=lambda event: event.id, reverse=True)
        return Glance(
            now=now,
            first_hour=first_hour,
            counts=counts,
            hours=hours,
            oldest=oldest,
            failures=failures[:FAILURES_SHOWN],
        )

    async def act(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        assert self.guard is not None
        form = await _form(request)
        if form is None:
            return error(413, "too_large", f"a status page form is at most {MAX_FORM_BYTES} bytes")
        if not _same_origin(request) or not self.guard.accepts(
            form.get("nonce", ""), form.get("csrf", ""), time.time()
        ):
            return error(
                403, "forbidden", "this form is stale or not from the status page: reload the page"
            )
        event_id = whole_number(form.get("event_id", ""), 1, MAX_EVENT_ID)
        action = form.get("action")
        if event_id is None or action not in ("replay", "dismiss"):
            return error(400, "bad_request", "the form needs an event_id and action replay|dismiss")
        try:
            if action == "replay":
                await replay_by_id(self.store, self.worker, event_id)
            else:
                reason = dismissal_reason(form.get("reason"))
                await dismiss_by_id(self.store, self.worker, event_id, reason)
            done = "replayed" if action == "replay" else "dismissed"
        except BadFilter:
            done = "reason_needed"
        except Refused as exc:
            done = exc.code
        except StoreError as exc:
            log.error("status page %s of event %s: store unreachable: %s", action, event_id, exc)
            done = "unreachable"
        query = urllib.parse.urlencode({"notice": done, "event": event_id})
        return RedirectResponse(f"/?{query}", status_code=303)
