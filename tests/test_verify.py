"""Signature schemes: what each accepts, refuses, and signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from bridge.errors import InputError
from bridge.verify import SCHEMES

BODY = b'{"id": 820982911946154508, "total_price": "10.00"}'


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def test_shopify_hmac_is_base64_sha256_of_the_raw_body() -> None:
    scheme = SCHEMES["shopify-hmac"]
    expected = base64.b64encode(hmac.new(b"secret", BODY, hashlib.sha256).digest()).decode()
    headers = scheme.sign(
        BODY, "secret", topic="orders/create", shop="a.myshopify.com", delivery_id="w1"
    )
    assert headers["x-shopify-hmac-sha256"] == expected
    signed = lower(headers)
    scheme.verify(signed, BODY, ["secret"])
    assert scheme.topic(signed) == "orders/create"
    assert scheme.shop(signed) == "a.myshopify.com"
    assert scheme.delivery_id(signed) == "w1"


@pytest.mark.parametrize("name", ["shopify-hmac", "woocommerce-hmac"])
def test_hmac_schemes_accept_any_configured_secret_and_refuse_the_rest(name: str) -> None:
    scheme = SCHEMES[name]
    signed = lower(scheme.sign(BODY, "new-secret"))
    scheme.verify(signed, BODY, ["old-secret", "new-secret"])
    with pytest.raises(InputError) as caught:
        scheme.verify(signed, BODY, ["old-secret"])
    assert caught.value.status == 401
    with pytest.raises(InputError, match="does not match"):
        scheme.verify(signed, BODY + b" ", ["new-secret"])
    with pytest.raises(InputError, match="missing"):
        scheme.verify({}, BODY, ["new-secret"])
    with pytest.raises(InputError, match="no secret"):
        scheme.verify(signed, BODY, [])


def test_woocommerce_has_no_stable_delivery_id() -> None:
    scheme = SCHEMES["woocommerce-hmac"]
    signed = lower(
        scheme.sign(BODY, "s", delivery_id="fresh-each-time", shop="https://shop.example/")
    )
    assert scheme.delivery_id(signed) is None
    assert scheme.shop(signed) == "https://shop.example/"


def test_standard_webhooks_signature_and_tolerance() -> None:
    scheme = SCHEMES["standard-webhooks"]
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    signed = lower(scheme.sign(BODY, secret, delivery_id="msg_1"))
    scheme.verify(signed, BODY, [secret])
    assert scheme.delivery_id(signed) == "msg_1"
    stale = lower(scheme.sign(BODY, secret, delivery_id="msg_1", now=time.time() - 301))
    with pytest.raises(InputError, match="tolerance"):
        scheme.verify(stale, BODY, [secret])
    several = dict(signed, **{"webhook-signature": "v1,AAAA " + signed["webhook-signature"]})
    scheme.verify(several, BODY, [secret])
    with pytest.raises(InputError, match="does not match"):
        scheme.verify(dict(signed, **{"webhook-signature": "v1,AAAA"}), BODY, [secret])


def test_bearer_and_none() -> None:
    SCHEMES["bearer"].verify({"authorization": "Bearer t0k"}, BODY, ["t0k"])
    with pytest.raises(InputError):
        SCHEMES["bearer"].verify({"authorization": "Bearer nope"}, BODY, ["t0k"])
    with pytest.raises(InputError):
        SCHEMES["bearer"].verify({}, BODY, ["t0k"])
    SCHEMES["none"].verify({}, BODY, [])


def test_signatures_are_never_stored() -> None:
    for scheme in SCHEMES.values():
        assert "authorization" in scheme.secret_headers
        if scheme.signature_header:
            assert scheme.signature_header in scheme.secret_headers
