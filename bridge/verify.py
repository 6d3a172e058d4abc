"""Signature schemes: who signed a delivery, and which headers name its topic, shop and ID.

Each scheme verifies the raw body against every configured secret (rotation) in constant
time, and can sign a body the way its senders do (for `bridge send` and tests). Header
names are lower-case here.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.errors import InputError
from bridge.secret_keys import standard_keys, woocommerce_keys

_STANDARD_TOLERANCE = 300  # seconds either way, as the Standard Webhooks libraries use
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
# Svix sends the Standard Webhooks scheme under its own header names.
_SVIX_NAMES = {
    "webhook-id": "svix-id",
    "webhook-timestamp": "svix-timestamp",
    "webhook-signature": "svix-signature",
}


def _unauthorized(message: str) -> InputError:
    return InputError(401, "unauthorized", message)


def _b64_hmac(secret: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def _matches(given: str, candidates: Sequence[str]) -> bool:
    # Compare against every candidate so timing does not reveal which secret matched.
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(given.encode(), candidate.encode())
    return found


@dataclass(frozen=True)
class Scheme:
    """One way of authenticating deliveries."""

    name: str
    signature_header: str | None = None
    topic_header: str | None = None
    shop_header: str | None = None
    delivery_header: str | None = None
    example_shop: str | None = None  # what `bridge send` names when no shop is configured

    @functools.cached_property
    def secret_headers(self) -> frozenset[str]:
        """Headers never stored or logged."""
        names = {"authorization", "cookie", "webhook-signature", "svix-signature"}
        if self.signature_header:
            names.add(self.signature_header)
        return frozenset(names)

    def topic(self, headers: Mapping[str, str]) -> str | None:
        return headers.get(self.topic_header) if self.topic_header else None

    def shop(self, headers: Mapping[str, str]) -> str:
        return (headers.get(self.shop_header, "") if self.shop_header else "").strip().lower()

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        value = _header(headers, self.delivery_header) if self.delivery_header else ""
        return value or None

    def keys(self, secret: str) -> tuple[bytes, ...]:
        """The HMAC keys a configured secret stands for; the first is the one senders use."""
        if self.name == "standard-webhooks":
            return standard_keys(secret)
        if self.name == "woocommerce-hmac":
            return woocommerce_keys(secret)
        return (secret.encode(),)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
        """Raise a 401 `InputError` unless the delivery is authentic."""
        if self.name == "none":
            return
        if not secrets:
            raise _unauthorized("this source has no secret configured; it accepts nothing")
        if self.name == "bearer":
            return self._verify_bearer(headers, secrets)
        if self.name == "standard-webhooks":
            return self._verify_standard(headers, body, secrets)
        assert self.signature_header
        given = headers.get(self.signature_header, "").strip()
        if not given:
            raise _unauthorized(f"missing {self.signature_header} header")
        expected = [_b64_hmac(key, body) for secret in secrets for key in self.keys(secret)]
        if not _matches(given, expected):
            raise _unauthorized(f"{self.signature_header} does not match the body")

    def _verify_bearer(self, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing 'Authorization: Bearer <token>' header")
        if not _matches(token.strip(), secrets):
            raise _unauthorized("bearer token is not valid for this source")

    def _verify_standard(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
    ) -> None:
        msg_id = _header(headers, "webhook-id")
        stamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        missing = [
            name
            for name, value in (
                ("webhook-id", msg_id),
                ("webhook-timestamp", stamp),
                ("webhook-signature", signatures),
            )
            if not value
        ]
        if missing:
            raise _unauthorized(f"missing {' and '.join(missing)} header")
        if not _UNIX_SECONDS.fullmatch(stamp):
            raise _unauthorized("webhook-timestamp is not a Unix time in whole seconds")
        skew = time.time() - int(stamp)
        if abs(skew) > _STANDARD_TOLERANCE:
            when = "old" if skew > 0 else "in the future"
            raise _unauthorized(
                f"webhook-timestamp is {abs(skew):.0f} s {when}, outside the "
                f"{_STANDARD_TOLERANCE}-second tolerance (a replay, or a wrong clock)"
            )
        offered = [
            sig
            for version, _, sig in (part.partition(",") for part in signatures.split())
            if version == "v1"
        ]
        if not offered:
            raise _unauthorized("webhook-signature has no v1 (HMAC-SHA256) signature")
        signed = f"{msg_id}.{stamp}.".encode() + body
        expected = [_b64_hmac(key, signed) for secret in secrets for key in self.keys(secret)]
        if not any(_matches(sig, expected) for sig in offered):
            raise _unauthorized("webhook-signature does not match the body")

    def sign(
        self,
        body: bytes,
        secret: str,
        *,
        topic: str | None = None,
        shop: str | None = None,
        delivery_id: str | None = None,
        now: float | None = None,
    ) -> dict[str, str]:
        """The headers a sender of this scheme would attach to `body`."""
        headers: dict[str, str] = {}
        if self.name == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif self.name == "standard-webhooks":
            msg_id = delivery_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
            stamp = str(int(time.time() if now is None else now))
            signed = f"{msg_id}.{stamp}.".encode() + body
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = stamp
            headers["webhook-signature"] = "v1," + _b64_hmac(self.keys(secret)[0], signed)
        elif self.signature_header:
            headers[self.signature_header] = _b64_hmac(self.keys(secret)[0], body)
        if self.topic_header and topic:
            headers[self.topic_header] = topic
        if self.shop_header and shop:
            headers[self.shop_header] = shop
        if self.delivery_header and delivery_id and self.name != "standard-webhooks":
            headers[self.delivery_header] = delivery_id
        return headers


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, or its Svix namesake's when the delivery came through Svix."""
    value = headers.get(name, "").strip()
    if not value and name in _SVIX_NAMES:
        value = headers.get(_SVIX_NAMES[name], "").strip()
    return value


SCHEMES: dict[str, Scheme] = {
    "shopify-hmac": Scheme(
        "shopify-hmac",
        signature_header="x-shopify-hmac-sha256",
        topic_header="x-shopify-topic",
        shop_header="x-shopify-shop-domain",
        delivery_header="x-shopify-webhook-id",
        example_shop="demo-shop.myshopify.com",
    ),
    "woocommerce-hmac": Scheme(
        "woocommerce-hmac",
        signature_header="x-wc-webhook-signature",
        topic_header="x-wc-webhook-topic",
        shop_header="x-wc-webhook-source",
        # Its delivery ID is fresh on every attempt, so deduplication uses the body's hash.
        delivery_header=None,
        example_shop="https://demo-shop.example/",
    ),
    "standard-webhooks": Scheme("standard-webhooks", delivery_header="webhook-id"),
    "bearer": Scheme("bearer"),
    "none": Scheme("none"),
}
