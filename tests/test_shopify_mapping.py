"""The Shopify mapping beyond its golden cases: exact ids, shop money, dates, skips, refusals,
options, the split of inexact unit prices, and that no input escapes as anything but a draft,
a skip or a `MappingError`."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import wire
from bridge.errors import InvoiceError, MappingError
from bridge.invoice import request_total
from bridge.mapping import Delivery, Draft, InvoiceOptions, Skip, Tag, reconcile_totals
from mappings.fields import parse_amount, plain_amount, unit_prices
from mappings.shopify import ShopifyOptions, mapping
from tests.fuzz import json_values, paths, scalars

GOLDEN = Path(__file__).parent / "golden" / "shopify"


def body(case: str) -> Any:
    return wire.loads((GOLDEN / case / "body.json").read_bytes())


def options(**values: Any) -> ShopifyOptions:
    return ShopifyOptions(company_id=42, **values)


def draft_of(payload: Any, opts: InvoiceOptions | None = None) -> Draft:
    result = mapping.map(Delivery(payload=payload), opts or options())
    assert isinstance(result, Draft), result
    return result


def refusal(payload: Any, opts: InvoiceOptions | None = None) -> MappingError:
    with pytest.raises(MappingError) as caught:
        mapping.map(Delivery(payload=payload), opts or options())
    return caught.value


# --- ids, money, dates -------------------------------------------------------------------


def test_64_bit_order_id_stays_exact_through_the_wire() -> None:
    raw = (GOLDEN / "example-order" / "body.json").read_text(encoding="utf-8")
    raw = raw.replace('"id": 6187244380394851321', '"id": 820982911946154508', 1)
    draft = draft_of(wire.loads(raw.encode()))
    assert draft.order_id == "820982911946154508"
    assert draft.request.alternate_ids == ["shopify:820982911946154508"]


def test_order_id_given_as_digit_string_is_accepted() -> None:
    order = body("example-order")
    order["id"] = "820982911946154508"
    assert draft_of(order).order_id == "820982911946154508"


def test_presentment_money_is_never_read() -> None:
    order = body("multi-currency-usd-shop-eur-presentment")
    before = draft_of(order)
    _scramble_presentment(order)
    after = draft_of(order)
    assert after.request == before.request
    assert after.expected_total == Decimal("150.70")
    assert [item.unit_price for item in after.request.items] == [Decimal("94.00"), Decimal("21.50")]
    assert after.currency == "USD"


def _scramble_presentment(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "presentment_money" and isinstance(value, dict):
                value["amount"] = "99999.99"
            else:
                _scramble_presentment(value)
    elif isinstance(node, list):
        for value in node:
            _scramble_presentment(value)


def test_shop_money_set_wins_over_the_plain_field() -> None:
    order = body("example-order")
    order["line_items"][0]["price"] = "1.00"
    assert draft_of(order).request.items[0].unit_price == Decimal("25.00")


def test_plain_fields_are_used_when_there_is_no_set() -> None:
    order = body("fixture-450789469-discount-code-state-tax")
    assert "price_set" not in order["line_items"][0]
    assert draft_of(order).request.items[0].unit_price == Decimal("199.00")


def test_order_date_is_the_local_date_not_the_utc_date() -> None:
    order = body("local-date-before-utc-midnight")
    assert order["processed_at"] == "2024-03-31T23:30:00-07:00"
    assert draft_of(order).request.order_date.isoformat() == "2024-03-31"


def test_order_date_falls_back_to_created_at() -> None:
    order = body("example-order")
    order["processed_at"] = None
    order["created_at"] = "2024-01-01T00:15:00+09:00"
    assert draft_of(order).request.order_date.isoformat() == "2024-01-01"


# --- skips -------------------------------------------------------------------------------


def test_test_orders_are_skipped_by_default_and_invoiced_on_request() -> None:
    order = body("fixture-cad-tip-and-shipping")
    skipped = mapping.map(Delivery(payload=order), options())
    assert isinstance(skipped, Skip)
    assert skipped.order_id == "4359400227009"
    assert "test order" in skipped.reason
    assert isinstance(mapping.map(Delivery(payload=order), options(skip_test_orders=False)), Draft)


def test_base_options_skip_test_orders_too() -> None:
    order = body("fixture-cad-tip-and-shipping")
    assert isinstance(mapping.map(Delivery(payload=order), InvoiceOptions(company_id=1)), Skip)


def test_cancelled_order_reason_names_reason_and_time() -> None:
    order = body("example-order")
    order["cancelled_at"] = "2024-06-13T09:00:00-04:00"
    order["cancel_reason"] = "fraud"
    skipped = mapping.map(Delivery(payload=order), options())
    assert isinstance(skipped, Skip)
    assert "2024-06-13T09:00:00-04:00" in skipped.reason
    assert "fraud" in skipped.reason


def test_voided_order_is_skipped() -> None:
    order = body("example-order")
    order["financial_status"] = "voided"
    skipped = mapping.map(Delivery(payload=order), options())
    assert isinstance(skipped, Skip)
    assert "voided" in skipped.reason


def test_skip_comes_before_totals_and_field_checks() -> None:
    order = body("example-order")
    order["test"] = True
    order["total_price"] = "not money"
    order["line_items"] = []
    assert isinstance(mapping.map(Delivery(payload=order), options()), Skip)


def test_skip_still_needs_an_object_with_an_id() -> None:
    error = refusal({"test": True})
    assert error.details == [("id", "is missing")]


# --- refusals ----------------------------------------------------------------------------


def _set(order: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = (int(part) if part.isdigit() else part for part in dotted.split("."))
    node: Any = order
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "value", "field", "problem"),
    [
        ("id", True, "id", "must be a positive 64-bit integer"),
        ("id", -5, "id", "must be a positive 64-bit integer"),
        ("id", "12ab", "id", "must be a positive 64-bit integer"),
        ("line_items", [], "line_items", "must be a non-empty list"),
        ("line_items", _DELETE, "line_items", "is missing"),
        ("line_items.0", "tee", "line_items[0]", "must be an object"),
        ("line_items.0.quantity", 0, "line_items[0].quantity", "between 1 and"),
        ("line_items.0.quantity", -2, "line_items[0].quantity", "between 1 and"),
        ("line_items.0.quantity", True, "line_items[0].quantity", "whole number"),
        ("line_items.0.quantity", Decimal("1.5"), "line_items[0].quantity", "whole number"),
        (
            "line_items.0.price_set",
            "25.00",
            "line_items[0].price_set.shop_money.amount",
            "is missing",
        ),
        (
            "line_items.0.price_set.shop_money.amount",
            "abc",
            "line_items[0].price_set.shop_money.amount",
            "decimal amount",
        ),
        (
            "line_items.0.price_set.shop_money.amount",
            "Infinity",
            "line_items[0].price_set.shop_money.amount",
            "decimal amount",
        ),
        (
            "line_items.0.price_set.shop_money.amount",
            Decimal("NaN"),
            "line_items[0].price_set.shop_money.amount",
            "finite",
        ),
        (
            "line_items.0.price_set.shop_money.amount",
            Decimal("1E+400"),
            "line_items[0].price_set.shop_money.amount",
            "large",
        ),
        (
            "line_items.0.price_set.shop_money.amount",
            "0.0000001",
            "line_items[0].price_set.shop_money.amount",
            "decimal places",
        ),
        (
            "line_items.0.price_set.shop_money.amount",
            "-3.00",
            "line_items[0].price_set.shop_money.amount",
            "negative",
        ),
        (
            "line_items.0.price_set.shop_money",
            None,
            "line_items[0].price_set.shop_money.amount",
            "is missing",
        ),
        ("line_items.0.sku", 1234, "line_items[0].sku", "must be a string"),
        (
            "line_items.0.discount_allocations",
            {},
            "line_items[0].discount_allocations",
            "must be a list",
        ),
        ("total_price_set", None, "total_price", "decimal amount"),
        ("processed_at", "31/03/2024", "processed_at", "ISO-8601"),
        ("tags", ["a"], "tags", "comma-separated"),
        ("shipping_address", "Main St", "shipping_address", "must be an object"),
        ("currency", "dollars", "currency", "three-letter"),
        ("taxes_included", "no", "taxes_included", "true or false"),
        ("test", "false", "test", "true or false"),
    ],
)
def test_broken_payloads_are_refused_with_the_field_named(
    change: str, value: Any, field: str, problem: str
) -> None:
    order = body("example-order")
    _set(order, change, value)
    if change == "total_price_set":
        order["total_price"] = "eighty"
    error = refusal(order)
    assert any(f == field and problem in p for f, p in error.details), error.details
    assert error.details[0][0] in error.message


def test_missing_total_is_refused() -> None:
    order = body("example-order")
    del order["total_price"], order["total_price_set"]
    del order["line_items"][0]["price"], order["line_items"][0]["price_set"]
    assert refusal(order).details == [
        ("total_price", "is missing"),
        ("line_items[0].price", "is missing"),
    ]


def test_every_problem_is_reported_at_once() -> None:
    order = body("example-order")
    order["line_items"][0]["quantity"] = "2"
    order["line_items"][1]["price_set"]["shop_money"]["amount"] = "x"
    order["tags"] = 5
    error = refusal(order)
    fields = [field for field, _ in error.details]
    assert fields == [
        "line_items[0].quantity",
        "line_items[1].price_set.shop_money.amount",
        "tags",
    ]
    assert "and 2 more problems" in error.message


@pytest.mark.parametrize("payload", [None, [], "order", 7, Decimal("1.5"), True])
def test_payload_that_is_not_an_object_is_refused(payload: Any) -> None:
    assert refusal(payload).details[0][0] == "$"


def test_the_company_is_left_to_the_resolver_when_not_fixed() -> None:
    draft = mapping.map(Delivery(body("example-order")), ShopifyOptions())
    assert isinstance(draft, Draft) and draft.request.company_id is None


def test_refund_is_refused_as_a_refund() -> None:
    error = refusal(body("fixture-refunds-create-sample-2025-01"))
    assert "refund" in error.message
    assert error.details[0][0] == "line_items"


def test_tax_lines_above_the_price_are_refused() -> None:
    order = body("tax-included-quantity-3-split")
    order["line_items"][0]["tax_lines"][0]["price_set"]["shop_money"]["amount"] = "50.00"
    assert refusal(order).details == [
        ("line_items[0].tax_lines", "add up to more than the line's price")
    ]


def test_order_that_does_not_add_up_is_mapped_as_it_is() -> None:
    draft = draft_of(body("fixture-cad-automatic-discount"))
    assert draft.expected_total == Decimal("79.28")
    assert request_total(draft.request) == Decimal("70.00")
    with pytest.raises(InvoiceError, match=r"79\.28.*70\.00"):
        reconcile_totals(draft)


# --- lines, shipping, duties, options ----------------------------------------------------


def test_tip_is_an_item_without_sku() -> None:
    draft = draft_of(body("fixture-cad-tip-and-shipping"), options(skip_test_orders=False))
    tip = draft.request.items[0]
    assert (tip.sku, tip.description, tip.unit_price) == (None, "Tip", Decimal("4.50"))


def test_inexact_tax_included_unit_price_is_split_into_two_items() -> None:
    items = draft_of(body("tax-included-quantity-3-split")).request.items
    candles = [(i.quantity, i.unit_price) for i in items if i.sku == "CANDLE-BW-S"]
    assert candles == [(Decimal(2), Decimal("8.223333")), (Decimal(1), Decimal("8.223334"))]
    assert sum(q * p for q, p in candles) == Decimal("29.85") - Decimal("5.18")


@given(
    cents=st.integers(min_value=0, max_value=10**11),
    scale=st.sampled_from([0, 2, 3, 6]),
    quantity=st.integers(min_value=1, max_value=10**6),
)
def test_unit_prices_multiply_back_exactly(cents: int, scale: int, quantity: int) -> None:
    amount = Decimal(cents).scaleb(-scale)
    pairs = unit_prices(amount, quantity)
    assert sum(count for count, _ in pairs) == quantity
    assert sum(count * price for count, price in pairs) == amount
    assert all(price == price.quantize(Decimal("0.000001")) for _, price in pairs)
    assert len(pairs) == 1 or pairs[0][0] == quantity - 1


def test_shipping_discount_reduces_shipping_not_the_order_discount() -> None:
    order = body("shipping-discount-free-shipping-code")
    draft = draft_of(order)
    assert order["total_discounts"] == "13.95"
    assert draft.request.order_discount_amount == Decimal("5.00")
    assert draft.request.total_shipping == Decimal("0.00")


def test_order_level_duties_join_the_tax_amount() -> None:
    draft = draft_of(body("duties-charged-at-checkout"))
    assert draft.request.tax_amount == Decimal("17.29") + Decimal("8.69")


def test_line_duties_count_when_the_order_states_none() -> None:
    order = body("duties-charged-at-checkout")
    order["original_total_duties_set"] = None
    order["current_total_duties_set"] = None
    duty = order["line_items"][1]["duties"][0]
    duty["shop_money"] = duty.pop("price_set")["shop_money"]  # the other shape Shopify uses
    assert draft_of(order).request.tax_amount == Decimal("25.98")


def test_duties_included_in_prices_are_not_added_again() -> None:
    order = body("duties-charged-at-checkout")
    order["duties_included"] = True
    assert draft_of(order).request.tax_amount == Decimal("17.29")


def test_guest_order_has_no_ship_to_and_blank_sku_is_none() -> None:
    draft = draft_of(body("guest-pos-no-customer-no-address"))
    assert draft.request.ship_to is None
    assert draft.request.items[2].sku is None


def test_options_reach_the_request_and_currency_stays_the_orders() -> None:
    draft = draft_of(
        body("example-order"),
        options(po_prefix="EU-", tags=["shopify", "web"], payment_terms="Net 30", currency="EUR"),
    )
    assert draft.request.customer_po_number == "EU-#2187"
    assert draft.request.tags == ["web", "first-order", "shopify"]
    assert draft.request.payment_terms == "Net 30"
    assert draft.currency == "USD"


def test_po_number_falls_back_to_order_number_then_id() -> None:
    order = body("example-order")
    del order["name"]
    assert draft_of(order).request.customer_po_number == "#2187"
    del order["order_number"]
    assert draft_of(order).request.customer_po_number == "6187244380394851321"


# --- the golden orders themselves --------------------------------------------------------


def _reconciling_cases() -> list[str]:
    cases = []
    for folder in sorted(GOLDEN.iterdir()):
        expected = wire.loads((folder / "expected.json").read_bytes())
        if expected.get("reconciles") is True:
            cases.append(folder.name)
    return cases


@pytest.mark.parametrize("case", _reconciling_cases())
def test_reconciling_golden_case_matches_the_orders_own_total(case: str) -> None:
    order = body(case)
    opts = options(skip_test_orders=False)
    draft = draft_of(order, opts)
    assert request_total(draft.request) == Decimal(order["total_price"])
    reconcile_totals(draft)


WRITTEN = [case for case in _reconciling_cases() if not case.startswith(("fixture-", "options-"))]


@pytest.mark.parametrize("case", WRITTEN)
def test_written_orders_agree_with_themselves(case: str) -> None:
    order = body(case)
    money = Decimal
    lines, ships = order["line_items"], order["shipping_lines"]

    def allocated(items: list[Any]) -> Decimal:
        return sum((money(a["amount"]) for i in items for a in i["discount_allocations"]), money(0))

    def taxed(items: list[Any]) -> Decimal:
        return sum((money(t["price"]) for i in items for t in i["tax_lines"]), money(0))

    line_total = sum((money(i["price"]) * i["quantity"] for i in lines), money(0))
    shipping = sum((money(s["price"]) for s in ships), money(0))
    duties = (
        money(order["original_total_duties_set"]["shop_money"]["amount"])
        if order.get("original_total_duties_set")
        else money(0)
    )
    assert money(order["total_line_items_price"]) == line_total
    assert money(order["subtotal_price"]) == line_total - allocated(lines)
    assert money(order["total_discounts"]) == allocated(lines) + allocated(ships)
    assert money(order["total_tax"]) == taxed(lines) + taxed(ships)
    assert money(order["total_tax"]) == sum(
        (money(t["price"]) for t in order["tax_lines"]), money(0)
    )
    assert money(order["total_shipping_price_set"]["shop_money"]["amount"]) == shipping
    tax_on_top = money(0) if order["taxes_included"] else money(order["total_tax"])
    expected = line_total - allocated(lines) + shipping - allocated(ships) + tax_on_top + duties
    assert money(order["total_price"]) == expected
    for key in ("total_price", "subtotal_price", "total_tax", "total_discounts"):
        assert order[f"{key}_set"]["shop_money"]["amount"] == order[key]
        assert order[f"current_{key}"] == order[key]
    assert order["id"] > 2**53


# --- nothing escapes ---------------------------------------------------------------------

_KEYS = [
    "id",
    "line_items",
    "total_price",
    "total_price_set",
    "shop_money",
    "amount",
    "price",
    "price_set",
    "quantity",
    "sku",
    "title",
    "tax_lines",
    "discount_allocations",
    "amount_set",
    "shipping_lines",
    "taxes_included",
    "test",
    "cancelled_at",
    "financial_status",
    "processed_at",
    "created_at",
    "tags",
    "shipping_address",
    "currency",
    "name",
    "duties",
    "original_total_duties_set",
    "duties_included",
    "note",
    "order_number",
    "variant_title",
]
_SAMPLES = ["1.00", "0", "-1", "1e5", "NaN", "2024-03-31T23:30:00-07:00", "voided"]
_SCALARS = scalars(_SAMPLES)
_JSON = json_values(_KEYS, _SAMPLES)


def _map_or_refuse(payload: Any) -> None:
    try:
        result = mapping.map(Delivery(payload=payload), options(skip_test_orders=False))
    except MappingError as exc:
        assert exc.details, exc.message
        return
    assert isinstance(result, Draft | Skip)
    if isinstance(result, Draft):
        request_total(result.request)
        wire.dumps(result.request.to_wire())


_LINE_KEYS = [
    "quantity",
    "price",
    "price_set",
    "sku",
    "title",
    "variant_title",
    "tax_lines",
    "discount_allocations",
    "duties",
    "tip",
]
_MONEYISH = _SCALARS | st.fixed_dictionaries(
    {"shop_money": st.dictionaries(st.just("amount"), _SCALARS)}
)
_LINE = st.dictionaries(st.sampled_from(_LINE_KEYS), _MONEYISH | _JSON, max_size=6)
_ORDERISH = st.fixed_dictionaries(
    {"id": st.integers(min_value=1, max_value=2**63), "line_items": st.lists(_LINE, max_size=3)},
    optional={key: _MONEYISH | _JSON for key in _KEYS if key not in ("id", "line_items")},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON | _ORDERISH)
def test_arbitrary_json_maps_or_is_refused(payload: Any) -> None:
    _map_or_refuse(payload)


_VALID = [body(case) for case in ("example-order", "tax-included-quantity-3-split")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_valid_orders_map_or_are_refused(data: st.DataObject) -> None:
    order = copy.deepcopy(data.draw(st.sampled_from(_VALID)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        where = data.draw(st.sampled_from(paths(order)))
        node: Any = order
        for part in where[:-1]:
            node = node[part]
        if isinstance(node, dict) and data.draw(st.booleans()):
            del node[where[-1]]
        else:
            node[where[-1]] = data.draw(_JSON)
        if not paths(order):
            break
    _map_or_refuse(order)


def test_a_configured_financial_status_on_a_later_update_tags_the_invoice() -> None:
    order = {**body("example-order"), "financial_status": "partially_refunded"}
    options = ShopifyOptions(company_id=1, tag_topics={"partially_refunded": "partially-refunded"})
    tag = mapping.map(Delivery(order, topic="orders/updated"), options)
    assert isinstance(tag, Tag)
    assert (tag.tag, tag.reason) == ("partially-refunded", "financial_status partially_refunded")
    assert tag.order_id == str(order["id"]) and tag.order_name == order["name"]
    first = mapping.map(Delivery(order, topic="orders/create"), options)
    assert isinstance(first, Draft)
    unconfigured = mapping.map(
        Delivery(order, topic="orders/updated"), ShopifyOptions(company_id=1)
    )
    assert isinstance(unconfigured, Draft)


# --- topics are not signed: a tag needs the body to bear it out ---------------------------

TAGGING = ShopifyOptions(
    company_id=1,
    tag_topics={
        "orders/cancelled": "cancelled",
        "refunds/create": "refunded",
        "orders/paid": "paid",
        "orders/fulfilled": "fulfilled",
    },
)
# A captured orders/create body: Shopify's own dev-store order, paid, not cancelled, unfulfilled.
CREATED = body("fixture-cad-tip-and-shipping")
REFUND = body("fixture-refunds-create-sample-2025-01")


@pytest.mark.parametrize(
    ("topic", "lacks"),
    [
        ("orders/cancelled", "cancelled_at is not set"),
        ("refunds/create", "an order, not a refund"),
        ("orders/fulfilled", "fulfillment_status is not fulfilled"),
    ],
)
def test_an_order_body_posted_under_a_later_topic_tags_nothing(topic: str, lacks: str) -> None:
    result = mapping.map(Delivery(CREATED, topic=topic), TAGGING)
    assert isinstance(result, Skip), result
    assert lacks in result.reason and "nothing is tagged" in result.reason
    assert result.order_id == "4359400227009"


def test_a_body_that_bears_the_topic_out_tags() -> None:
    cancelled = {**CREATED, "cancelled_at": "2022-04-07T09:00:00-04:00"}
    tag = mapping.map(Delivery(cancelled, topic="orders/cancelled"), TAGGING)
    assert isinstance(tag, Tag) and (tag.tag, tag.order_id) == ("cancelled", "4359400227009")
    paid = mapping.map(Delivery(CREATED, topic="orders/paid"), TAGGING)  # financial_status paid
    assert isinstance(paid, Tag) and paid.tag == "paid"
    refund = mapping.map(Delivery(REFUND, topic="refunds/create"), TAGGING)
    assert isinstance(refund, Tag) and refund.tag == "refunded"
    assert refund.order_id == str(REFUND["order_id"]) and refund.order_name is None


def test_a_refund_body_posted_as_an_order_is_still_refused_as_a_refund() -> None:
    error = refusal(REFUND, TAGGING)
    assert "refund" in error.message
    assert isinstance(mapping.map(Delivery(REFUND, topic="orders/cancelled"), TAGGING), Skip)


def test_a_tag_topic_the_body_cannot_confirm_is_refused_in_the_options() -> None:
    with pytest.raises(ValueError, match="cannot be confirmed from its body"):
        ShopifyOptions(tag_topics={"orders/edited": "edited"})
    assert ShopifyOptions(tag_topics={"refunded": "refunded"}).tag_topics  # a financial status


def test_a_shops_po_prefix_names_its_invoices() -> None:
    opts = options(po_prefix="SRC-", shop_po_prefixes={"acme.myshopify.com": "AC-"})
    order = body("example-order")
    acme = mapping.map(Delivery(order, shop="ACME.myshopify.com."), opts)
    other = mapping.map(Delivery(order, shop="beta.myshopify.com"), opts)
    assert isinstance(acme, Draft) and isinstance(other, Draft)
    assert acme.request.customer_po_number == "AC-" + order["name"]
    assert other.request.customer_po_number == "SRC-" + order["name"]


@pytest.mark.parametrize(
    "raw",
    [
        "12.50",
        "0",
        "007.5",
        "999999999999",
        "1.123456",
        "1.1234567",
        "-1.00",
        " 1.00",
        "1e3",
        "1_000",
        "1,000.00",
        "",
        ".5",
        "5.",
        "1234567890123",
        "NaN",
        "١٢",
        12,
        Decimal("1.5"),
        None,
    ],
)
def test_the_plain_amount_shortcut_reads_what_the_long_way_reads(raw: object) -> None:
    """`plain_amount` answers only where `parse_amount` would give the same Decimal."""
    shortcut = plain_amount({"price_set": {"shop_money": {"amount": raw}}}, "price")
    try:
        expected: Decimal | None = parse_amount(raw)
    except ValueError:
        expected = None
    assert shortcut is None or (shortcut == expected and str(shortcut) == str(expected))
    if isinstance(raw, str) and raw in ("12.50", "0", "007.5", "1.123456"):
        assert shortcut is not None
