"""Luminous's failures as the bridge's errors, with our token redacted wherever it could echo.

Whether a failure is `UnknownOutcome` or a plain `RetryableError` depends on whether the
request may have taken effect: a POST that was sent and then lost may have created the
invoice, a lost GET changed nothing.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx

from bridge import wire
from bridge.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    LuminousError,
    NotFoundError,
    PermanentError,
    RetryableError,
    UnknownOutcome,
    ValidationError,
)

__all__ = ["Answer", "ErrorTranslator", "retry_after_seconds"]

BODY_LIMIT = 8192  # characters of an error answer kept on the exception
_DETAIL_LIMIT = 300  # characters of it quoted in the message

# Failures that happen before any byte of the request reached Luminous.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_DELTA_SECONDS = re.compile(r"[+-]?\d+(\.\d+)?")
_REDACTED = "[redacted]"
_MIN_SECRET = 8


@dataclass(frozen=True)
class Answer:
    """A 2xx answer, its body parsed exactly."""

    status: int
    body: Any


class ErrorTranslator:
    """Builds the error for a refusal, a lost answer or an unusable one; never shows `secret`.

    `repeatable` says whether sending the same request twice does no more than once: when it
    does not, an answer that was lost after sending leaves the outcome unknown.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def lost(self, exc: httpx.HTTPError, subject: str, *, repeatable: bool) -> LuminousError:
        cause = self.redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
        if isinstance(exc, _NEVER_SENT):
            return RetryableError(f"Luminous could not be reached for {subject} ({cause})")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return PermanentError(f"Luminous's base URL cannot be used for {subject} ({cause})")
        if not repeatable:
            return UnknownOutcome(
                f"Luminous's answer to {subject} was lost after sending ({cause}), "
                "so it may have taken effect"
            )
        return RetryableError(f"Luminous's answer to {subject} was lost ({cause})")

    def unusable(
        self, subject: str, answer: Answer, why: str, *, repeatable: bool
    ) -> RetryableError:
        message = f"Luminous's answer ({answer.status}) to {subject} is unusable: {why}"
        body = self.scrub(answer.body)
        if not repeatable:
            return UnknownOutcome(
                f"{message}, so it may have taken effect", status=answer.status, body=body
            )
        return RetryableError(message, status=answer.status, body=body)

    def unreadable(self, response: httpx.Response) -> Answer:
        """A 2xx answer that is not JSON, kept as redacted, truncated text for the report."""
        text = excerpt(self.redact(response.text), BODY_LIMIT)
        return Answer(response.status_code, text)

    def refusal(
        self, response: httpx.Response, subject: str, *, repeatable: bool, probe: bool = False
    ) -> LuminousError:
        """The error for a non-2xx answer. A 401 is always our token; a 403 is our token
        only on the `probe` (the token check): elsewhere it forbids that one request."""
        status = response.status_code
        body = _error_body(self.redact(response.text))
        detail = self.redact(_detail(body, response))
        if status == 401 or (status == 403 and probe):
            message = f"Luminous refused our API token ({status}) for {subject}: {detail}"
            return AuthError(message, status=status, body=body)
        if status == 403:
            message = f"Luminous forbids {subject} (403): {detail}"
            return ForbiddenError(message, status=status, body=body)
        if status == 404:
            message = f"Luminous found nothing (404) for {subject}: {detail}"
            return NotFoundError(message, status=status, body=body)
        if status == 409:
            message = f"Luminous reported a conflict (409) for {subject}: {detail}"
            return ConflictError(message, status=status, body=body)
        if status == 422:
            message = f"Luminous refused {subject} (422): {detail}"
            return ValidationError(message, status=status, body=body, errors=field_errors(body))
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            hint = (
                "no Retry-After given" if retry_after is None else f"retry after {retry_after:g} s"
            )
            message = f"Luminous is rate limiting us (429) for {subject}; {hint}"
            return RetryableError(message, status=status, body=body, retry_after=retry_after)
        if status >= 500 and not repeatable:
            message = f"Luminous failed ({status}) on {subject}, which may have taken effect anyway"
            return UnknownOutcome(
                f"{message}: {detail}", status=status, body=body, retry_after=retry_after
            )
        if status >= 500:
            message = f"Luminous failed ({status}) on {subject}: {detail}"
            return RetryableError(message, status=status, body=body, retry_after=retry_after)
        message = f"Luminous refused {subject} ({status}): {detail}"
        return PermanentError(message, status=status, body=body)

    def redact(self, text: str) -> str:
        # A token shorter than this is no secret worth hiding, and replacing it would mangle
        # ordinary words (and the marker itself) in every message.
        if len(self._secret) < _MIN_SECRET:
            return text
        return text.replace(self._secret, _REDACTED)

    def scrub(self, value: Any) -> Any:
        """A parsed answer with the token redacted wherever Luminous might have echoed it."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.scrub(key): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
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


def _error_body(text: str) -> Any:
    """An error answer as parsed JSON, or as (truncated) text when it is not JSON."""
    if not text.strip():
        return None
    if len(text) > BODY_LIMIT:
        return excerpt(text, BODY_LIMIT)
    try:
        return wire.loads(text)
    except wire.MalformedJSON:
        return text


def _detail(body: Any, response: httpx.Response) -> str:
    """What Luminous said, in one line a person can read."""
    if isinstance(body, dict):
        errors = field_errors(body)
        if errors:
            lines = [
                f"{path}: {', '.join(msgs)}" if path else ", ".join(msgs)
                for path, msgs in errors.items()
            ]
            return excerpt("; ".join(lines), _DETAIL_LIMIT)
        if isinstance(body.get("message"), str) and body["message"].strip():
            return excerpt(body["message"], _DETAIL_LIMIT)
    if isinstance(body, str):
        return excerpt(body, _DETAIL_LIMIT)
    if body is not None:
        return excerpt(wire.dumps(body).decode(), _DETAIL_LIMIT)
    if response.has_redirect_location:
        return f"redirected to {response.headers['Location']}"
    return response.reason_phrase or "no details"


def field_errors(body: Any) -> dict[str, list[str]]:
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


def excerpt(text: str, limit: int) -> str:
    flat = " ".join(text.split()) if limit <= _DETAIL_LIMIT else text
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}… ({len(text)} characters in all)"
