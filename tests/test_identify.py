"""`identify`: every golden body names its order on receipt, also the ones `map` refuses.

The oracle is the body itself, read with the standard library's `json` (whose integers are
exact), not the mapping's own field readers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge import wire
from bridge.errors import ConfigError, MappingError
from bridge.mapping import Delivery, Draft, IdentifyingMapping, InvoiceOptions, Tag, load_mapping
from bridge.shops import normalise_shop
from tests.test_golden import CASES, DEFAULT_OPTIONS, delivery_for, mapping_for

# The site each WooCommerce body's `_links` point to, read by eye; the rest name shop.example.
WOO_SITES = {
    "fixture-727-completed-guest-flat-rate": "example.com",  # https://example.com/wp-json/…
    "fixture-205-inr-on-hold-line-tax": "localhost:8080/wordpress",  # …/index.php?rest_route=…
    "fixture-205-inr-on-hold-invoiced": "localhost:8080/wordpress",
}
# Partner bodies whose order_id breaks the published format, so they name no order.
NO_ORDER = {"partner/invalid-not-an-object", "partner/invalid-required-fields-missing"}


def expected(case: Path) -> tuple[str, str | None] | None:
    """(order id, order name) as the body states them."""
    raw: Any = json.loads((case / "body.json").read_bytes())
    if f"{case.parent.name}/{case.name}" in NO_ORDER:
        return None
    if case.parent.name == "shopify":
        if "line_items" not in raw:  # a refund names its order in order_id
            return str(raw["order_id"]), None
        return str(raw["id"]), raw["name"]
    if case.parent.name == "woocommerce":
        return str(raw["id"]), f"#{raw['number']}"
    return raw["order_id"], raw.get("order_number") or raw["order_id"]


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_identify_names_the_order_of_every_golden_body(case: Path) -> None:
    mapping = mapping_for(case.parent.name)
    assert isinstance(mapping, IdentifyingMapping)
    order = mapping.identify(wire.loads((case / "body.json").read_bytes()))
    want = expected(case)
    if want is None:
        assert order is None
        return
    assert order is not None and (order.order_id, order.order_name) == want
    if case.parent.name == "woocommerce":
        assert order.shop is not None
        assert normalise_shop(order.shop) == WOO_SITES.get(case.name, "shop.example")
    else:
        assert order.shop is None  # Shopify and partner bodies do not name a shop


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_identify_agrees_with_map_and_survives_its_refusals(case: Path) -> None:
    mapping = mapping_for(case.parent.name)
    delivery = delivery_for(case)
    order = mapping.identify(delivery.payload)
    options_path = case / "options.json"
    raw = wire.loads(options_path.read_bytes()) if options_path.is_file() else {}
    try:
        result = mapping.map(delivery, mapping.options_model.model_validate(raw or DEFAULT_OPTIONS))
    except MappingError:
        return  # refused: identify still answered above (or said None), without raising
    if isinstance(result, Draft | Tag):
        assert order is not None and order.order_id == result.order_id


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "x",
        7,
        {},
        {"id": None},
        {"id": True},
        {"id": 1.5},
        {"id": -3},
        {"id": "12a"},
        {"id": 2**64},
        {"order_id": {"nested": 1}},
        {"_links": {"self": [{"href": 5}]}, "id": 3},
        {"id": 3, "_links": "x"},
        {"order_id": "has space"},
        {"order_id": "x" * 65},
    ],
)
def test_identify_is_total(payload: object) -> None:
    for name in ("shopify", "woocommerce", "partner"):
        order = mapping_for(name).identify(payload)
        assert order is None or order.order_id.isdigit()


def test_a_64_bit_id_stays_exact() -> None:
    shopify = mapping_for("shopify")
    largest = shopify.identify(wire.loads(b'{"id": 18446744073709551615, "name": " #1 "}'))
    assert largest is not None
    assert (largest.order_id, largest.order_name) == ("18446744073709551615", "#1")
    assert shopify.identify(wire.loads(b'{"id": 18446744073709551616}')) is None  # 2**64


@pytest.mark.parametrize(
    ("href", "site"),
    [
        ("https://shop.example.com/wp-json/wc/v3/orders/727", "shop.example.com"),
        (
            "http://localhost:8080/wordpress/index.php?rest_route=/wc/v3/orders/205",
            "localhost:8080/wordpress",
        ),
        ("https://shop.example.com/?rest_route=/wc/v3/orders/9", "shop.example.com"),
        ("https://shop.example.com/blog/wp-json/wc/v3/orders/9", "shop.example.com/blog"),
    ],
)
def test_woocommerce_links_name_the_site_in_both_url_shapes(href: str, site: str) -> None:
    woo = mapping_for("woocommerce")
    order = woo.identify({"id": 9, "_links": {"self": [{"href": href}]}})
    assert order is not None and order.shop is not None and normalise_shop(order.shop) == site
    collection = woo.identify({"id": 9, "_links": {"collection": [{"href": href}]}})
    assert collection is not None and collection.shop == order.shop
    assert woo.identify({"id": 9, "_links": {"self": [{"href": "https://x.example/a"}]}}) == (
        woo.identify({"id": 9})
    )


def test_only_shopify_order_ids_are_unique_across_shops() -> None:
    assert mapping_for("shopify").unique_order_ids is True
    assert mapping_for("woocommerce").unique_order_ids is False
    assert mapping_for("partner").unique_order_ids is False


class Legacy:
    """A third-party mapping written before `identify`."""

    name = "legacy"
    options_model = InvoiceOptions

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Tag:
        return Tag("1", "t", "r")


legacy = Legacy()


class HalfWay(Legacy):
    def identify(self, payload: Any) -> None:
        return None


half_way = HalfWay()


def test_a_mapping_without_identify_still_loads() -> None:
    loaded = load_mapping("tests.test_identify:legacy")
    assert isinstance(loaded, IdentifyingMapping)
    assert loaded.name == "legacy" and loaded.options_model is InvoiceOptions
    assert loaded.identify({"id": 1}) is None and loaded.unique_order_ids is False
    assert loaded.map(Delivery({}), InvoiceOptions()) == Tag("1", "t", "r")
    built_in = load_mapping("shopify")
    assert built_in is mapping_for("shopify")  # a complete mapping is used as it is


def test_a_mapping_with_half_of_the_new_protocol_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs both identify and unique_order_ids"):
        load_mapping("tests.test_identify:half_way")
