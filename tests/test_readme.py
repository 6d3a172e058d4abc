"""The README's code does what the README says."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from types import ModuleType

from bridge.config import check_runnable, load_settings
from bridge.mapping import (
    Delivery,
    Draft,
    IdentifyingMapping,
    InvoiceOptions,
    OrderRef,
    Skip,
    Tag,
    reconcile_totals,
)
from tests.conftest import ROOT


def readme_mapping() -> ModuleType:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(# my_mappings/acme\.py\n.*?)```", text, re.S)
    assert code, "the README's mapping guide has its example"
    module = ModuleType("acme")
    exec(compile(code.group(1), "README.md", "exec"), module.__dict__)
    return module


def test_the_guides_mapping_works() -> None:
    mapping = readme_mapping().mapping
    assert isinstance(mapping, IdentifyingMapping)
    order = {
        "id": 17,
        "number": "A-17",
        "date": "2026-11-20",
        "currency": "USD",
        "email": "buyer@example.com",
        "lines": [{"sku": "WIDGET", "qty": 2, "price": "15.50"}],
        "tax": "2.48",
        "total": "33.48",
    }
    options = InvoiceOptions(company_id=42, po_prefix="AC-", tag_topics={"cancelled": "void"})
    draft = mapping.map(Delivery(order), options)
    assert isinstance(draft, Draft)
    reconcile_totals(draft)
    assert draft.request.company_id == 42 and draft.request.customer_po_number == "AC-A-17"
    assert draft.request.items[0].unit_price == Decimal("15.50")
    assert isinstance(mapping.map(Delivery({**order, "status": "draft"}), options), Skip)
    tag = mapping.map(Delivery({**order, "status": "cancelled"}), options)
    assert isinstance(tag, Tag) and tag.tag == "void"
    assert mapping.identify({"id": 17, "number": "A-17", "lines": "broken"}) == OrderRef(
        "17", "A-17"
    )
    assert mapping.identify(["not", "an", "order"]) is None


def test_the_configuration_reference_is_a_valid_configuration(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Configuration\n.*?```toml\n(.*?)```", text, re.S)
    assert block, "the README has its configuration reference"
    config = tmp_path / "bridge.toml"
    config.write_text(block.group(1))
    env = {"SHOPIFY_WEBHOOK_SECRET": "s", "ACME_WEBHOOK_SECRET": "a", "LUMINOUS_API_TOKEN": "t"}
    # Its sweep needs the shop's API token: without it `serve` refuses to start.
    without_token = check_runnable(load_settings(str(config), env), sandbox=False)
    assert [p.split(":")[0] for p in without_token] == ["sources.shopify.sweep"]
    settings = load_settings(str(config), {**env, "ACME_SHOPIFY_TOKEN": "shpat_x"})
    assert check_runnable(settings, sandbox=False) == []
    assert settings.sources["shopify"].sweep.every == 900
    options = settings.sources["shopify"].options
    assert options.tag_topics["partially_refunded"] == "partially-refunded"
    assert options.po_prefix_for("acme.myshopify.com") == "AC-"
    assert settings.config.retry.max_age == 86400
