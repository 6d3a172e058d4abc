"""`POST /webhooks/{source}`: verify, record, then answer with what became of the order.

Checks run in the documented order and the first that fails answers: 404 unknown source,
413 too large, 415 not JSON, 401 bad signature, 403 shop not allowed or contradicted by the
secret, 400 malformed JSON, 403 shop contradicted by the signed body. Once a delivery is
authentic and well-formed it is recorded durably, and from then on a shop always gets a 2xx
whose body says what happened.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from bridge.config import Settings, Source, check_shop_secrets
from bridge.errors import InputError, StoreError
from bridge.logs import line, transition
from bridge.mapping import OrderRef
from bridge.metrics import UNKNOWN_SOURCE
from bridge.responses import BridgeJSON, error
from bridge.shops import check_accepted, settle_shop, verify_sender
from bridge.status import StatusLinks
from bridge.store.base import CREATED, DEAD, RECEIVED, REJECTED, Event, NewDelivery, Store
from bridge.verify import SCHEMES
from bridge.wire import MalformedJSON, dumps, parse_body
from bridge.worker import Worker

log = logging.getLogger("bridge.webhooks")

_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
_UTF8 = ("utf-8", "utf8")
_NAME_SHOWN = 64  # characters of an unknown source name echoed back
_WOOCOMMERCE_PING = re.compile(rb"^webhook_id=\d+$")


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse a body whose declared size is over `limit` before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isascii() or not declared.isdigit():
        raise InputError(400, "bad_request", "Content-Length is not a number")
    if int(declared) > limit:
        raise InputError(413, "too_large", f"body of {declared} bytes is over {limit} bytes")


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` (never buffered whole)."""
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise InputError(413, "too_large", f"body is over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise InputError(408, "timeout", f"body not received within {timeout:g} s") from None
    except ClientDisconnect:
        # Nobody is left to read the answer; it is only logged.
        raise InputError(
            400, "client_disconnected", "the client left before the body ended"
        ) from None
    return b"".join(chunks)


def check_content_type(header: str) -> str:
    """The media type of a JSON body, lower-cased; 415 if it is not JSON in UTF-8."""
    media_type, *params = (part.strip() for part in header.split(";"))
    media_type = media_type.lower()
    if not _JSON_TYPE.match(media_type):
        return media_type
    for param in params:
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in _UTF8:
            raise InputError(
                415,
                "unsupported_media_type",
                f"JSON must be UTF-8; Content-Type names charset {charset[:32]!r}",
            )
    return media_type


def delivery_key(topic: str | None, shop: str, delivery_id: str) -> str:
    """What the store deduplicates on: the delivery's id with its topic and shop.

    Neither header is signed, so a copy of a delivery under another topic or shop is another
    delivery, never a "repeat" that would shadow the genuine one.
    """
    return dumps([topic, shop, delivery_id]).decode()


def identify(source: Source, payload: Any) -> OrderRef | None:
    """The order the payload names, by the mapping's own cheap reading of it."""
    try:
        return source.mapping.identify(payload)
    except Exception:  # a plugin's bug must not turn an authentic delivery away
        log.exception("source=%s mapping %s: identify raised", source.name, source.mapping.name)
        return None


def _refusal(response: BridgeJSON) -> BridgeJSON:
    # A refused request may still be sending its body (too large, trickling, not read at
    # all): close the connection rather than keep reading what nobody will use.
    response.headers["connection"] = "close"
    return response


def answer(event: Event, source: Source, links: StatusLinks, *, repeat: bool) -> BridgeJSON:
    """The documented answer for an event in its current state."""
    if event.status == CREATED:
        body: dict[str, Any] = {
            "event_id": event.duplicate_of or event.id,
            "status": CREATED,
            "invoice_id": event.invoice_id,
        }
        if repeat or event.duplicate_of is not None:
            body["duplicate"] = True
            return BridgeJSON(body, status_code=200)
        return BridgeJSON(body, status_code=201)
    if event.finished:
        if source.strict_answers and event.status in (DEAD, REJECTED):
            return error(422, event.status, event.reason or event.status, event.details)
        body = {"event_id": event.id, "status": event.status, "reason": event.reason}
        if event.invoice_id is not None:  # a tagged event names the invoice it tagged
            body["invoice_id"] = event.invoice_id
        if repeat:
            body["duplicate"] = True
        return BridgeJSON(body, status_code=200)
    return BridgeJSON(
        {"event_id": event.id, "status": event.status, "status_url": links.url(event.id)},
        status_code=202,
    )


class WebhookEndpoint:
    """The one route every source is served on."""

    def __init__(
        self, settings: Settings, store: Store, worker: Worker, links: StatusLinks
    ) -> None:
        self.settings = settings
        self.store = store
        self.worker = worker
        self.links = links
        for warning in check_shop_secrets(settings):
            log.warning("%s", warning)

    async def handle(self, request: Request) -> Response:
        name = request.path_params["source"]
        metrics = self.worker.metrics
        source = self.settings.sources.get(name)
        if source is None:
            shown = name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "…"
            # One label for every unknown name: a stranger's paths must not grow the series.
            metrics.answered(UNKNOWN_SOURCE, 404, "unknown_source")
            return _refusal(
                error(404, "unknown_source", f"no source named {shown!r} is configured")
            )
        started = time.monotonic()
        try:
            response = await self._receive(request, source)
        except InputError as exc:
            log.info("source=%s refused %s: %s", name, exc.status, exc.message)
            response = _refusal(error(exc.status, exc.code, exc.message))
        except StoreError as exc:
            # Not recorded, so not answered 2xx: the sender keeps the delivery and retries.
            log.error("source=%s store unavailable: %s", name, exc)
            response = error(503, "unavailable", "the bridge cannot record deliveries right now")
            response.headers["Retry-After"] = "30"
        said = _answered(response)
        metrics.answered(name, response.status_code, said, time.monotonic() - started)
        return response

    async def _receive(self, request: Request, source: Source) -> Response:
        server = self.settings.config.server
        check_declared_length(request, server.max_body_bytes)
        media_type = check_content_type(request.headers.get("content-type", ""))
        scheme = SCHEMES[source.scheme]
        if not _JSON_TYPE.match(media_type):
            if media_type == "application/x-www-form-urlencoded" and scheme.name == (
                "woocommerce-hmac"
            ):
                body = await read_body(request, server.max_body_bytes, server.body_timeout)
                if _WOOCOMMERCE_PING.match(body.strip()):
                    return BridgeJSON({"status": "ping", "message": "webhook ping received"})
            raise InputError(
                415,
                "unsupported_media_type",
                f"Content-Type must be application/json, not {media_type or 'missing'!r}",
            )
        body = await read_body(request, server.max_body_bytes, server.body_timeout)
        headers = {key.lower(): value for key, value in request.headers.items()}
        sender = verify_sender(source, scheme, headers, body)
        if sender:
            check_accepted(source, sender)
        try:
            parsed = await parse_body(body)
        except MalformedJSON as exc:
            raise InputError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
        order = identify(source, parsed.value)
        shop = settle_shop(sender, order.shop if order else None)
        check_accepted(source, shop)
        topic = scheme.topic(headers)
        delivery_id = scheme.delivery_id(headers) or "sha256:" + hashlib.sha256(body).hexdigest()
        kept = {key: value for key, value in headers.items() if key not in scheme.secret_headers}
        delivery = NewDelivery(
            source.name,
            delivery_key(topic, shop, delivery_id),
            shop,
            topic,
            kept,
            body,
            order_id=order.order_id if order else None,
            order_name=order.order_name if order else None,
            announce=False,
        )
        event, created, taken = await self.worker.record(delivery, parsed)
        if created:
            transition(log, event, RECEIVED, topic=topic)
        else:
            self.worker.metrics.duplicates.labels(source.name, "delivery").inc()
            # Not a transition: the event is where it was; said once, for the sender's sake.
            line(
                log,
                f"event {event.id} repeat delivery",
                event_id=event.id,
                source=source.name,
                status=str(event.status),
                duplicate="delivery",
            )
        if not event.finished:
            if not taken:
                # A repeat's stored bytes may not be these: it is parsed from the store.
                self.worker.kick(event.id, parsed if created else None)
            # A new event is as it was recorded; a repeat's may have moved on meanwhile.
            known = event if created else None
            event = await self.worker.wait(event.id, server.respond_within, known) or event
        return answer(event, source, self.links, repeat=not created)


def _answered(response: Response) -> str:
    """What an answer said, for the `bridge_answers` metric: its status, or its error code."""
    body = getattr(response, "content", None)
    if not isinstance(body, dict):
        return "unreadable"
    if body.get("duplicate"):
        return "duplicate"
    said = body.get("status") if response.status_code < 300 else body.get("error")
    return said if isinstance(said, str) else str(response.status_code)
