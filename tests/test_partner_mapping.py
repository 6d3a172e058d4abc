"""The partner mapping beyond its golden cases: the published schema and the model agree, the
draft carries every field where it belongs, cancellations tag or skip, and no input escapes as
anything but a draft, a tag, a skip or a `MappingError`."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bridge import wire
from bridge.errors import InvoiceError, MappingError
from bridge.mapping import (
    CustomerRef,
    Delivery,
    Draft,
    InvoiceOptions,
    Skip,
    Tag,
    load_mapping,
    reconcile_totals,
)
from bridge.sandbox.totals import invoice_totals
from bridge.sandbox.validation import validate_invoice
from mappings.partner import (
    SCHEMA,
    SCHEMA_PATH,
    Address,
    Customer,
    Line,
    PartnerOrder,
    mapping,
    parse_order,
)

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden" / "partner"
EXAMPLE = ROOT / "examples" / "partner-order.json"
CASES = sorted(path for path in GOLDEN.iterdir() if (path / "body.json").is_file())


def example() -> Any:
    return wire.loads(EXAMPLE.read_bytes())


def options(**values: Any) -> InvoiceOptions:
    return InvoiceOptions(company_id=42, **values)


def result_of(payload: Any, opts: InvoiceOptions | None = None) -> Draft | Skip | Tag:
    return mapping.map(Delivery(payload=payload), opts or options())


def draft_of(payload: Any, opts: InvoiceOptions | None = None) -> Draft:
    result = result_of(payload, opts)
    assert isinstance(result, Draft), result
    return result


def refusal(payload: Any, opts: InvoiceOptions | None = None) -> MappingError:
    with pytest.raises(MappingError) as caught:
        mapping.map(Delivery(payload=payload), opts or options())
    return caught.value


# --- a walker for the part of JSON Schema 2020-12 the published schema uses ---------------

# Keywords that only describe; any other keyword the walker does not know fails loudly, so
# the schema cannot grow a rule these tests silently skip.
_ANNOTATIONS = {"$schema", "title", "description", "examples", "default", "$defs"}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "number": lambda v: isinstance(v, int | Decimal) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int | Decimal) and not isinstance(v, bool) and v == int(v),
}


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = key or '""'
    return name if path == "$" else f"{path}.{name}"


def _ecma_search(pattern: str, text: str) -> bool:
    # ECMA-262's `$` matches only at the very end; Python's also before a final newline.
    return re.search(pattern.replace("$", r"\Z"), text) is not None


class SchemaWalker:
    """Checks an instance against the schema; a violation is `(instance path, keyword)`."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def violations(self, value: Any, schema: dict[str, Any], path: str = "$") -> list[Any]:
        found: list[tuple[str, str]] = []
        for keyword, rule in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            check = getattr(self, "_" + keyword.lstrip("$"))  # AttributeError: unknown keyword
            if not check(value, rule, schema, path, found):
                found.append((path, keyword))
        return found

    def _ref(self, value: Any, rule: str, _s: Any, path: str, found: list[Any]) -> bool:
        assert rule.startswith("#/$defs/")
        found += self.violations(value, self.root["$defs"][rule.removeprefix("#/$defs/")], path)
        return True

    def _type(self, value: Any, rule: Any, _s: Any, _p: str, _f: Any) -> bool:
        names = rule if isinstance(rule, list) else [rule]
        return any(_TYPES[name](value) for name in names)

    def _enum(self, value: Any, rule: list[Any], _s: Any, _p: str, _f: Any) -> bool:
        return any(type(value) is type(option) and value == option for option in rule)

    def _anyOf(self, value: Any, rule: list[Any], _s: Any, path: str, found: list[Any]) -> bool:
        branches = [self.violations(value, branch, path) for branch in rule]
        if any(not branch for branch in branches):
            return True
        # Like a validator's "best match": explain the branches of the instance's own type.
        for branch in branches:
            if (path, "type") not in branch:
                found += branch
        return False

    def _properties(self, value: Any, rule: dict[str, Any], _s: Any, path: str, found: Any) -> bool:
        if isinstance(value, dict):
            for key, sub in rule.items():
                if key in value:
                    found += self.violations(value[key], sub, _child(path, key))
        return True

    def _required(self, value: Any, rule: list[str], _s: Any, path: str, found: Any) -> bool:
        if isinstance(value, dict):
            found += [(_child(path, key), "required") for key in rule if key not in value]
        return True

    def _additionalProperties(
        self, value: Any, rule: Any, schema: dict[str, Any], path: str, found: list[Any]
    ) -> bool:
        if isinstance(value, dict):
            for key in value.keys() - schema.get("properties", {}).keys():
                if rule is False:
                    found.append((_child(path, key), "additionalProperties"))
                else:
                    found += self.violations(value[key], rule, _child(path, key))
        return True

    def _propertyNames(self, value: Any, rule: Any, _s: Any, path: str, found: Any) -> bool:
        if isinstance(value, dict):
            for key in value:
                found += self.violations(key, rule, _child(path, key))
        return True

    def _items(self, value: Any, rule: Any, _s: Any, path: str, found: list[Any]) -> bool:
        if isinstance(value, list):
            for index, item in enumerate(value):
                found += self.violations(item, rule, _child(path, index))
        return True

    def _minProperties(self, value: Any, rule: int, *_: Any) -> bool:
        return not isinstance(value, dict) or len(value) >= rule

    def _maxProperties(self, value: Any, rule: int, *_: Any) -> bool:
        return not isinstance(value, dict) or len(value) <= rule

    def _minItems(self, value: Any, rule: int, *_: Any) -> bool:
        return not isinstance(value, list) or len(value) >= rule

    def _maxItems(self, value: Any, rule: int, *_: Any) -> bool:
        return not isinstance(value, list) or len(value) <= rule

    def _minLength(self, value: Any, rule: int, *_: Any) -> bool:
        return not isinstance(value, str) or len(value) >= rule

    def _maxLength(self, value: Any, rule: int, *_: Any) -> bool:
        return not isinstance(value, str) or len(value) <= rule

    def _pattern(self, value: Any, rule: str, *_: Any) -> bool:
        return not isinstance(value, str) or _ecma_search(rule, value)

    def _format(self, value: Any, rule: str, *_: Any) -> bool:
        assert rule == "date"  # the only format the schema uses, checked as an assertion
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            return True  # `format` judges only strings in its own syntax; `pattern` does the rest
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return False
        return True

    def _minimum(self, value: Any, rule: int, *_: Any) -> bool:
        return not _TYPES["number"](value) or value >= rule

    def _exclusiveMinimum(self, value: Any, rule: int, *_: Any) -> bool:
        return not _TYPES["number"](value) or value > rule

    def _maximum(self, value: Any, rule: int, *_: Any) -> bool:
        return not _TYPES["number"](value) or value <= rule

    def _exclusiveMaximum(self, value: Any, rule: int, *_: Any) -> bool:
        return not _TYPES["number"](value) or value < rule


WALKER = SchemaWalker(wire.loads(SCHEMA_PATH.read_bytes()))


def schema_violations(document: Any) -> list[tuple[str, str]]:
    return list(WALKER.violations(document, WALKER.root))


def model_problems(document: Any) -> list[tuple[str, str]]:
    try:
        parse_order(document)
    except MappingError as exc:
        return exc.details
    return []


def _value_at(document: Any, path: str) -> Any:
    node = document
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        node = node[int(index)] if index else node["" if name == '""' else name]
    return node


def _beyond_schema(document: Any, path: str, problem: str) -> bool:
    """A JSON number's decimal places: a rule no JSON Schema validator checks portably (they
    divide in binary floating point), so the model alone enforces it."""
    if "decimal places" not in problem:
        return False
    value = _value_at(document, path)
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def assert_schema_and_model_agree(document: Any) -> None:
    """Both accept, or both refuse and every field the model names, the schema names too."""
    by_schema = schema_violations(document)
    by_model = model_problems(document)
    named = {path for path, problem in by_model if not _beyond_schema(document, path, problem)}
    if by_schema:
        assert by_model, f"the schema refuses ({by_schema}), the model accepts"
        assert named <= {path for path, _ in by_schema}, (by_model, by_schema)
    else:
        assert not named, f"the model refuses ({by_model}), the schema accepts"


# --- the published schema --------------------------------------------------------------


def test_schema_is_a_2020_12_document_the_route_can_serve_as_is() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(SCHEMA_PATH.read_bytes()) == SCHEMA
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA  # no Decimal or float surprises


def _property_tables(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and "additionalProperties" in node:
            found.append(node["properties"])
        for value in node.values():
            found += _property_tables(value)
    elif isinstance(node, list):
        for value in node:
            found += _property_tables(value)
    return found


def test_every_property_of_every_object_is_described_and_no_object_takes_strays() -> None:
    tables = _property_tables(SCHEMA)
    assert len(tables) == 4  # order, customer, line, address
    for table in tables:
        for name, rule in table.items():
            assert rule.get("description"), name
    objects = [SCHEMA, *(SCHEMA["$defs"][name] for name in ("customer", "line", "address"))]
    assert all(obj["additionalProperties"] is False for obj in objects)


def test_schema_and_model_name_the_same_fields() -> None:
    defs = SCHEMA["$defs"]
    pairs: list[tuple[dict[str, Any], type[BaseModel]]] = [
        (SCHEMA, PartnerOrder),
        (defs["customer"], Customer),
        (defs["line"], Line),
        (defs["address"], Address),
    ]
    for schema, model in pairs:
        assert set(schema["properties"]) == set(model.model_fields), model.__name__
        required = {name for name, info in model.model_fields.items() if info.is_required()}
        assert set(schema.get("required", [])) == required, model.__name__


def test_example_file_is_the_example_golden_case() -> None:
    assert EXAMPLE.read_bytes() == (GOLDEN / "example-order" / "body.json").read_bytes()
    draft = draft_of(example())
    reconcile_totals(draft)
    assert {item.sku for item in draft.request.items} == {"TEE-BLK-M", "MUG-WHT"}


def test_the_mapping_is_registered_under_its_name() -> None:
    assert load_mapping("partner") is mapping


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_golden_body_gets_the_same_verdict_from_schema_and_model(case: Path) -> None:
    document = wire.loads((case / "body.json").read_bytes())
    assert_schema_and_model_agree(document)
    expected = wire.loads((case / "expected.json").read_bytes())
    schema_valid = not schema_violations(document)
    # Only the total's reconciliation lies beyond the schema.
    beyond = [detail["field"] for detail in expected.get("details", [])] == ["total"]
    assert schema_valid == (expected["result"] != "error" or beyond)


def test_golden_cases_cover_every_kind_of_result() -> None:
    results = [wire.loads((case / "expected.json").read_bytes())["result"] for case in CASES]
    assert {"draft", "tag", "skip", "error"} <= set(results)
    assert results.count("error") >= 6


# Each body breaks one rule; the model names the field, and the schema refuses it there too.
_INVALID: list[tuple[str, Callable[[dict[str, Any]], object], str, str]] = [
    ("lines[0].quantity", lambda o: o["lines"][0].update(quantity=0), "greater than 0", "anyOf"),
    (
        "lines[0].quantity",
        lambda o: o["lines"][0].update(quantity="0"),
        "greater than 0",
        "pattern",
    ),
    (
        "lines[0].quantity",
        lambda o: o["lines"][0].update(quantity="1.0005"),
        "3 decimal",
        "pattern",
    ),
    (
        "lines[1].unit_price",
        lambda o: o["lines"][1].update(unit_price="7.2500001"),
        "6 decimal",
        "pattern",
    ),
    ("lines[1].unit_price", lambda o: o["lines"][1].update(unit_price=-1), "at least 0", "anyOf"),
    ("lines[1].sku", lambda o: o["lines"][1].pop("sku"), "is missing", "required"),
    ("lines[1].sku", lambda o: o["lines"][1].update(sku=" "), "blank", "pattern"),
    (
        "lines[0].colour",
        lambda o: o["lines"][0].update(colour="black"),
        "not a field",
        "additionalProperties",
    ),
    ("lines", lambda o: o.update(lines=[]), "must not be empty", "minItems"),
    ("lines", lambda o: o.update(lines=o["lines"] * 501), "at most 1000", "maxItems"),
    ("total", lambda o: o.pop("total"), "is missing", "required"),
    ("total", lambda o: o.update(total="419.270001"), "2 decimal", "pattern"),
    ("total", lambda o: o.update(total="1000000000"), "less than", "pattern"),
    ("total", lambda o: o.update(total=10**9), "less than", "exclusiveMaximum"),
    ("discount", lambda o: o.update(discount="-15.00"), "at least 0", "pattern"),
    ("shipping", lambda o: o.update(shipping="24.95 USD"), "such as", "pattern"),
    ("tax", lambda o: o.update(tax=False), "such as", "anyOf"),
    ("order_id", lambda o: o.update(order_id="x" * 65), "64 printable", "pattern"),
    ("order_id", lambda o: o.update(order_id=123), "64 printable", "type"),
    ("order_number", lambda o: o.update(order_number="1" * 65), "at most 64", "maxLength"),
    ("order_date", lambda o: o.update(order_date="2026-11-31"), "calendar date", "format"),
    ("order_date", lambda o: o.update(order_date="2026-11-20T10:00:00Z"), "YYYY-MM-DD", "pattern"),
    ("ship_by_date", lambda o: o.update(ship_by_date=20261125), "YYYY-MM-DD", "anyOf"),
    ("currency", lambda o: o.update(currency="US$"), "ISO 4217", "pattern"),
    ("customer", lambda o: o.update(customer={"phone": "555"}), "at least one of", "anyOf"),
    ("customer", lambda o: o.update(customer={"name": "  "}), "at least one of", "anyOf"),
    ("customer.email", lambda o: o["customer"].update(email="ap at acme"), "e-mail", "pattern"),
    (
        "customer.billing_address.zip",
        lambda o: o["customer"]["billing_address"].update(zip=40202),
        "string",
        "type",
    ),
    (
        "ship_to.country",
        lambda o: o["ship_to"].update(country="United States"),
        "ISO 3166-1",
        "pattern",
    ),
    (
        "ship_to.street",
        lambda o: o["ship_to"].update(street="x"),
        "not a field",
        "additionalProperties",
    ),
    ("note", lambda o: o.update(note="x" * 10_001), "at most 10000", "maxLength"),
    ("tags[1]", lambda o: o.update(tags=["b2b", ""]), "blank", "minLength"),
    ("tags", lambda o: o.update(tags=[f"t{n}" for n in range(51)]), "at most 50", "maxItems"),
    (
        "custom_fields.Channel",
        lambda o: o["custom_fields"].update(Channel=["EDI"]),
        "a string, a number",
        "anyOf",
    ),
    (
        "custom_fields",
        lambda o: o.update(custom_fields={str(n): n for n in range(51)}),
        "at most 50",
        "maxProperties",
    ),
    ("status", lambda o: o.update(status="Cancelled"), '"open" or "cancelled"', "enum"),
    ("totl", lambda o: o.update(totl="1.00"), 'did you mean "total"', "additionalProperties"),
]


@pytest.mark.parametrize(
    ("field", "breaks", "problem", "keyword"), _INVALID, ids=[f"{c[0]}-{c[3]}" for c in _INVALID]
)
def test_each_broken_rule_is_named_by_model_and_schema(
    field: str, breaks: Callable[[dict[str, Any]], object], problem: str, keyword: str
) -> None:
    order = example()
    breaks(order)
    details = refusal(order).details
    assert [name for name, _ in details] == [field]
    assert problem in details[0][1]
    assert (field, keyword) in schema_violations(order)


def test_a_json_numbers_decimal_places_are_checked_by_the_model_alone() -> None:
    order = example()
    order["lines"][0]["unit_price"] = Decimal("12.5000001")
    assert schema_violations(order) == []
    assert refusal(order).details == [
        ("lines[0].unit_price", "has more than 6 decimal places (12.5000001)")
    ]
    assert_schema_and_model_agree(order)


# --- the draft --------------------------------------------------------------------------


def test_draft_carries_every_field_where_it_belongs() -> None:
    draft = draft_of(example(), options(po_prefix="EU-", tags=["partner", "b2b"], warehouse_id=3))
    request = draft.request
    assert draft.order_id == "PO-2026-000123"
    assert draft.order_name == "123"
    assert draft.currency == "USD"
    assert draft.expected_total == Decimal("419.27")
    assert request.customer_po_number == "EU-123"
    assert request.alternate_ids == ["partner:PO-2026-000123"]
    assert request.order_date == dt.date(2026, 11, 20)
    assert request.ship_by_date == dt.date(2026, 11, 25)
    assert request.order_discount_amount == Decimal("15.00")
    assert request.total_shipping == Decimal("24.95")
    assert request.tax_amount == Decimal("22.32")
    assert request.tags == ["b2b", "edi", "partner"]
    assert request.custom_fields == {"Channel": "EDI", "Buyer": "Dana Whitfield"}
    assert request.public_note and request.public_note.startswith("Deliver to the loading dock")
    assert request.private_note and request.private_note.startswith("Net 30")
    assert request.warehouse_id == 3
    assert request.company_id == 42
    assert request.ship_to is not None and request.ship_to.address_2 == "Dock 3"


def test_customer_becomes_a_reference_for_the_resolver() -> None:
    customer = draft_of(example()).customer
    assert isinstance(customer, CustomerRef)
    assert (customer.customer_id, customer.email, customer.name) == (
        "C-42",
        "ap@acme-retail.example",
        "Acme Retail",
    )
    assert (customer.first_name, customer.last_name, customer.phone) == (
        "Dana",
        "Whitfield",
        "+1 502 555 0142",
    )
    assert customer.address is not None and customer.address.address_2 == "Suite 900"


def test_guest_order_has_no_customer_and_defaults_name_and_po_number_to_the_order_id() -> None:
    order = example()
    for key in ("customer", "order_number", "ship_to", "discount", "shipping", "tax"):
        del order[key]
    order["total"] = "387.00"
    draft = draft_of(order)
    assert draft.customer is None
    assert draft.order_name == "PO-2026-000123"
    assert draft.request.customer_po_number == "PO-2026-000123"
    wire_body = draft.request.to_wire()
    assert {"ship_to", "order_discount_amount", "total_shipping", "tax_amount"}.isdisjoint(
        wire_body
    )


def test_null_and_blank_optional_fields_count_as_absent() -> None:
    order = example()
    order.update(order_number="", note="  ", tags=None, custom_fields=None, status=None)
    order["customer"] = {"email": "ap@acme-retail.example", "name": "", "billing_address": None}
    order["ship_to"] = {"address_1": "", "country": ""}
    draft = draft_of(order)
    assert draft.order_name == "PO-2026-000123"
    assert draft.request.public_note is None
    assert draft.request.tags is None and draft.request.custom_fields is None
    assert draft.request.ship_to is None
    assert draft.customer == CustomerRef(email="ap@acme-retail.example")


def test_amounts_stay_exact_whether_strings_or_json_numbers() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for field in ('"12.50"', '"7.25"', '"15.00"', '"24.95"', '"22.32"', '"419.27"'):
        text = text.replace(field, field.strip('"'))
    from_numbers = draft_of(wire.loads(text))
    from_strings = draft_of(example())
    assert from_numbers.request == from_strings.request
    assert from_numbers.expected_total == Decimal("419.27")
    body = wire.dumps(from_numbers.request.to_wire())
    assert b'"unit_price":12.50' in body and b'"tax_amount":22.32' in body


def test_trailing_zeros_past_the_allowed_places_are_dropped_not_refused() -> None:
    order = example()
    order["lines"][0]["unit_price"] = "12.500000000"
    order["tax"] = "22.3200"
    draft = draft_of(order)
    assert str(draft.request.items[0].unit_price) == "12.500000"
    assert str(draft.request.tax_amount) == "22.32"


def test_six_decimal_unit_prices_reconcile_once_rounded() -> None:
    order = example()
    order["lines"] = [{"sku": "STICKER-3PK", "quantity": 3, "unit_price": "3.333333"}]
    order.update(discount=None, shipping=None, tax=None, total="10.00")
    draft = draft_of(order)
    reconcile_totals(draft)
    assert draft.request.items[0].unit_price == Decimal("3.333333")


def test_total_that_does_not_add_up_is_left_to_the_bridge_which_names_both_amounts() -> None:
    order = example()
    order["total"] = "419.26"
    draft = mapping.map(Delivery(order), InvoiceOptions(company_id=1))
    assert isinstance(draft, Draft)
    with pytest.raises(InvoiceError) as caught:
        reconcile_totals(draft)
    assert caught.value.details == [("total", "is 419.26, but the invoice would total 419.27")]


def test_refusal_message_names_the_order_the_first_field_and_how_many_more() -> None:
    order = example()
    order["lines"][0]["quantity"] = 0
    order["currency"] = "usd"
    error = refusal(order)
    assert error.message.startswith("partner order PO-2026-000123 cannot be invoiced: currency")
    assert error.message.endswith("(and 1 more problem)")
    assert [field for field, _ in error.details] == ["currency", "lines[0].quantity"]


# --- cancellations ---------------------------------------------------------------------


def test_cancelled_order_tags_its_invoice_when_the_source_maps_the_status() -> None:
    order = example() | {"status": "cancelled"}
    result = result_of(order, options(tag_topics={"cancelled": "Cancelled by partner"}))
    assert result == Tag(
        order_id="PO-2026-000123",
        tag="Cancelled by partner",
        reason="status cancelled",
        order_name="123",
    )


def test_cancelled_order_is_skipped_without_a_tag_and_never_drafted() -> None:
    order = example() | {"status": "cancelled", "total": "1.00"}  # not checked: not invoiced
    result = result_of(order, options(tag_topics={"refunded": "refunded"}))
    assert isinstance(result, Skip)
    assert result.order_id == "PO-2026-000123"
    assert "cancelled" in result.reason


def test_cancelled_order_must_still_be_well_formed() -> None:
    order = example() | {"status": "cancelled", "currency": "dollars"}
    assert [field for field, _ in refusal(order).details] == ["currency"]


# --- properties -------------------------------------------------------------------------

_FIELDS = [*SCHEMA["properties"], "id", "email", "name", "sku", "quantity", "unit_price"]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(0, 8).flatmap(
        lambda places: st.decimals(-(10**12), 10**12, places=places, allow_nan=False)
    )
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "0", "-0", "0.0", "007", "1.5", "12.50", "12.505", "1e3", "1,5"])
    | st.sampled_from(["2026-11-20", "2026-02-30", "USD", "usd", "US", "a@b.co", "open", "x" * 70])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _map_or_refuse(payload: Any) -> None:
    try:
        result = result_of(payload)
    except MappingError as exc:
        assert exc.details, "a refusal always names a field"
        return
    assert isinstance(result, Draft | Skip | Tag)
    if isinstance(result, Draft):
        # The bridge checks the totals: a mismatch is its own, named refusal, never a crash.
        try:
            reconcile_totals(result)
        except InvoiceError as exc:
            assert [field for field, _ in exc.details] == ["total"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_arbitrary_json_maps_or_is_refused(payload: Any) -> None:
    _map_or_refuse(payload)
    assert_schema_and_model_agree(payload)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if isinstance(node, dict | list) else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _containers(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _containers(value, (*path, index))
    return found


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_orders_get_the_same_verdict_from_schema_and_model(data: st.DataObject) -> None:
    order = example()
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        where = data.draw(st.sampled_from(_containers(order)))
        node: Any = order
        for part in where:
            node = node[part]
        if isinstance(node, dict):
            key = data.draw(st.sampled_from(_FIELDS) | st.sampled_from(sorted(node) or ["x"]))
            if key in node and data.draw(st.booleans()):
                del node[key]
            else:
                node[key] = data.draw(_JSON)
        elif node:
            node[data.draw(st.integers(0, len(node) - 1))] = data.draw(_JSON)
    assert_schema_and_model_agree(order)
    _map_or_refuse(order)


def _decimal(digits: int, places: int, *, low: int = 0) -> st.SearchStrategy[Decimal]:
    """Decimals below 10**digits with exactly `places` places, from `low` units up."""
    return st.integers(min_value=low, max_value=10 ** (digits + places) - 1).map(
        lambda n: Decimal(n).scaleb(-places)
    )


def _places(
    digits: int, places: st.SearchStrategy[int], *, low: int = 0
) -> st.SearchStrategy[Decimal]:
    return places.flatmap(lambda count: _decimal(digits, count, low=low))


@st.composite
def valid_orders(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed order whose total is Luminous's, by the sandbox's arithmetic."""

    def written(value: Decimal) -> Any:
        return format(value, "f") if draw(st.booleans()) else value

    skus = st.sampled_from(["TEE-BLK-M", "MUG-WHT", "SOCK-3PK"])
    lines = [
        (
            draw(skus),
            draw(_places(3, st.integers(0, 3), low=1)),
            draw(_places(5, st.integers(0, 6))),
        )
        for _ in range(draw(st.integers(min_value=1, max_value=5)))
    ]
    subtotal = sum((quantity * price for _, quantity, price in lines), Decimal(0))
    discount = draw(_decimal(6, 2)).min(subtotal.quantize(Decimal("0.01"), rounding=ROUND_DOWN))
    shipping, tax = draw(_decimal(4, 2)), draw(_decimal(4, 2))
    total = invoice_totals(
        {
            "items": [{"quantity": quantity, "unit_price": price} for _, quantity, price in lines],
            "order_discount_amount": discount,
            "total_shipping": shipping,
            "tax_amount": tax,
        }
    ).total
    order: dict[str, Any] = {
        "order_id": draw(st.from_regex(r"[!-~]{1,64}", fullmatch=True)),
        "order_date": "2026-11-20",
        "currency": "USD",
        "lines": [
            {"sku": sku, "quantity": written(quantity), "unit_price": written(price)}
            for sku, quantity, price in lines
        ],
        "discount": written(discount),
        "shipping": written(shipping),
        "tax": written(tax),
        "total": written(total),
    }
    optional = {
        "order_number": st.text(max_size=64),
        "customer": st.fixed_dictionaries(
            {"email": st.just("buyer@example.com")}, optional={"name": st.text(max_size=255)}
        ),
        "ship_to": st.fixed_dictionaries(
            {}, optional=dict.fromkeys(_ADDRESS, st.text(max_size=255))
        ),
        "ship_by_date": st.dates().map(str),
        "note": st.text(max_size=300),
        "tags": st.lists(st.text(min_size=1, max_size=255).filter(str.strip), max_size=4),
        "custom_fields": st.dictionaries(
            st.text(min_size=1, max_size=255).filter(str.strip),
            st.none() | st.booleans() | st.text(max_size=1000) | _decimal(14, 6),
            max_size=3,
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            order[key] = draw(strategy)
    return order


_ADDRESS = ("address_1", "address_2", "city", "state", "zip")


class _Catalog:
    """Company 42 and any SKU: what the sandbox needs to judge a request's shape alone."""

    def company(self, company_id: int) -> dict[str, Any] | None:
        return {"id": company_id} if company_id == 42 else None

    def product(self, product_id: int) -> dict[str, Any] | None:
        return None

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        return {"id": 1, "sku": sku, "alternate_skus": []}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_orders())
def test_valid_orders_always_reconcile(order: dict[str, Any]) -> None:
    # Through the wire, as a delivery would arrive.
    payload = wire.loads(wire.dumps(order))
    assert schema_violations(payload) == []
    draft = draft_of(payload)
    reconcile_totals(draft)
    # And Luminous's own rules (as the sandbox keeps them) take the request as it is sent.
    sent = wire.loads(wire.dumps(draft.request.to_wire()))
    validate_invoice(sent, _Catalog(), auto_products=False)
    assert invoice_totals(sent).total == Decimal(order["total"])


def test_a_partners_po_prefix_from_its_shop_table_names_its_invoices() -> None:
    order = example()
    opts = options(po_prefix="ERP-", shop_po_prefixes={"north": "N-"})
    north = mapping.map(Delivery(order, shop="north"), opts)
    assert isinstance(north, Draft)
    assert north.request.customer_po_number == f"N-{order['order_number']}"
    assert draft_of(order, opts).request.customer_po_number == f"ERP-{order['order_number']}"
