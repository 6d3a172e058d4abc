"""Deliveries signed by the senders' own code: the standardwebhooks and svix libraries, and
WooCommerce's PHP signing (tests/senders/woocommerce_sign.php under Debian's php-cli)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix

from bridge.errors import InputError
from bridge.verify import SCHEMES
from tests.conftest import ROOT, TESTS

BODY = b'{"order_id": "PO-1", "total": "10.00", "id": 820982911946154508}'
KEY = b"partner-key-\x00\xff-bytes"
PADDED = base64.b64encode(KEY).decode()
UNPADDED = PADDED.rstrip("=")
NOT_BASE64 = "partner secret!"  # 13 base64 characters once the rest is skipped: no decoding
STANDARD = SCHEMES["standard-webhooks"]
WOO = SCHEMES["woocommerce-hmac"]
WOO_SIGNER = TESTS / "senders" / "woocommerce_sign.php"


def library_headers(signer: standardwebhooks.Webhook | svix.Webhook, prefix: str) -> dict[str, str]:
    msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    now = datetime.now(tz=UTC)
    signature = signer.sign(msg_id, now, BODY.decode())
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(int(now.timestamp())),
        f"{prefix}-signature": signature,
    }


def refused(scheme_name: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    try:
        SCHEMES[scheme_name].verify(headers, body, [secret])
    except InputError as error:
        assert error.status == 401
        return True
    return False


@pytest.mark.parametrize("secret", ["whsec_" + PADDED, "whsec_" + UNPADDED, PADDED, UNPADDED])
def test_base64_secrets_are_read_as_the_standard_webhooks_library_reads_them(secret: str) -> None:
    headers = library_headers(standardwebhooks.Webhook(secret), "webhook")
    STANDARD.verify(headers, BODY, [secret])
    # …and the library accepts what `bridge send` signs with the same secret.
    standardwebhooks.Webhook(secret).verify(BODY, STANDARD.sign(BODY, secret, delivery_id="m1"))


@pytest.mark.parametrize("secret", [PADDED, UNPADDED, NOT_BASE64])
def test_a_bare_secret_also_stands_for_its_own_text(secret: str) -> None:
    # Partners configured before the upgrade sign with the text itself as the key.
    headers = library_headers(standardwebhooks.Webhook(secret.encode()), "webhook")
    STANDARD.verify(headers, BODY, [secret])


def test_a_secret_the_library_cannot_decode_signs_as_raw_text() -> None:
    with pytest.raises(binascii.Error):
        standardwebhooks.Webhook(NOT_BASE64)
    signed = STANDARD.sign(BODY, NOT_BASE64, delivery_id="m1")
    standardwebhooks.Webhook(NOT_BASE64.encode()).verify(BODY, signed)


def test_a_prefixed_secret_is_only_its_decoded_key() -> None:
    secret = "whsec_" + PADDED
    as_text = library_headers(standardwebhooks.Webhook(secret.encode()), "webhook")
    assert refused("standard-webhooks", as_text, BODY, secret)
    other = library_headers(standardwebhooks.Webhook(base64.b64encode(b"other")), "webhook")
    assert refused("standard-webhooks", other, BODY, secret)


@pytest.mark.parametrize("secret", ["whsec_" + PADDED, PADDED])
def test_svix_deliveries_are_accepted_under_svix_header_names(secret: str) -> None:
    headers = library_headers(svix.Webhook(secret), "svix")
    STANDARD.verify(headers, BODY, [secret])
    assert STANDARD.delivery_id(headers) == headers["svix-id"]  # so duplicates are recognised
    assert "svix-signature" in STANDARD.secret_headers
    tampered = dict(headers, **{"svix-id": "msg_other"})
    assert refused("standard-webhooks", tampered, BODY, secret)
    # The svix library accepts what `bridge send` signs.
    svix.Webhook(secret).verify(BODY, STANDARD.sign(BODY, secret, delivery_id="m1"))


def php_signed(secret: str, order: bytes) -> tuple[str, bytes]:
    """WooCommerce's signature and payload, made by PHP."""
    if shutil.which("php") is None:
        if os.environ.get("CI"):
            pytest.fail("php (Debian php-cli) is missing; CI runs the WooCommerce signer")
        pytest.skip("php (Debian php-cli) is not installed")
    done = subprocess.run(
        ["php", str(WOO_SIGNER), secret], input=order, capture_output=True, check=True, timeout=30
    )
    signature, _, payload = done.stdout.partition(b"\n")
    return signature.decode(), payload


WOO_ORDER = (ROOT / "examples" / "woocommerce-order.json").read_bytes()
ENTITY_SECRET = "s3cr3t&amp;key&#039;s&lt;x&gt;"


def test_php_json_encode_escapes_as_woocommerce_does() -> None:
    order = json.dumps({"note": "a/b", "name": "Zoë"}).encode()
    _, payload = php_signed("secret", order)
    assert payload == rb'{"note":"a\/b","name":"Zo\u00eb"}'


@pytest.mark.parametrize(
    "stored",
    [
        ENTITY_SECRET,
        "plain-secret",
        "a&amp;lt;b",  # decoded once, as WordPress does: the key is "a&lt;b"
        "q&#0039;&#X27;&quot;&#x26;&#38;",
        "n&nbsp;&copy;&#65;",  # other entities stay as they are
    ],
)
def test_a_php_signed_woocommerce_delivery_is_accepted_with_its_stored_secret(
    stored: str,
) -> None:
    order = json.loads(WOO_ORDER)
    order["billing"]["first_name"] = "Zoë/Ana"
    signature, payload = php_signed(stored, json.dumps(order).encode())
    assert b"\\/" in payload and b"\\u00eb" in payload
    headers = {"x-wc-webhook-signature": signature}
    WOO.verify(headers, payload, [stored])
    assert refused("woocommerce-hmac", headers, payload, "other-secret")
    assert refused("woocommerce-hmac", headers, payload + b" ", stored)


def test_the_decoded_woocommerce_secret_works_too() -> None:
    signature, payload = php_signed(ENTITY_SECRET, WOO_ORDER)
    WOO.verify({"x-wc-webhook-signature": signature}, payload, ["s3cr3t&key's<x>"])
    # `bridge send` signs as WooCommerce does, whichever form is configured.
    assert WOO.sign(payload, ENTITY_SECRET)["x-wc-webhook-signature"] == signature
