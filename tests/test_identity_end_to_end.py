"""An order's identity over real sockets: captured, correctly signed bodies (the shared real
fixtures) posted again with forged shop and topic headers make no second invoice and no tag;
shop tables take only their shops, each signed with its own secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TESTS
from tests.harness import (
    Process,
    admin_events,
    run_cli,
    sandbox_invoices,
    serve_with_sandbox,
    sign_and_post,
)

GOLDEN = TESTS / "golden"
# Shopify's dev-store order #1044 (id 4359400227009, paid, not cancelled): its total adds up.
TIP_ORDER = (GOLDEN / "shopify" / "fixture-cad-tip-and-shipping" / "body.json").read_bytes()
TIP_ID = "4359400227009"
# WooCommerce's documented order 727 (links to https://example.com/wp-json/…) and a test site's
# order 205 (links to http://localhost:8080/wordpress/index.php?rest_route=…).
WOO_727 = GOLDEN / "woocommerce" / "fixture-727-completed-guest-flat-rate" / "body.json"
WOO_205 = GOLDEN / "woocommerce" / "fixture-205-inr-on-hold-line-tax" / "body.json"

ADMIN = "identity-admin"
SECRETS = {
    "SHOPIFY_WEBHOOK_SECRET": "shared-app-secret",
    "ACME_SECRET": "acme-own-secret",
    "BETA_SECRET": "beta-own-secret",
    "EXAMPLE_SECRET": "example-com-secret",
    "WORDPRESS_SECRET": "wordpress-secret",
}
ENV = {**SECRETS, "BRIDGE_ADMIN_TOKEN": ADMIN}
CONFIG = """
[server]
respond_within = 5.0

[sources.shopify]             # one app secret, any shop (the finding's setup)
topics = ["orders/create", "orders/updated"]
[sources.shopify.options]
skip_test_orders = false
fallback_sku = "MISC"
[sources.shopify.tag_topics]
"orders/cancelled" = "cancelled"
"refunds/create" = "refunded"

[sources.shops]               # Shopify shops, each with its own webhook secret
mapping = "shopify"
[sources.shops.shops."acme.myshopify.com"]
secret_env = "ACME_SECRET"
po_prefix = "AC-"
[sources.shops.shops."beta.myshopify.com"]
secret_env = "BETA_SECRET"
po_prefix = "BE-"
[sources.shops.options]
skip_test_orders = false
fallback_sku = "MISC"

[sources.woocommerce]
[sources.woocommerce.shops."https://example.com"]
secret_env = "EXAMPLE_SECRET"
po_prefix = "EX-"
[sources.woocommerce.shops."localhost:8080/wordpress"]
secret_env = "WORDPRESS_SECRET"
[sources.woocommerce.options]
invoice_statuses = ["processing", "completed", "on-hold"]
fallback_sku = "MISC"
"""


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    process, config = serve_with_sandbox(tmp_path_factory.mktemp("identity"), CONFIG, ENV)
    yield process, config
    process.stop()


def post(
    bridge: Process,
    source: str,
    body: bytes,
    secret: str,
    *,
    shop: str,
    topic: str = "orders/create",
    delivery_id: str | None = None,
    scheme: str = "shopify-hmac",
) -> httpx.Response:
    return sign_and_post(
        bridge.url,
        source,
        body,
        SECRETS[secret],
        scheme=scheme,
        topic=topic,
        shop=shop,
        delivery_id=delivery_id or f"forged-{uuid.uuid4()}",  # a fresh X-Shopify-Webhook-Id
    )


def from_acme(
    bridge: Process, body: bytes, topic: str, delivery_id: str | None = None
) -> httpx.Response:
    """A delivery to the one-secret source, naming acme.myshopify.com."""
    return post(
        bridge,
        "shopify",
        body,
        "SHOPIFY_WEBHOOK_SECRET",
        shop="acme.myshopify.com",
        topic=topic,
        delivery_id=delivery_id,
    )


def woo(bridge: Process, path: Path, secret: str, shop: str) -> httpx.Response:
    return post(
        bridge,
        "woocommerce",
        path.read_bytes(),
        secret,
        shop=shop,
        topic="order.created",
        scheme="woocommerce-hmac",
    )


def invoices(bridge: Process, po_number: str) -> list[dict[str, Any]]:
    return sandbox_invoices(bridge.url, token="any", **{"customer_po_number[eq]": po_number})


def tags(bridge: Process, invoice_id: int) -> list[str]:
    answer = httpx.get(
        f"{bridge.url}/external/api/v1/invoices/{invoice_id}",
        headers={"Authorization": "Bearer any"},
    )
    return [tag["name"] for tag in answer.json()["data"]["tags"]]


def events(bridge: Process, source: str, order: str) -> list[dict[str, Any]]:
    return admin_events(bridge.url, ADMIN, source=source, order=order)


def test_forged_shop_headers_make_no_second_invoice(bridge: tuple[Process, Path]) -> None:
    process, _ = bridge
    first = from_acme(process, TIP_ORDER, "orders/create")
    assert first.status_code == 201, first.text
    invoice_id = first.json()["invoice_id"]
    for forged in ("acme.myshopify.com.", "ACME.myshopify.com..", "evil.myshopify.com"):
        again = post(process, "shopify", TIP_ORDER, "SHOPIFY_WEBHOOK_SECRET", shop=forged)
        assert again.status_code == 200, (forged, again.text)
        assert again.json()["duplicate"] is True and again.json()["invoice_id"] == invoice_id
    assert len(invoices(process, "#1044")) == 1
    recorded = events(process, "shopify", TIP_ID)
    assert len(recorded) == 4
    # Every event names the order, and its shop in one spelling.
    assert {(e["order_id"], e["order_name"]) for e in recorded} == {(TIP_ID, "#1044")}
    assert sorted(e["shop"] for e in recorded) == [
        "acme.myshopify.com",
        "acme.myshopify.com",
        "acme.myshopify.com",
        "evil.myshopify.com",
    ]


def test_forged_topics_tag_nothing(bridge: tuple[Process, Path]) -> None:
    process, _ = bridge
    [invoice] = invoices(process, "#1044")
    for topic, lacks in (("orders/cancelled", "cancelled_at"), ("refunds/create", "refund")):
        answer = from_acme(process, TIP_ORDER, topic)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "skipped" and lacks in answer.json()["reason"]
    assert tags(process, invoice["id"]) == []
    assert len(invoices(process, "#1044")) == 1


def test_a_forged_topic_cannot_make_the_genuine_delivery_a_repeat(
    bridge: tuple[Process, Path],
) -> None:
    process, _ = bridge
    [invoice] = invoices(process, "#1044")
    order = json.loads(TIP_ORDER)
    cancellation = json.dumps(
        {**order, "cancelled_at": "2022-04-07T09:00:00-04:00", "cancel_reason": "customer"}
    ).encode()
    webhook_id = f"genuine-{uuid.uuid4()}"
    # Someone who saw the genuine cancellation posts its bytes and id first, under another topic.
    shadow = from_acme(process, cancellation, "orders/updated", webhook_id)
    assert shadow.status_code == 200 and "duplicate" not in shadow.json(), shadow.text
    genuine = from_acme(process, cancellation, "orders/cancelled", webhook_id)
    assert genuine.status_code == 200, genuine.text
    assert genuine.json()["status"] == "tagged" and "duplicate" not in genuine.json()
    assert genuine.json()["invoice_id"] == invoice["id"]
    assert tags(process, invoice["id"]) == ["cancelled"]
    repeat = from_acme(process, cancellation, "orders/cancelled", webhook_id)
    assert repeat.json()["duplicate"] is True and repeat.json()["status"] == "tagged"


def test_shop_tables_take_only_their_shops_each_with_its_own_secret(
    bridge: tuple[Process, Path],
) -> None:
    process, _ = bridge
    acme = post(process, "shops", TIP_ORDER, "ACME_SECRET", shop="acme.myshopify.com")
    assert acme.status_code == 201, acme.text
    [invoice] = invoices(process, "AC-#1044")  # the shop table's po_prefix
    assert invoice["id"] == acme.json()["invoice_id"]
    claims_beta = post(process, "shops", TIP_ORDER, "ACME_SECRET", shop="beta.myshopify.com")
    assert claims_beta.status_code == 403 and claims_beta.json()["error"] == "shop_mismatch"
    assert "acme.myshopify.com" in claims_beta.json()["message"]
    claims_acme = post(process, "shops", TIP_ORDER, "BETA_SECRET", shop="acme.myshopify.com")
    assert claims_acme.status_code == 403 and claims_acme.json()["error"] == "shop_mismatch"
    unlisted = post(process, "shops", TIP_ORDER, "ACME_SECRET", shop="evil.myshopify.com")
    assert unlisted.status_code == 403
    app_secret = post(
        process, "shops", TIP_ORDER, "SHOPIFY_WEBHOOK_SECRET", shop="acme.myshopify.com"
    )
    assert app_secret.status_code == 401
    respelled = post(process, "shops", TIP_ORDER, "ACME_SECRET", shop="ACME.myshopify.com..")
    assert respelled.status_code == 200 and respelled.json()["duplicate"] is True
    # Beta's own delivery of that order id is the same Shopify order: ids are unique across shops.
    beta = post(process, "shops", TIP_ORDER, "BETA_SECRET", shop="beta.myshopify.com")
    assert beta.status_code == 200 and beta.json()["invoice_id"] == invoice["id"]
    assert invoices(process, "BE-#1044") == []


def test_woocommerce_sites_are_told_apart_by_secret_and_by_their_links(
    bridge: tuple[Process, Path],
) -> None:
    process, _ = bridge
    created = woo(process, WOO_727, "EXAMPLE_SECRET", "https://example.com/")
    assert created.status_code == 201, created.text
    assert [i["id"] for i in invoices(process, "EX-#727")] == [created.json()["invoice_id"]]
    respelled = woo(process, WOO_727, "EXAMPLE_SECRET", "HTTPS://Example.com:443")
    assert respelled.status_code == 200 and respelled.json()["duplicate"] is True
    # Signed by the other site, whose secret is its own: its links say example.com.
    body_says = woo(process, WOO_727, "WORDPRESS_SECRET", "http://localhost:8080/wordpress/")
    assert body_says.status_code == 403 and body_says.json()["error"] == "shop_mismatch"
    assert "'example.com'" in body_says.json()["message"]
    secret_says = woo(process, WOO_727, "EXAMPLE_SECRET", "http://localhost:8080/wordpress/")
    assert secret_says.status_code == 403 and secret_says.json()["error"] == "shop_mismatch"
    # The index.php?rest_route= shape names the WordPress site in a subfolder.
    other = woo(process, WOO_205, "WORDPRESS_SECRET", "http://localhost:8080/wordpress/")
    assert other.status_code == 201, other.text
    assert len(invoices(process, "EX-#727")) == 1 and len(invoices(process, "#205")) == 1
    shops = {e["shop"] for e in events(process, "woocommerce", "727")}
    assert shops == {"example.com"}


def test_bridge_send_signs_with_the_shops_own_secret(
    bridge: tuple[Process, Path], tmp_path: Path
) -> None:
    process, config = bridge
    args = ["--url", process.url, "--config", str(config)]
    # The body's links name example.com, whose secret signs it.
    sent = run_cli("send", "woocommerce", str(WOO_727), "--topic", "order.updated", *args, env=ENV)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("HTTP 200") and '"duplicate": true' in sent.stdout
    order = tmp_path / "tip.json"
    order.write_bytes(TIP_ORDER)
    beta = run_cli("send", "shops", str(order), "--shop", "beta.myshopify.com", *args, env=ENV)
    assert beta.returncode == 0 and beta.stdout.startswith("HTTP 200"), beta.stdout + beta.stderr
    default = run_cli("send", "shops", str(order), *args, env=ENV)  # the first shop table: acme
    assert default.returncode == 0 and default.stdout.startswith("HTTP 200"), default.stderr
    missing = run_cli("send", "shops", str(order), *args, env={**ENV, "ACME_SECRET": ""})
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        'bridge: configuration error: sources.shops.shops."acme.myshopify.com".secret_env: '
        "ACME_SECRET is not set"
    )
