"""The shop API clients: paging, throttling, tokens, versions, and no credential ever shown."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from bridge import wire
from bridge.config import load_settings
from bridge.errors import ConfigError, ShopAPIError
from bridge.shop_api import open_shop_client, shops_with_api
from bridge.shop_api.base import Window
from bridge.shop_api.shopify import ClientCredentials, LeakyBucket, ShopifyClient
from bridge.shop_api.woocommerce import WooCommerceClient
from bridge.shop_sandbox import ShopSandboxSettings, create_shop_sandbox_app

pytestmark = pytest.mark.anyio

NOW = dt.datetime.now(dt.UTC)
LAST_WEEK = Window(NOW - dt.timedelta(days=7))
SECRET_TOKEN = "shpat_0123456789abcdef0123456789abcdef"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def order(order_id: int, created: str = "2026-11-02T10:00:00-04:00") -> dict[str, object]:
    return {"id": order_id, "created_at": created, "updated_at": created, "total_price": "80.94"}


async def all_orders(
    client: ShopifyClient | WooCommerceClient, window: Window = LAST_WEEK
) -> list[str]:
    found = []
    async for page in client.pages(window):
        found += [o.order_id for o in page]
    return found


async def test_shopify_follows_page_info_alone_and_keeps_ids_and_money_exact() -> None:
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=600, bucket_size=1000))
    seen: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url)

    transport = httpx.ASGITransport(app=app)
    client = ShopifyClient(
        "acme.myshopify.com", "http://shop", token="shpat_x", transport=transport
    )
    client._http.event_hooks["request"].append(record)
    pages = [page async for page in client.pages(LAST_WEEK)]
    assert [len(page) for page in pages] == [250, 250, 100]
    first, *rest = seen
    assert first.params["status"] == "any" and first.params["limit"] == "250"
    assert "created_at_min" in first.params
    assert all(set(url.params) == {"limit", "page_info"} for url in rest)
    book = app.state.book.by_id()
    assert [o.order_id for page in pages for o in page] == [str(o["id"]) for o in book]
    one = pages[0][0]
    assert one.payload["id"] == book[0]["id"] > 2**53
    assert wire.loads(one.body)["id"] == book[0]["id"]
    assert one.payload["total_price"] == "80.94"
    assert isinstance(one.payload["tax_lines"][0]["rate"], Decimal)
    await client.aclose()


async def test_shopify_waits_out_a_429_for_its_retry_after_in_seconds() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "2.0"}, json={"errors": "Exceeded"}),
        httpx.Response(200, json={"orders": [order(1)]}),
    ]
    sleeps = Sleeps()
    client = ShopifyClient(
        "a.myshopify.com", "https://a.myshopify.com", token="shpat_x",
        transport=mock(lambda request: answers.pop(0)), sleep=sleeps,
    )  # fmt: skip
    assert await all_orders(client) == ["1"]
    assert sleeps == [2.0] and client.throttled == 1


async def test_shopify_paces_itself_by_the_call_limit_header() -> None:
    now = [0.0]
    bucket = LeakyBucket(clock=lambda: now[0])
    bucket.heard("39/40")
    assert bucket.wait() == pytest.approx((39 + 1 - 32) / 2)
    now[0] = 10.0  # 20 calls leaked: 19/40 is under the headroom
    assert bucket.wait() == 0
    bucket.heard("5/40")
    assert bucket.wait() == 0


async def test_shopify_keeps_under_a_real_bucket_without_429s() -> None:
    """120 orders at 2 a page against the stand-in's 40-call bucket leaking 2 a second."""
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=120))
    transport = httpx.ASGITransport(app=app)
    stand_in = app.state.stand_in
    now = [0.0]
    stand_in.bucket._clock = lambda: now[0]
    stand_in.bucket._at = 0.0

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    client = ShopifyClient(
        "a.myshopify.com", "http://shop", token="shpat_x", transport=transport, sleep=sleep,
        bucket=LeakyBucket(clock=lambda: now[0]),
    )  # fmt: skip
    client.page_limit = 2  # 60 requests: past the bucket's 40
    assert len(await all_orders(client)) == 120
    assert client.requests == 60 and client.throttled == 0
    assert now[0] > 0  # it had to wait for the bucket to leak


async def test_shopify_client_credentials_are_granted_and_renewed_before_expiry() -> None:
    grants: list[dict[str, str]] = []
    clock = [0.0]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/admin/oauth/access_token":
            form = dict(httpx.QueryParams(request.content.decode()))
            grants.append(form)
            return httpx.Response(
                200,
                json={
                    "access_token": f"shpat_{len(grants):032d}",
                    "scope": "read_orders",
                    "expires_in": 86399,
                },
            )
        assert request.headers["x-shopify-access-token"] == f"shpat_{len(grants):032d}"
        return httpx.Response(200, json={"orders": [order(7)]})

    credentials = ClientCredentials("the-id", "the-client-secret", clock=lambda: clock[0])
    client = ShopifyClient(
        "a.myshopify.com",
        "https://a.myshopify.com",
        credentials=credentials,
        transport=mock(handler),
    )
    await all_orders(client)
    await all_orders(client)
    assert len(grants) == 1
    assert grants[0] == {
        "grant_type": "client_credentials",
        "client_id": "the-id",
        "client_secret": "the-client-secret",
    }
    clock[0] = 86399 * 0.95  # within the last tenth of its life: renewed before it lapses
    await all_orders(client)
    assert len(grants) == 2


async def test_shopify_renews_a_refused_granted_token_once() -> None:
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=3, token_lifetime=100))
    stand_in = app.state.stand_in
    stand_in.clock = lambda: 0.0
    credentials = ClientCredentials("sandbox-client", "sandbox-secret")
    client = ShopifyClient(
        "a", "http://shop", credentials=credentials, transport=httpx.ASGITransport(app=app)
    )
    assert len(await all_orders(client)) == 3
    stand_in.clock = lambda: 1000.0  # the stand-in expired it early; ours still thinks it good
    assert len(await all_orders(client)) == 3
    assert len(stand_in.granted) == 2


async def test_shopify_logs_a_fall_forward_of_the_api_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=1))
    client = ShopifyClient(
        "a.myshopify.com",
        "http://shop",
        version="2024-01",
        token="shpat_x",
        transport=httpx.ASGITransport(app=app),
    )
    with caplog.at_level(logging.WARNING, "bridge.shop_api.shopify"):
        await all_orders(client)
    assert "answered with API version 2025-10, not the 2024-01 asked for" in caplog.text
    assert client.orders_url.endswith("/admin/api/2024-01/orders.json")


@pytest.mark.parametrize("status", [401, 403, 500])
async def test_tokens_never_appear_in_errors_or_logs(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("x-shopify-access-token") or request.headers.get(
            "authorization"
        )
        return httpx.Response(status, json={"errors": f"bad token {token}"})

    shop = ShopifyClient(
        "a.myshopify.com",
        "https://a.myshopify.com",
        token=SECRET_TOKEN,
        transport=mock(echo),
        sleep=Sleeps(),
    )
    woo = WooCommerceClient(
        "shop.example",
        "https://shop.example",
        key="ck_secretkey123",
        secret="cs_secretvalue456",
        transport=mock(echo),
        sleep=Sleeps(),
    )
    with caplog.at_level(logging.DEBUG):
        for client in (shop, woo):
            with pytest.raises(ShopAPIError) as raised:
                await all_orders(client)
            assert str(status) in str(raised.value)
            basic = base64.b64encode(b"ck_secretkey123:cs_secretvalue456").decode()
            for secret in (SECRET_TOKEN, "ck_secretkey123", "cs_secretvalue456", basic):
                assert secret not in str(raised.value) and secret not in caplog.text
            assert "[redacted]" in str(raised.value) or status == 500


async def test_woocommerce_pages_by_total_pages_with_basic_auth_and_an_inclusive_window() -> None:
    app = create_shop_sandbox_app("woocommerce", ShopSandboxSettings(generate=230))
    client = WooCommerceClient(
        "127.0.0.1",
        "http://site",
        key="ck_sandbox",
        secret="cs_sandbox",
        transport=httpx.ASGITransport(app=app),
    )
    assert len(await all_orders(client)) == 230
    assert client.requests == 3
    book = app.state.book.by_id()
    # WordPress's `after` is exclusive: an order created at the very start still counts.
    start = dt.datetime.fromisoformat(book[10]["date_created_gmt"]).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(book[20]["date_created_gmt"]).replace(tzinfo=dt.UTC)
    window = Window(start, end)
    assert await all_orders(client, window) == [str(o["id"]) for o in book[10:21]]


async def test_woocommerce_refused_keys_are_a_shop_api_error() -> None:
    app = create_shop_sandbox_app("woocommerce", ShopSandboxSettings(generate=1))
    client = WooCommerceClient(
        "127.0.0.1",
        "http://site",
        key="ck_sandbox",
        secret="cs_nope1234",
        transport=httpx.ASGITransport(app=app),
    )
    with pytest.raises(ShopAPIError, match="401: the shop refuses our API credentials"):
        await all_orders(client)


async def test_clients_are_built_from_shop_tables_and_env_vars(tmp_path: object) -> None:
    toml = """
[sources.shopify]
secret_env = "S"
[sources.shopify.shops."acme.myshopify.com"]
api_url = "https://acme.myshopify.com"
api_token_env = "ACME_TOKEN"
[sources.shopify.shops."other.myshopify.com"]
"""
    from pathlib import Path

    path = Path(str(tmp_path)) / "bridge.toml"
    path.write_text(toml)
    settings = load_settings(str(path), {"ACME_TOKEN": SECRET_TOKEN})
    source = settings.sources["shopify"]
    shops = shops_with_api(source)
    assert [shop.name for shop in shops] == ["acme.myshopify.com"]
    client = open_shop_client(source, shops[0])
    assert isinstance(client, ShopifyClient) and client.version == "2025-10"
    assert SECRET_TOKEN not in repr(shops[0])
    await client.aclose()
    unset = load_settings(str(path), {})
    with pytest.raises(ConfigError, match="api_token_env"):
        open_shop_client(unset.sources["shopify"], shops_with_api(unset.sources["shopify"])[0])
    with pytest.raises(ConfigError, match="api_url"):
        shops_with_api(source, "other.myshopify.com")
