"""Golden cases: every `tests/golden/<mapping>/<case>/` folder maps to its `expected.json`.

A case holds `body.json` (the exact delivery body), optionally `headers.json` and
`options.json` (the source's options; default company 42, "Due on receipt"), and
`expected.json`: the draft, skip or error the mapping produced, with the invoice total and
whether it reconciles with the order's own total.

After a deliberate change, rewrite the expected files and review every difference:

    BRIDGE_REGEN_GOLDEN=1 pytest tests/test_golden.py
    git diff tests/golden
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge import wire
from bridge.errors import ConfigError, MappingError
from bridge.invoice import request_total
from bridge.mapping import Delivery, Draft, Mapping, Tag, load_mapping
from bridge.sandbox import Sandbox, SandboxSettings

GOLDEN = Path(__file__).parent / "golden"
DEFAULT_OPTIONS = {"company_id": 42, "payment_terms": "Due on receipt"}
REGENERATE = os.environ.get("BRIDGE_REGEN_GOLDEN") == "1"

CASES = sorted(path for path in GOLDEN.glob("*/*") if (path / "body.json").is_file())
# Where each source's order states its own total.
ORDER_TOTAL = {"shopify": "total_price", "woocommerce": "total", "partner": "total"}


def mapping_for(name: str) -> Mapping:
    """The mapping registered as `name`, or the built-in module if it is not installed yet."""
    try:
        return load_mapping(name)
    except ConfigError:
        return load_mapping(f"mappings.{name}:mapping")


def delivery_for(case: Path) -> Delivery:
    """The delivery a case describes: parsed body, lower-case headers, topic and shop."""
    payload = wire.loads((case / "body.json").read_bytes())
    headers: dict[str, str] = {}
    if (case / "headers.json").is_file():
        raw = wire.loads((case / "headers.json").read_bytes())
        headers = {str(key).lower(): str(value) for key, value in raw.items()}
    return Delivery(
        payload=payload,
        headers=headers,
        topic=headers.get("x-shopify-topic") or headers.get("x-wc-webhook-topic"),
        shop=headers.get("x-shopify-shop-domain") or headers.get("x-wc-webhook-source"),
    )


def outcome(case: Path) -> dict[str, Any]:
    """What the case's mapping makes of its delivery, as the JSON-ready expected document."""
    mapping = mapping_for(case.parent.name)
    options_path = case / "options.json"
    raw_options = wire.loads(options_path.read_bytes()) if options_path.is_file() else {}
    options = mapping.options_model.model_validate(raw_options or DEFAULT_OPTIONS)
    try:
        result = mapping.map(delivery_for(case), options)
    except MappingError as exc:
        details = [{"field": field, "problem": problem} for field, problem in exc.details]
        return {"result": "error", "message": exc.message, "details": details}
    if isinstance(result, Tag):
        return {
            "result": "tag",
            "order_id": result.order_id,
            "order_name": result.order_name,
            "tag": result.tag,
            "reason": result.reason,
        }
    if not isinstance(result, Draft):
        return {"result": "skip", "reason": result.reason}
    total = request_total(result.request)
    return {
        "result": "draft",
        "order_id": result.order_id,
        "order_name": result.order_name,
        "currency": result.currency,
        "expected_total": wire.format_decimal(result.expected_total),
        "invoice_total": wire.format_decimal(total),
        "reconciles": total == result.expected_total,
        "request": wire.loads(wire.dumps(result.request.to_wire())),
    }


def render(document: dict[str, Any]) -> str:
    return wire.dumps(document, indent=True).decode("utf-8") + "\n"


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_golden_case(case: Path) -> None:
    actual = render(outcome(case))
    expected_path = case / "expected.json"
    if REGENERATE:
        expected_path.write_text(actual, encoding="utf-8")
        return
    assert expected_path.is_file(), f"{expected_path} is missing: run with BRIDGE_REGEN_GOLDEN=1"
    assert actual == expected_path.read_text(encoding="utf-8")


def test_golden_cases_exist() -> None:
    assert len([case for case in CASES if case.parent.name == "shopify"]) >= 20


def drafts() -> list[Path]:
    return [
        case
        for case in CASES
        if wire.loads((case / "expected.json").read_bytes()).get("result") == "draft"
    ]


@pytest.mark.parametrize("case", drafts(), ids=[f"{p.parent.name}/{p.name}" for p in drafts()])
def test_the_sandbox_totals_a_draft_as_its_order_does_exactly_when_it_reconciles(
    case: Path,
) -> None:
    """The sandbox's own arithmetic, not the bridge's, against the order's own total field."""
    expected = wire.loads((case / "expected.json").read_bytes())
    order = wire.loads((case / "body.json").read_bytes())
    sandbox = Sandbox(SandboxSettings(auto_products=True))
    request = {**expected["request"], "company_id": Sandbox.DEFAULT_COMPANY_ID}
    # The resolver gives a line without a SKU `options.fallback_sku`; any SKU will do here.
    request["items"] = [{"sku": "FALLBACK", **item} for item in request["items"]]
    invoice = sandbox.create_invoice(request)
    order_total = Decimal(order[ORDER_TOTAL[case.parent.name]])
    figures = (invoice["total"], order_total)
    assert (invoice["total"] == order_total) is expected["reconciles"], figures
