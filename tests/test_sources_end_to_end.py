"""WooCommerce and partner deliveries over real sockets, signed as their senders sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bridge.wire import loads
from tests.conftest import ROOT, TESTS
from tests.harness import Process, run_cli, serve_with_sandbox, sign_and_post

WOO_SECRET = "woo-secret-for-tests"
PARTNER_SECRET = "whsec_" + base64.b64encode(b"partner-key-" * 3).decode()
ENV = {"WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET, "ERP_WEBHOOK_SECRET": PARTNER_SECRET}
WOO_ORDER = (
    TESTS / "golden" / "woocommerce" / "tax-inclusive-vat-20-coupon-taxed-shipping" / "body.json"
)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    process, config = serve_with_sandbox(
        tmp_path_factory.mktemp("sources"),
        """
[sources.woocommerce]
[sources.woocommerce.options]
company_id = 1

[sources.erp]
mapping = "partner"
secret_env = "ERP_WEBHOOK_SECRET"
[sources.erp.options]
company_id = 1
""",
        ENV,
    )
    yield process, config
    process.stop()


def sandbox_total(bridge: Process, invoice_id: int) -> Decimal:
    answer = httpx.get(
        f"{bridge.url}/external/api/v1/invoices/{invoice_id}", headers={"Authorization": "Bearer x"}
    )
    total: Decimal = loads(answer.content)["data"]["total"]
    return total


def standard_signature(secret: str, msg_id: str, stamp: int, payload: bytes) -> str:
    """Signed as the Standard Webhooks specification says, independently of the bridge's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{stamp}.".encode() + payload
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_a_woocommerce_order_becomes_an_invoice_with_the_orders_total(
    bridge: tuple[Process, Path],
) -> None:
    process, _ = bridge
    payload = WOO_ORDER.read_bytes()
    answer = sign_and_post(
        process.url,
        "woocommerce",
        payload,
        WOO_SECRET,
        scheme="woocommerce-hmac",
        topic="order.created",
        shop="https://shop.example/",
    )
    assert answer.status_code == 201, answer.text
    order = loads(payload)
    assert sandbox_total(process, answer.json()["invoice_id"]) == Decimal(order["total"])
    again = sign_and_post(
        process.url,
        "woocommerce",
        payload,
        WOO_SECRET,
        scheme="woocommerce-hmac",
        topic="order.updated",
        shop="https://shop.example/",
    )
    assert again.json()["invoice_id"] == answer.json()["invoice_id"] and again.json()["duplicate"]


def test_the_woocommerce_ping_gets_200(bridge: tuple[Process, Path]) -> None:
    process, _ = bridge
    ping = httpx.post(
        f"{process.url}/webhooks/woocommerce",
        content=b"webhook_id=17",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ping.status_code == 200


def test_the_partner_example_signed_by_the_spec_answers_201(bridge: tuple[Process, Path]) -> None:
    process, _ = bridge
    payload = (ROOT / "examples" / "partner-order.json").read_bytes()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_example_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_signature(PARTNER_SECRET, "msg_example_1", stamp, payload),
    }
    answer = httpx.post(f"{process.url}/webhooks/erp", content=payload, headers=headers, timeout=30)
    assert answer.status_code == 201, answer.text
    order = json.loads(payload)
    assert sandbox_total(process, answer.json()["invoice_id"]) == Decimal(order["total"])

    stale = int(time.time()) - 600
    old = dict(
        headers,
        **{
            "webhook-id": "msg_example_2",
            "webhook-timestamp": str(stale),
            "webhook-signature": standard_signature(
                PARTNER_SECRET, "msg_example_2", stale, payload
            ),
        },
    )
    refused = httpx.post(f"{process.url}/webhooks/erp", content=payload, headers=old)
    assert refused.status_code == 401 and "tolerance" in refused.json()["message"]
    forged = dict(
        headers,
        **{"webhook-signature": standard_signature(PARTNER_SECRET, "other", stamp, payload)},
    )
    assert (
        httpx.post(f"{process.url}/webhooks/erp", content=payload, headers=forged).status_code
        == 401
    )


def test_bridge_send_signs_partner_orders_too(bridge: tuple[Process, Path], tmp_path: Path) -> None:
    process, config = bridge
    order = json.loads((ROOT / "examples" / "partner-order.json").read_text())
    order["order_id"] = "PO-SEND-1"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order))
    sent = run_cli("send", "erp", str(path), "--url", process.url, "--config", str(config), env=ENV)
    assert sent.returncode == 0 and sent.stdout.startswith("HTTP 201"), sent.stdout + sent.stderr


def test_a_partner_order_with_a_wrong_field_gets_422_naming_it(
    bridge: tuple[Process, Path],
) -> None:
    process, _ = bridge
    order = json.loads((ROOT / "examples" / "partner-order.json").read_text())
    order["order_id"] = "PO-BAD-1"
    order["lines"][0]["quantity"] = 0
    answer = sign_and_post(
        process.url,
        "erp",
        json.dumps(order).encode(),
        PARTNER_SECRET,
        scheme="standard-webhooks",
        delivery_id="msg_bad_1",
    )
    assert answer.status_code == 422
    assert {
        "field": "lines[0].quantity",
        "problem": "must be greater than 0, got 0",
    } in answer.json()["details"]
    order["order_id"] = "PO-BAD-2"
    order["lines"][0]["quantity"] = 1
    order["total"] = "0.01"
    unreconciled = sign_and_post(
        process.url,
        "erp",
        json.dumps(order).encode(),
        PARTNER_SECRET,
        scheme="standard-webhooks",
        delivery_id="msg_bad_2",
    )
    assert unreconciled.status_code == 422 and unreconciled.json()["error"] == "dead"
    assert unreconciled.json()["details"][0]["field"] == "total"


def test_the_partner_schema_is_published(bridge: tuple[Process, Path]) -> None:
    process, _ = bridge
    answer = httpx.get(f"{process.url}/schemas/partner-order.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/schema+json")
    schema = answer.json()
    assert "order_id" in schema["required"] and "lines" in schema["properties"]


def test_a_woocommerce_order_is_invoiced_once_it_reaches_an_invoice_status(
    bridge: tuple[Process, Path],
) -> None:
    process, _ = bridge
    order = json.loads((ROOT / "examples" / "woocommerce-order.json").read_text())
    order["id"] = 99001
    order["number"] = "99001"

    def post(status: str, topic: str) -> httpx.Response:
        payload = json.dumps({**order, "status": status}).encode()
        return sign_and_post(
            process.url,
            "woocommerce",
            payload,
            WOO_SECRET,
            scheme="woocommerce-hmac",
            topic=topic,
            shop="https://shop.example/",
        )

    pending = post("pending", "order.created")
    assert pending.status_code == 200 and pending.json()["status"] == "skipped"
    assert "pending" in pending.json()["reason"]
    processing = post("processing", "order.updated")
    assert processing.status_code == 201, processing.text
    assert sandbox_total(process, processing.json()["invoice_id"]) == Decimal(order["total"])
    completed = post("completed", "order.updated")
    assert completed.status_code == 200 and completed.json()["duplicate"] is True
    assert completed.json()["invoice_id"] == processing.json()["invoice_id"]
