"""The outbound Luminous client: its answers as models, its failures as the bridge's errors.

Every call goes through `LuminousClient._request`, which paces it (concurrency and rate),
sends it, and translates what came back. Whether a failure is `UnknownOutcome` or a plain
`RetryableError` depends on whether the request may have taken effect: a POST that was sent
and then lost may have created the invoice, a lost GET changed nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import pydantic

import bridge
from bridge import wire
from bridge.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    LuminousError,
    NotFoundError,
    PermanentError,
    RetryableError,
    UnknownOutcome,
    ValidationError,
)
from bridge.invoice import Invoice, InvoiceRequest
from bridge.ratelimit import RateLimiter

__all__ = ["USER_AGENT", "LuminousClient", "retry_after_seconds"]

_FALLBACK_VERSION = "0.1.0"
USER_AGENT = f"luminous-invoice-bridge/{getattr(bridge, '__version__', _FALLBACK_VERSION)}"

PAGE_SIZE = 100  # Luminous's maximum per_page
_MAX_PAGES = 100  # far beyond any real PO-number match; stops a server that never ends
_BODY_LIMIT = 8192  # characters of an error answer kept on the exception
_DETAIL_LIMIT = 300  # characters of it quoted in the message

# Sending these twice may do twice what they do, so a lost answer leaves the outcome unknown.
_NOT_IDEMPOTENT = frozenset({"POST", "PATCH"})
# Failures that happen before any byte of the request reached Luminous.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")
_DELTA_SECONDS = re.compile(r"[+-]?\d+(\.\d+)?")
_REDACTED = "[redacted]"

log = logging.getLogger("bridge.luminous")


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any


class LuminousClient:
    """One pooled httpx.AsyncClient per process, created by the app's lifespan."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_concurrency: int = 4,
        max_requests_per_second: float | None = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        _check_settings(base_url, token, timeout, max_concurrency, max_requests_per_second)
        self._base_url = base_url
        self._secret = token
        self._slots = asyncio.Semaphore(max_concurrency)
        self._rate = RateLimiter(max_requests_per_second) if max_requests_per_second else None
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"LuminousClient({self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def create_invoice(self, request: InvoiceRequest) -> Invoice:
        """Create the invoice; a lost answer raises `UnknownOutcome` (look before resending)."""
        answer = await self._request("POST", "/invoices", "the invoice", body=request.to_wire())
        return self._invoice(_data_of(answer), answer, "POST", "the invoice")

    async def get_invoice(self, invoice_id: int) -> Invoice:
        """One invoice by its Luminous ID."""
        subject = f"the lookup of invoice {invoice_id}"
        answer = await self._request("GET", f"/invoices/{int(invoice_id)}", subject)
        return self._invoice(_data_of(answer), answer, "GET", subject)

    async def find_invoices(self, *, customer_po_number: str) -> list[Invoice]:
        """Every invoice whose PO number is exactly this one, across all pages."""
        subject = f"the search for invoices with PO number {customer_po_number!r}"
        rows = await self._list_all(
            "/invoices", subject, (("customer_po_number[eq]", customer_po_number),)
        )
        return [self._invoice(row, page, "GET", subject) for page, row in rows]

    async def check_token(self) -> None:
        """Prove Luminous accepts our token with the cheapest authenticated read."""
        await self._request("GET", "/invoices", "the token check", params=(("per_page", "1"),))

    async def _list_all(
        self, path: str, subject: str, filters: tuple[tuple[str, str], ...]
    ) -> list[tuple[_Answer, Any]]:
        """Every row of a paged list, each with the page that held it (for error reports)."""
        rows: list[tuple[_Answer, Any]] = []
        page = 1
        while True:
            params = (*filters, ("per_page", str(PAGE_SIZE)), ("page", str(page)))
            answer = await self._request("GET", path, subject, params=params)
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            if not isinstance(data, list):
                raise self._unusable("GET", subject, answer, "it holds no list of data")
            rows.extend((answer, row) for row in data)
            last_page = _last_page(answer.body)
            more = page < last_page if last_page is not None else len(data) >= PAGE_SIZE
            if not more or not data:
                return rows
            if page >= _MAX_PAGES:
                raise self._unusable("GET", subject, answer, f"it runs past {_MAX_PAGES} pages")
            page += 1

    def _invoice(self, data: Any, answer: _Answer, method: str, subject: str) -> Invoice:
        if not isinstance(data, dict) or data.get("id") is None:
            raise self._unusable(method, subject, answer, "it has no data.id")
        try:
            return Invoice.model_validate(data)
        except pydantic.ValidationError as exc:
            why = f"its invoice does not parse ({exc.error_count()} problems)"
            raise self._unusable(method, subject, answer, why) from exc

    async def _request(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        params: tuple[tuple[str, str], ...] = (),
        body: Any = None,
    ) -> _Answer:
        """Send one request within the limits; return its parsed 2xx answer or raise."""
        content = None if body is None else wire.dumps(body)
        headers = None if content is None else {"Content-Type": "application/json"}
        async with self._slots:
            if self._rate is not None:
                await self._rate.acquire()
            started = time.perf_counter()
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except httpx.HTTPError as exc:
                _log_request(method, path, type(exc).__name__, started)
                raise self._lost(exc, method, subject) from exc
        _log_request(method, path, response.status_code, started)
        if not response.is_success:
            raise self._refusal(response, method, subject)
        try:
            return _Answer(response.status_code, wire.loads(response.content))
        except wire.MalformedJSON as exc:
            text = _excerpt(self._redact(response.text), _BODY_LIMIT)
            answer = _Answer(response.status_code, text)
            raise self._unusable(method, subject, answer, f"it is not JSON ({exc})") from exc

    def _lost(self, exc: httpx.HTTPError, method: str, subject: str) -> LuminousError:
        cause = self._redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
        if isinstance(exc, _NEVER_SENT):
            return RetryableError(f"Luminous could not be reached for {subject} ({cause})")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return PermanentError(f"Luminous's base URL cannot be used for {subject} ({cause})")
        if method in _NOT_IDEMPOTENT:
            return UnknownOutcome(
                f"Luminous's answer to {subject} was lost after sending ({cause}), "
                "so it may have taken effect"
            )
        return RetryableError(f"Luminous's answer to {subject} was lost ({cause})")

    def _unusable(self, method: str, subject: str, answer: _Answer, why: str) -> RetryableError:
        message = f"Luminous's answer ({answer.status}) to {subject} is unusable: {why}"
        body = self._scrub(answer.body)
        if method in _NOT_IDEMPOTENT:
            return UnknownOutcome(
                f"{message}, so it may have taken effect", status=answer.status, body=body
            )
        return RetryableError(message, status=answer.status, body=body)

    def _refusal(self, response: httpx.Response, method: str, subject: str) -> LuminousError:
        status = response.status_code
        body = _error_body(self._redact(response.text))
        detail = self._redact(_detail(body, response))
        if status in (401, 403):
            message = f"Luminous refused our API token ({status}) for {subject}: {detail}"
            return AuthError(message, status=status, body=body)
        if status == 404:
            message = f"Luminous found nothing (404) for {subject}: {detail}"
            return NotFoundError(message, status=status, body=body)
        if status == 409:
            message = f"Luminous reported a conflict (409) for {subject}: {detail}"
            return ConflictError(message, status=status, body=body)
        if status == 422:
            message = f"Luminous refused {subject} (422): {detail}"
            return ValidationError(message, status=status, body=body, errors=_field_errors(body))
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            hint = (
                "no Retry-After given" if retry_after is None else f"retry after {retry_after:g} s"
            )
            message = f"Luminous is rate limiting us (429) for {subject}; {hint}"
            return RetryableError(message, status=status, body=body, retry_after=retry_after)
        if status >= 500 and method in _NOT_IDEMPOTENT:
            message = f"Luminous failed ({status}) on {subject}, which may have taken effect anyway"
            return UnknownOutcome(
                f"{message}: {detail}", status=status, body=body, retry_after=retry_after
            )
        if status >= 500:
            message = f"Luminous failed ({status}) on {subject}: {detail}"
            return RetryableError(message, status=status, body=body, retry_after=retry_after)
        message = f"Luminous refused {subject} ({status}): {detail}"
        return PermanentError(message, status=status, body=body)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, _REDACTED)

    def _scrub(self, value: Any) -> Any:
        """A parsed answer with the token redacted wherever Luminous might have echoed it."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {self._scrub(key): self._scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub(item) for item in value]
        return value


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date).

    None when the header is missing or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _check_settings(
    base_url: str,
    token: str,
    timeout: float,
    max_concurrency: int,
    max_requests_per_second: float | None,
) -> None:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError("luminous.base_url", f"{base_url!r} is not an http(s) URL")
    # An unprintable token would reach an HTTP library's error message verbatim.
    if not _TOKEN_SHAPE.fullmatch(token):
        raise ConfigError("luminous.token_env", "the token is empty or has spaces or controls")
    if not timeout > 0:
        raise ConfigError("luminous.timeout", f"must be positive, not {timeout!r}")
    if max_concurrency < 1:
        raise ConfigError("luminous.max_concurrency", f"must be 1 or more, not {max_concurrency}")
    if max_requests_per_second is not None and max_requests_per_second < 0:
        raise ConfigError(
            "luminous.max_requests_per_second",
            f"must be 0 (off) or more, not {max_requests_per_second}",
        )


def _log_request(method: str, path: str, outcome: int | str, started: float) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.debug("%s %s -> %s in %.1f ms", method, path, outcome, elapsed_ms)


def _data_of(answer: _Answer) -> Any:
    return answer.body.get("data") if isinstance(answer.body, dict) else None


def _last_page(body: Mapping[str, Any]) -> int | None:
    meta = body.get("meta")
    value = meta.get("last_page") if isinstance(meta, dict) else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_body(text: str) -> Any:
    """An error answer as parsed JSON, or as (truncated) text when it is not JSON."""
    if not text.strip():
        return None
    if len(text) > _BODY_LIMIT:
        return _excerpt(text, _BODY_LIMIT)
    try:
        return wire.loads(text)
    except wire.MalformedJSON:
        return text


def _detail(body: Any, response: httpx.Response) -> str:
    """What Luminous said, in one line a person can read."""
    if isinstance(body, dict):
        errors = _field_errors(body)
        if errors:
            lines = [
                f"{path}: {', '.join(msgs)}" if path else ", ".join(msgs)
                for path, msgs in errors.items()
            ]
            return _excerpt("; ".join(lines), _DETAIL_LIMIT)
        if isinstance(body.get("message"), str) and body["message"].strip():
            return _excerpt(body["message"], _DETAIL_LIMIT)
    if isinstance(body, str):
        return _excerpt(body, _DETAIL_LIMIT)
    if body is not None:
        return _excerpt(wire.dumps(body).decode(), _DETAIL_LIMIT)
    if response.has_redirect_location:
        return f"redirected to {response.headers['Location']}"
    return response.reason_phrase or "no details"


def _field_errors(body: Any) -> dict[str, list[str]]:
    """Luminous's `{"errors": {path: [messages]}}`, tolerating other shapes."""
    raw = body.get("errors") if isinstance(body, dict) else None
    if isinstance(raw, dict):
        found = {str(path): _messages(value) for path, value in raw.items()}
        return {path: msgs for path, msgs in found.items() if msgs}
    messages = _messages(raw)
    return {"": messages} if messages else {}


def _messages(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(item) for item in value if item is not None and item != ""]
    return [str(value)]


def _excerpt(text: str, limit: int) -> str:
    flat = " ".join(text.split()) if limit <= _DETAIL_LIMIT else text
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}… ({len(text)} characters in all)"
