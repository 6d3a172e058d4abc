"""The orders a shop stand-in serves: loaded from files, or generated from a real order.

Generated orders copy the example order the shop's webhook would carry (the same template
`examples/` ships), changing only what tells orders apart: ids (past 2^53 for Shopify),
numbers, names, tokens and times, spread evenly over the last days. Their amounts stay the
template's, so every one reconciles to the cent. Every 25th Shopify order is a test order.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from bridge import wire

Order = dict[str, Any]
Clock = Callable[[], dt.datetime]

SHOPIFY_FIRST_ID = 6_187_244_380_394_851_321  # past 2^53: a float would round it
WOO_FIRST_ID = 5001
TEST_EVERY = 25
SHOPIFY_ZONE = dt.timezone(dt.timedelta(hours=-4))  # the template shop's own offset


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def template(platform: str) -> Order:
    text = resources.files("bridge.shop_sandbox").joinpath("templates", f"{platform}.json")
    order: Order = wire.loads(text.read_bytes())
    return order


def load_orders(folder: Path) -> list[Order]:
    """Every order in the folder's `*.json` files: one order, a list, or `{"orders": […]}`."""
    if not folder.is_dir():
        raise ValueError(f"--orders {folder}: not a folder")
    found: list[Order] = []
    for path in sorted(folder.glob("*.json")):
        try:
            parsed = wire.loads(path.read_bytes())
        except wire.MalformedJSON as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(parsed, dict) and isinstance(parsed.get("orders"), list):
            parsed = parsed["orders"]
        items = parsed if isinstance(parsed, list) else [parsed]
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                raise ValueError(f"{path}: every order needs a numeric id")
            found.append(item)
    return found


def _spread(count: int, now: dt.datetime, days: float) -> list[dt.datetime]:
    start = now - dt.timedelta(days=days)
    step = dt.timedelta(days=days) / max(count, 1)
    return [(start + step * n).replace(microsecond=0) for n in range(count)]


def _shopify_time(moment: dt.datetime) -> str:
    return moment.astimezone(SHOPIFY_ZONE).isoformat()


def generate_shopify(count: int, now: dt.datetime, days: float = 3.0) -> list[Order]:
    base = template("shopify")
    orders = []
    for n, created in enumerate(_spread(count, now, days)):
        order = copy.deepcopy(base)
        order_id = SHOPIFY_FIRST_ID + n * 1009
        digest = hashlib.sha256(str(order_id).encode()).hexdigest()
        number = 1001 + n
        order.update(
            id=order_id,
            admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
            name=f"#{number}",
            order_number=number,
            number=number - 1000,
            token=digest[:32],
            checkout_token=digest[32:64],
            cart_token=digest[:24],
            confirmation_number=digest[:9].upper(),
            created_at=_shopify_time(created),
            processed_at=_shopify_time(created + dt.timedelta(seconds=1)),
            updated_at=_shopify_time(created + dt.timedelta(seconds=5)),
            test=(n % TEST_EVERY == TEST_EVERY - 1),
        )
        for k, line in enumerate(order.get("line_items") or []):
            line["id"] = order_id * 10 + k if order_id * 10 + k < 2**63 else order_id + k
            line["admin_graphql_api_id"] = f"gid://shopify/LineItem/{line['id']}"
        orders.append(order)
    return orders


def _woo_times(moment: dt.datetime, offset: dt.timedelta) -> tuple[str, str]:
    gmt = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return (gmt + offset).isoformat(), gmt.isoformat()


def generate_woocommerce(
    count: int, now: dt.datetime, site: str, offset: dt.timedelta, days: float = 3.0
) -> list[Order]:
    base = template("woocommerce")
    orders = []
    for n, created in enumerate(_spread(count, now, days)):
        order = copy.deepcopy(base)
        order_id = WOO_FIRST_ID + n
        stamps = {
            "created": created,
            "modified": created + dt.timedelta(seconds=4),
            "paid": created + dt.timedelta(seconds=3),
        }
        for name, moment in stamps.items():
            order[f"date_{name}"], order[f"date_{name}_gmt"] = _woo_times(moment, offset)
        order.update(
            id=order_id,
            number=str(order_id),
            order_key="wc_order_" + hashlib.sha256(str(order_id).encode()).hexdigest()[:10],
        )
        order["_links"] = woo_links(site, order_id, order.get("customer_id"))
        orders.append(order)
    return orders


def woo_links(site: str, order_id: int, customer_id: object) -> dict[str, Any]:
    root = site.rstrip("/")
    links: dict[str, Any] = {
        "self": [{"href": f"{root}/wp-json/wc/v3/orders/{order_id}"}],
        "collection": [{"href": f"{root}/wp-json/wc/v3/orders"}],
    }
    if isinstance(customer_id, int) and customer_id:
        links["customer"] = [{"href": f"{root}/wp-json/wc/v3/customers/{customer_id}"}]
    return links


class OrderBook:
    """A shop's orders by id; tests may add or change one while the stand-in runs."""

    def __init__(self, orders: Iterable[Order] = ()) -> None:
        self._orders: dict[int, Order] = {}
        for order in orders:
            self.put(order)

    def put(self, order: Order) -> None:
        self._orders[int(order["id"])] = order

    def get(self, order_id: int) -> Order | None:
        return self._orders.get(order_id)

    def by_id(self) -> list[Order]:
        return [self._orders[key] for key in sorted(self._orders)]

    def __len__(self) -> int:
        return len(self._orders)
