"""A real `bridge serve` accepts deliveries signed by each sender's own code."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import standardwebhooks
import svix

from tests.conftest import ROOT
from tests.harness import Process, serve_with_sandbox, sign_and_post
from tests.test_sender_signatures import ENTITY_SECRET, PADDED, UNPADDED, WOO_ORDER, php_signed

ENV = {
    "SHOPIFY_WEBHOOK_SECRET": "shopify-secret",
    "WOOCOMMERCE_WEBHOOK_SECRET": ENTITY_SECRET,
    "ERP_WEBHOOK_SECRET": UNPADDED,  # bare and unpadded, as some partners hand it over
    "MARKET_WEBHOOK_SECRET": "whsec_" + PADDED,
}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process, _ = serve_with_sandbox(
        tmp_path_factory.mktemp("senders"),
        """
[sources.shopify]
[sources.shopify.options]
company_id = 1
[sources.woocommerce]
[sources.woocommerce.options]
company_id = 1
[sources.erp]
mapping = "partner"
[sources.erp.options]
company_id = 1
[sources.market]
mapping = "partner"
[sources.market.options]
company_id = 1
""",
        ENV,
    )
    yield process
    process.stop()


def partner_order(order_id: str) -> str:
    order = json.loads((ROOT / "examples" / "partner-order.json").read_text())
    order["order_id"] = order_id
    return json.dumps(order)


def library_post(
    bridge: Process, source: str, signer: standardwebhooks.Webhook | svix.Webhook, prefix: str
) -> httpx.Response:
    msg_id = f"msg_{source}_{prefix}"
    body = partner_order(f"PO-{source}-{prefix}")
    now = datetime.now(tz=UTC)
    headers = {
        "Content-Type": "application/json",
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(int(now.timestamp())),
        f"{prefix}-signature": signer.sign(msg_id, now, body),
    }
    return httpx.post(f"{bridge.url}/webhooks/{source}", content=body, headers=headers, timeout=30)


def accepted(answer: httpx.Response) -> bool:
    """Invoiced (201), or still working on it (202), as DESIGN.md answers a good delivery."""
    return answer.status_code in (201, 202)


def test_each_senders_own_signature_is_accepted(bridge: Process) -> None:
    standard = library_post(bridge, "erp", standardwebhooks.Webhook(UNPADDED), "webhook")
    assert accepted(standard), standard.text
    through_svix = library_post(bridge, "market", svix.Webhook("whsec_" + PADDED), "svix")
    assert accepted(through_svix), through_svix.text
    again = library_post(bridge, "market", svix.Webhook("whsec_" + PADDED), "svix")
    assert again.status_code == 200 and again.json()["duplicate"] is True  # svix-id dedups

    signature, payload = php_signed(ENTITY_SECRET, WOO_ORDER)
    woo = httpx.post(
        f"{bridge.url}/webhooks/woocommerce",
        content=payload,
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": signature,
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Source": "https://shop.example/",
        },
        timeout=30,
    )
    assert accepted(woo), woo.text

    shopify = sign_and_post(
        bridge.url,
        "shopify",
        (ROOT / "examples" / "shopify-order.json").read_bytes(),
        ENV["SHOPIFY_WEBHOOK_SECRET"],
    )
    assert accepted(shopify), shopify.text

    other_key = standardwebhooks.Webhook(base64.b64encode(b"not the partner's key").decode())
    forged = library_post(bridge, "erp", other_key, "svix")
    assert forged.status_code == 401, forged.text
