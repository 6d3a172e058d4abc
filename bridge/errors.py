"""One error tree for the whole bridge.

    BridgeError
    ├── ConfigError                 bad configuration; names the key (CLI exit 2)
    ├── InputError                  a delivery the front door refuses (4xx)
    ├── MappingError                the mapping refused the payload (event `rejected`)
    ├── InvoiceError                a built invoice must not be sent (event `dead`)
    ├── LuminousError               Luminous answered badly, or not at all
    │   ├── RetryableError          try again later: 429, 5xx, timeouts, dropped connections
    │   │   └── UnknownOutcome      the request may have taken effect: look before resending
    │   └── PermanentError          sending the same request again cannot help
    │       ├── AuthError           401 (or 403 on the token check): our token (work pauses)
    │       ├── ForbiddenError      403 on one request: that request, not the token
    │       ├── NotFoundError       404
    │       ├── ConflictError       409
    │       └── ValidationError     422, with Luminous's per-field messages
    ├── ShopAPIError                a shop's own order API failed (backfill, reconcile, sweep)
    ├── StoreError                  the event store failed or its schema is wrong
    └── LeaseLost                   another worker holds the event now: stop, write nothing

Third-party exceptions are translated at the boundary (`raise ... from exc`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is unusable; `key` is the dotted name of the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


class InputError(BridgeError):
    """A delivery refused at the front door, with the HTTP status and error code to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


class MappingError(BridgeError):
    """The payload cannot become an invoice; `details` lists (field, problem) pairs."""

    def __init__(self, message: str, details: Sequence[tuple[str, str]] = ()) -> None:
        self.message = message
        self.details = list(details)
        super().__init__(message)


class InvoiceError(BridgeError):
    """A mapped invoice that must not reach Luminous (totals that do not reconcile, currency).

    `details` lists (field, problem) pairs, answered to partners that wait for the invoice.
    """

    def __init__(self, message: str, details: Sequence[tuple[str, str]] = ()) -> None:
        self.details = list(details)
        super().__init__(message)


class LuminousError(BridgeError):
    """Luminous refused a request or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: object = None,
    ) -> None:
        self.status = status
        self.body = body
        super().__init__(message)


class RetryableError(LuminousError):
    """Worth trying again; `retry_after` is Luminous's own hint in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class UnknownOutcome(RetryableError):
    """The request was sent and its effect is unknown (timeout after sending, dropped, 5xx)."""


class PermanentError(LuminousError):
    """Sending the same request again cannot succeed."""


class AuthError(PermanentError):
    """Luminous refuses our token (401, or 403 on the token check): work pauses."""


class ForbiddenError(PermanentError):
    """Luminous forbids one request (403) while the token itself is good."""


class NotFoundError(PermanentError):
    """Luminous answered 404."""


class ConflictError(PermanentError):
    """Luminous answered 409."""


class ValidationError(PermanentError):
    """Luminous answered 422; `errors` maps a field path to its messages."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 422,
        body: object = None,
        errors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.errors = {key: list(value) for key, value in (errors or {}).items()}


class ShopAPIError(BridgeError):
    """A shop's order API refused us or could not be reached, after the client's own retries.

    The message names the shop and the request, never a token or a secret.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class StoreError(BridgeError):
    """The event store failed, or its schema is missing or newer than this release."""


class StoreUnopenable(StoreError, ConfigError):
    """`[store] url` names a file SQLite cannot open: the operator's to fix (exit 2)."""

    def __init__(self, path: str, problem: object) -> None:
        super().__init__("store.url", f"cannot open SQLite store {path}: {problem}")


class LeaseLost(BridgeError):
    """This worker's claim on an event lapsed or was taken over: it must not send or write."""
