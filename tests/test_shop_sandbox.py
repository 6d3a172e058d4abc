"""The shop stand-ins against shop-apis.md §6, one test per behaviour listed there.

Raw httpx requests, never the bridge's own shop clients: a stand-in written by the same
hands as a client would otherwise agree with it by construction.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bridge import wire
from bridge.mapping import Draft, Skip, load_mapping
from bridge.shop_sandbox import ShopSandboxSettings, create_shop_sandbox_app
from bridge.shop_sandbox.orders import OrderBook, template
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

ORDERS = "/admin/api/2025-10/orders.json"
BAD_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
TOKEN = {"X-Shopify-Access-Token": "shpat_any"}
WOO = "/wp-json/wc/v3/orders"
WOO_AUTH = ("ck_sandbox", "cs_sandbox")


class StandIn(httpx.AsyncClient):
    """A plain httpx client on a stand-in app, which it keeps at hand for the test."""

    def __init__(self, app: Starlette, base_url: str, **options: Any) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url=base_url, **options)
        self.app = app


def shopify(count: int = 0, **settings: Any) -> StandIn:
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=count, **settings))
    return StandIn(app, "http://shop")


def woo(count: int = 0, **settings: Any) -> StandIn:
    app = create_shop_sandbox_app("woocommerce", ShopSandboxSettings(generate=count, **settings))
    return StandIn(app, "http://site", auth=WOO_AUTH)


@pytest.fixture
async def shop() -> AsyncIterator[StandIn]:
    async with shopify(120, bucket_size=1000) as client:
        yield client


def book(client: StandIn) -> OrderBook:
    found: OrderBook = client.app.state.book
    return found


def ids(answer: httpx.Response) -> list[int]:
    return [order["id"] for order in wire.loads(answer.content)["orders"]]


# -- Shopify ----------------------------------------------------------------------------


async def test_shopify_refuses_a_missing_or_wrong_token_with_its_401_body() -> None:
    async with shopify(3, token="shpat_right") as client:
        for headers in ({}, {"X-Shopify-Access-Token": "shpat_wrong"}):
            answer = await client.get(ORDERS, headers=headers)
            assert answer.status_code == 401
            assert answer.json() == {"errors": BAD_TOKEN}
        assert (
            await client.get(ORDERS, headers={"X-Shopify-Access-Token": "shpat_right"})
        ).status_code == 200


async def test_shopify_status_defaults_to_open(shop: StandIn) -> None:
    orders = book(shop).by_id()
    orders[0]["closed_at"] = "2026-01-01T00:00:00-04:00"
    orders[1]["cancelled_at"] = "2026-01-01T00:00:00-04:00"
    default = ids(await shop.get(ORDERS, params={"limit": 250}, headers=TOKEN))
    assert orders[0]["id"] not in default and orders[1]["id"] not in default
    every = ids(await shop.get(ORDERS, params={"limit": 250, "status": "any"}, headers=TOKEN))
    assert {orders[0]["id"], orders[1]["id"]} <= set(every) and len(every) == 120
    closed = ids(await shop.get(ORDERS, params={"status": "closed"}, headers=TOKEN))
    assert closed == [orders[0]["id"]]


async def test_shopify_time_filters_are_inclusive(shop: StandIn) -> None:
    target = book(shop).by_id()[10]
    moment = target["created_at"]
    for name in ("created_at_min", "created_at_max"):
        found = ids(
            await shop.get(
                ORDERS, params={name: moment, "status": "any", "limit": 250}, headers=TOKEN
            )
        )
        assert target["id"] in found
    exact = {"created_at_min": moment, "created_at_max": moment, "status": "any"}
    assert ids(await shop.get(ORDERS, params=exact, headers=TOKEN)) == [target["id"]]
    updated = {"updated_at_min": target["updated_at"], "updated_at_max": target["updated_at"]}
    assert ids(await shop.get(ORDERS, params={**updated, "status": "any"}, headers=TOKEN)) == [
        target["id"]
    ]


async def test_shopify_since_id_ids_fields_and_financial_status(shop: StandIn) -> None:
    orders = book(shop).by_id()
    after = ids(
        await shop.get(
            ORDERS, params={"since_id": orders[-3]["id"], "status": "any"}, headers=TOKEN
        )
    )
    assert after == [orders[-2]["id"], orders[-1]["id"]]
    wanted = f"{orders[4]['id']},{orders[7]['id']}"
    assert ids(await shop.get(ORDERS, params={"ids": wanted, "status": "any"}, headers=TOKEN)) == [
        orders[4]["id"],
        orders[7]["id"],
    ]
    narrow = await shop.get(
        ORDERS, params={"ids": wanted, "fields": "id,name", "status": "any"}, headers=TOKEN
    )
    assert all(set(order) == {"id", "name"} for order in narrow.json()["orders"])
    orders[5]["financial_status"] = "refunded"
    refunded = {"financial_status": "refunded", "status": "any"}
    assert ids(await shop.get(ORDERS, params=refunded, headers=TOKEN)) == [orders[5]["id"]]


async def test_shopify_limit_is_50_by_default_and_at_most_250(shop: StandIn) -> None:
    assert len(ids(await shop.get(ORDERS, params={"status": "any"}, headers=TOKEN))) == 50
    assert (
        len(ids(await shop.get(ORDERS, params={"status": "any", "limit": 250}, headers=TOKEN)))
        == 120
    )
    for bad in ("251", "0", "ten"):
        assert (await shop.get(ORDERS, params={"limit": bad}, headers=TOKEN)).status_code == 400


async def test_shopify_pages_by_an_opaque_page_info_in_the_link_header(shop: StandIn) -> None:
    first = await shop.get(ORDERS, params={"status": "any", "limit": 50}, headers=TOKEN)
    link = first.headers["link"]
    assert re.fullmatch(
        r'<http://shop/admin/api/2025-10/orders\.json\?limit=50&page_info=[\w-]+>; rel="next"', link
    )
    seen = ids(first)
    url = link[1:].split(">")[0]
    second = await shop.get(url, headers=TOKEN)
    both = second.headers["link"].split(", ")
    assert both[0].endswith('rel="previous"') and both[1].endswith('rel="next"')
    seen += ids(second)
    third = await shop.get(both[1][1:].split(">")[0], headers=TOKEN)
    assert third.headers["link"].endswith('rel="previous"') and "next" not in third.headers["link"]
    seen += ids(third)
    assert seen == [order["id"] for order in book(shop).by_id()]
    previous = await shop.get(third.headers["link"][1:].split(">")[0], headers=TOKEN)
    assert ids(previous) == ids(second)


async def test_shopify_sends_no_link_when_one_page_holds_everything() -> None:
    async with shopify(5) as client:
        answer = await client.get(ORDERS, params={"status": "any"}, headers=TOKEN)
        assert len(ids(answer)) == 5 and "link" not in answer.headers


async def test_shopify_refuses_filters_beside_page_info_and_any_page(shop: StandIn) -> None:
    first = await shop.get(ORDERS, params={"status": "any"}, headers=TOKEN)
    url = first.headers["link"][1:].split(">")[0]
    mixed = await shop.get(url + "&created_at_min=2020-01-01T00:00:00Z", headers=TOKEN)
    assert mixed.status_code == 400
    assert mixed.json() == {
        "errors": {"created_at_min": "created_at_min cannot be passed when page_info is present."}
    }
    paged = await shop.get(ORDERS, params={"page": 2}, headers=TOKEN)
    assert paged.status_code == 400 and paged.json() == {
        "errors": {"page": "page cannot be passed."}
    }
    forged = await shop.get(ORDERS, params={"page_info": "not-a-cursor"}, headers=TOKEN)
    assert forged.status_code == 400


async def test_shopify_single_order_count_and_404(shop: StandIn) -> None:
    order = book(shop).by_id()[3]
    one = await shop.get(f"/admin/api/2025-10/orders/{order['id']}.json", headers=TOKEN)
    assert wire.loads(one.content) == {"order": order}
    assert (
        await shop.get(
            "/admin/api/2025-10/orders/count.json", params={"status": "any"}, headers=TOKEN
        )
    ).json() == {"count": 120}
    missing = await shop.get("/admin/api/2025-10/orders/1.json", headers=TOKEN)
    assert missing.status_code == 404 and missing.json() == {"errors": "Not Found"}


async def test_shopify_leaky_bucket_of_40_leaking_2_a_second() -> None:
    async with shopify(3) as client:
        answers = [await client.get(ORDERS, headers=TOKEN) for _ in range(41)]
    assert [a.headers["x-shopify-shop-api-call-limit"] for a in answers[:3]] == [
        "1/40",
        "2/40",
        "3/40",
    ]
    assert (
        answers[39].status_code == 200
        and answers[39].headers["x-shopify-shop-api-call-limit"] == "40/40"
    )
    throttled = answers[40]
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2.0"
    assert "Exceeded 2 calls per second" in throttled.json()["errors"]


async def test_shopify_bucket_leaks_at_its_rate() -> None:
    app = create_shop_sandbox_app("shopify", ShopSandboxSettings(generate=1))
    stand_in = app.state.stand_in
    now = [0.0]
    stand_in.bucket._clock = lambda: now[0]
    stand_in.bucket._at = 0.0
    for _ in range(39):
        assert stand_in.bucket.take()
    now[0] = 10.0  # "39/40, then after ten seconds 19/40"
    assert stand_in.bucket.used == 19


async def test_shopify_echoes_the_api_version_and_falls_forward() -> None:
    async with shopify(1) as client:
        assert (await client.get(ORDERS, headers=TOKEN)).headers[
            "x-shopify-api-version"
        ] == "2025-10"
        old = await client.get("/admin/api/2023-01/orders.json", headers=TOKEN)
        assert old.status_code == 200 and old.headers["x-shopify-api-version"] == "2025-10"


async def test_shopify_ids_beyond_2_to_the_53_come_exact_and_money_as_strings(
    shop: StandIn,
) -> None:
    raw = (await shop.get(ORDERS, params={"limit": 1}, headers=TOKEN)).content
    order_id = book(shop).by_id()[0]["id"]
    assert order_id > 2**53 and str(order_id).encode() in raw
    assert float(order_id) != order_id  # a float would lose it
    parsed = json.loads(raw, parse_float=Decimal)["orders"][0]
    assert parsed["id"] == order_id and isinstance(parsed["total_price"], str)


async def test_shopify_hides_orders_older_than_60_days_without_read_all_orders() -> None:
    old = template("shopify") | {
        "id": 7_000_000_000_000_000_001,
        "created_at": "2020-01-01T00:00:00Z",
    }
    for scopes, expected in (
        (("read_orders",), []),
        (("read_orders", "read_all_orders"), [old["id"]]),
    ):
        async with shopify(0, scopes=scopes) as client:
            book(client).put(old)
            assert (
                ids(await client.get(ORDERS, params={"status": "any"}, headers=TOKEN)) == expected
            )
            scopes_seen = (
                await client.get("/admin/oauth/access_scopes.json", headers=TOKEN)
            ).json()
            assert [s["handle"] for s in scopes_seen["access_scopes"]] == list(scopes)


async def test_shopify_includes_test_orders_flagged_test_true(shop: StandIn) -> None:
    orders = (await shop.get(ORDERS, params={"status": "any", "limit": 250}, headers=TOKEN)).json()[
        "orders"
    ]
    flagged = [order for order in orders if order["test"] is True]
    assert 0 < len(flagged) < len(orders)


async def test_shopify_client_credentials_grant_and_token_expiry() -> None:
    app = create_shop_sandbox_app(
        "shopify", ShopSandboxSettings(generate=1, token="shpat_static", token_lifetime=100)
    )
    stand_in = app.state.stand_in
    now = [0.0]
    stand_in.clock = lambda: now[0]
    async with StandIn(app, "http://shop") as client:
        wrong = await client.post(
            "/admin/oauth/access_token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "nope",
            },
        )
        assert wrong.status_code == 401
        granted = (
            await client.post(
                "/admin/oauth/access_token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "sandbox-client",
                    "client_secret": "sandbox-secret",
                },
            )
        ).json()
        assert granted["access_token"].startswith("shpat_") and granted["expires_in"] == 100
        assert granted["scope"] == "read_orders"
        header = {"X-Shopify-Access-Token": granted["access_token"]}
        assert (await client.get(ORDERS, headers=header)).status_code == 200
        now[0] = 100.0
        assert (await client.get(ORDERS, headers=header)).status_code == 401


async def test_shopify_faults_fail_throttle_and_delay() -> None:
    async with shopify(1, fail_rate=1.0, fault_seed=1) as client:
        assert (await client.get(ORDERS, headers=TOKEN)).status_code in (500, 502, 503)
    async with shopify(1, throttle_rate=1.0) as client:
        answer = await client.get(ORDERS, headers=TOKEN)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "2.0"
    async with shopify(1, latency_ms=200) as client:
        started = dt.datetime.now()
        await client.get(ORDERS, headers=TOKEN)
        assert dt.datetime.now() - started >= dt.timedelta(milliseconds=190)


# -- WooCommerce ------------------------------------------------------------------------


async def test_woocommerce_basic_auth_or_query_keys_and_its_401_bodies() -> None:
    async with woo(3) as client:
        assert (await client.get(WOO)).status_code == 200
        anonymous = await client.get(WOO, auth=None)
        assert (
            anonymous.status_code == 401
            and anonymous.json()["code"] == "woocommerce_rest_cannot_view"
        )
        wrong = await client.get(WOO, auth=("ck_sandbox", "cs_wrong"))
        assert wrong.json() == {
            "code": "woocommerce_rest_authentication_error",
            "message": "Consumer secret is invalid.",
            "data": {"status": 401},
        }
        query = {"consumer_key": "ck_sandbox", "consumer_secret": "cs_sandbox"}
        assert (await client.get(WOO, params=query, auth=None)).status_code == 200


async def test_woocommerce_per_page_is_10_by_default_and_1_to_100() -> None:
    async with woo(130) as client:
        assert len((await client.get(WOO)).json()) == 10
        assert len((await client.get(WOO, params={"per_page": 100})).json()) == 100
        refused = await client.get(WOO, params={"per_page": 101})
        assert refused.status_code == 400
        body = refused.json()
        assert body["code"] == "rest_invalid_param" and body["data"]["status"] == 400
        assert body["data"]["params"] == {
            "per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"
        }


async def test_woocommerce_after_and_before_are_exclusive_in_gmt_or_local_time() -> None:
    async with woo(20) as client:
        target = book(client).by_id()[5]
        gmt = {"dates_are_gmt": "true", "per_page": 100}
        after = [
            o["id"]
            for o in (
                await client.get(WOO, params={**gmt, "after": target["date_created_gmt"]})
            ).json()
        ]
        assert target["id"] not in after and book(client).by_id()[6]["id"] in after
        before = [
            o["id"]
            for o in (
                await client.get(WOO, params={**gmt, "before": target["date_created_gmt"]})
            ).json()
        ]
        assert target["id"] not in before and book(client).by_id()[4]["id"] in before
        # Without dates_are_gmt the same digits are read as the site's local time (UTC-4).
        local = [
            o["id"]
            for o in (
                await client.get(WOO, params={"per_page": 100, "after": target["date_created"]})
            ).json()
        ]
        assert target["id"] not in local and book(client).by_id()[6]["id"] in local
        shifted = [
            o["id"]
            for o in (
                await client.get(WOO, params={"per_page": 100, "after": target["date_created_gmt"]})
            ).json()
        ]
        assert len(shifted) < len(after)  # GMT digits read as local time are 4 hours later
        modified = {**gmt, "modified_after": target["date_modified_gmt"]}
        assert target["id"] not in [
            o["id"] for o in (await client.get(WOO, params=modified)).json()
        ]


async def test_woocommerce_orders_by_date_descending_unless_asked() -> None:
    async with woo(12) as client:
        default = [o["id"] for o in (await client.get(WOO, params={"per_page": 100})).json()]
        assert default == sorted(default, reverse=True)
        ascending = (
            await client.get(WOO, params={"per_page": 100, "order": "asc", "orderby": "modified"})
        ).json()
        assert [o["id"] for o in ascending] == sorted(default)


async def test_woocommerce_status_is_any_by_default_without_trash() -> None:
    async with woo(5) as client:
        orders = book(client).by_id()
        orders[0]["status"] = "trash"
        orders[1]["status"] = "completed"
        listed = [o["id"] for o in (await client.get(WOO)).json()]
        assert orders[0]["id"] not in listed and len(listed) == 4
        assert [
            o["id"] for o in (await client.get(WOO, params={"status": "completed"})).json()
        ] == [orders[1]["id"]]


async def test_woocommerce_counts_pages_links_prev_next_and_answers_empty_past_the_end() -> None:
    async with woo(25) as client:
        first = await client.get(WOO, params={"per_page": 10})
        assert first.headers["x-wp-total"] == "25" and first.headers["x-wp-totalpages"] == "3"
        assert first.headers["link"].endswith('rel="next"') and "prev" not in first.headers["link"]
        middle = (await client.get(WOO, params={"per_page": 10, "page": 2})).headers["link"]
        assert [part.rsplit("rel=", 1)[1] for part in middle.split(", ")] == ['"prev"', '"next"']
        assert "first" not in middle and "last" not in middle
        past = await client.get(WOO, params={"per_page": 10, "page": 9})
        assert past.status_code == 200 and past.json() == []


async def test_woocommerce_money_as_strings_price_as_number_and_gmt_dates_without_offset() -> None:
    async with woo(1) as client:
        order = json.loads((await client.get(WOO)).content, parse_float=Decimal)[0]
        assert isinstance(order["total"], str) and re.fullmatch(r"\d+\.\d\d", order["total"])
        assert isinstance(order["line_items"][0]["price"], int | Decimal)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", order["date_created_gmt"])
        missing = await client.get(f"{WOO}/1")
        assert (
            missing.status_code == 404
            and missing.json()["code"] == "woocommerce_rest_shop_order_invalid_id"
        )


# -- the orders themselves --------------------------------------------------------------


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
async def test_generated_orders_are_what_the_webhook_carries_and_map_to_invoices(
    platform: str,
) -> None:
    example = json.loads((ROOT / "examples" / f"{platform}-order.json").read_text())
    app = create_shop_sandbox_app(
        platform, ShopSandboxSettings(generate=30), site="https://shop.example"
    )
    mapping = load_mapping(platform)
    from bridge.mapping import Delivery

    drafts = skips = 0
    for order in app.state.book.by_id():
        assert set(order) == set(example)  # the webhook's fields, no more, no fewer
        payload = wire.loads(wire.dumps(order))
        topic = "orders/create" if platform == "shopify" else "order.created"
        result = mapping.map(Delivery(payload, {}, topic, "shop.example"), mapping.options_model())
        if isinstance(result, Draft):
            drafts += 1
            assert str(result.expected_total) == str(order.get("total_price", order.get("total")))
        else:
            assert isinstance(result, Skip) and "test order" in result.reason
            skips += 1
    assert drafts >= 28 and drafts + skips == 30


async def test_woocommerce_orders_name_their_site_in_links() -> None:
    app = create_shop_sandbox_app(
        "woocommerce", ShopSandboxSettings(generate=2, site_url="https://shop.example")
    )
    links = app.state.book.by_id()[0]["_links"]
    assert links["self"][0]["href"].startswith("https://shop.example/wp-json/wc/v3/orders/")


# -- beside the API: what tests read ----------------------------------------------------


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
async def test_sandbox_routes_show_the_orders_and_count_answers_outside_the_api(
    platform: str,
) -> None:
    # A bucket of 2 that leaks one call in 1,000 s: however slow the machine, nothing drains
    # between the calls.
    client = shopify(60, bucket_size=2, leak_rate=0.001) if platform == "shopify" else woo(60)
    api = (
        {"url": ORDERS, "params": {"status": "any", "limit": 250}, "headers": TOKEN}
        if platform == "shopify"
        else {"url": WOO, "params": {"per_page": 100, "orderby": "id", "order": "asc"}}
    )
    async with client:
        held = [await client.get("/_sandbox/orders") for _ in range(3)]  # not in the bucket
        listed = await client.get(**api)
        orders = wire.loads(held[0].content)["orders"]
        api_orders = wire.loads(listed.content)
        assert orders == (api_orders["orders"] if platform == "shopify" else api_orders)
        assert len(orders) == 60 and all(answer.content == held[0].content for answer in held)

        extra = {**orders[0], "id": orders[-1]["id"] + 1}
        added = await client.post("/_sandbox/orders", content=wire.dumps(extra))
        assert added.status_code == 200
        assert wire.loads((await client.get("/_sandbox/orders")).content)["orders"][-1] == extra
        answers = [listed] + [await client.get(**api) for _ in range(2)]
        stats = (await client.get("/_sandbox/stats")).json()
    if platform == "shopify":  # a bucket of 2: the third API call is refused, and counted
        assert [answer.status_code for answer in answers] == [200, 200, 429]
        assert stats["statuses"] == {"200": 2, "429": 1}
    else:
        assert stats["statuses"] == {"200": 3}
    assert stats["requests"] == 3 and stats["orders"] == 61
