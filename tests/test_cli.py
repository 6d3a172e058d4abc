"""The `bridge` command's offline verbs: exit codes and what they print."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.store.base import SCHEMA_VERSION
from bridge.wire import loads
from tests.conftest import ROOT, TESTS

EXAMPLE = ROOT / "examples" / "shopify-order.json"
GOLDEN = TESTS / "golden" / "shopify"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    return tmp_path


def test_map_prints_the_invoice_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["map", "shopify", str(EXAMPLE)]) == 0
    out = capsys.readouterr()
    printed = loads(out.out)
    order = loads(EXAMPLE.read_bytes())
    assert printed["order_total"] == printed["invoice_total"] == Decimal(order["total_price"])
    assert printed["request"]["customer_po_number"] == order["name"]
    assert "company_id is not set" in out.err


def test_map_says_why_an_order_is_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    sample = GOLDEN / "fixture-orders-create-sample-2025-01" / "body.json"
    assert main(["map", "shopify", str(sample)]) == 0
    assert capsys.readouterr().out.startswith("skipped: a test order")


def test_map_refuses_invalid_and_unreconciled_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"id": 1, "line_items": "none"}))
    assert main(["map", "shopify", str(broken)]) == 2
    assert "line_items" in capsys.readouterr().err
    unreconciled = GOLDEN / "fixture-cad-automatic-discount" / "body.json"
    assert main(["map", "shopify", str(unreconciled)]) == 2
    err = capsys.readouterr().err
    assert "79.28" in err and "do not reconcile" in err
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    assert main(["map", "shopify", str(not_json)]) == 2
    assert main(["map", "nosuch", str(EXAMPLE)]) == 2
    assert main(["map", "shopify", str(tmp_path / "missing.json")]) == 2


def test_check_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("[retry]\nmax_delay = 'long'\n")
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bridge: configuration error: retry.max_delay:") and "\n" not in err
    config.write_text(
        "[luminous]\nbase_url = 'https://acme.api.joinluminous.com/external/api/v1'\n"
        "[sources.shopify.options]\ncompany_id = 42\n"
    )
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "s")
    assert main(["check-config", "--config", str(config)]) == 2
    assert "LUMINOUS_API_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("LUMINOUS_API_TOKEN", "t")
    assert main(["check-config", "--config", str(config)]) == 0
    assert "configuration OK" in capsys.readouterr().out


def test_mappings_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mappings"]) == 0
    assert "shopify\tmappings.shopify:mapping" in capsys.readouterr().out


def test_migrate_then_events_on_an_empty_store(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "list"]) == 1
    assert "bridge migrate" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert f"version {SCHEMA_VERSION}" in capsys.readouterr().out
    assert (isolated / "bridge.db").exists()
    assert main(["events", "list"]) == 0
    assert main(["events", "show", "1"]) == 1
    assert main(["events", "replay"]) == 2
    assert main(["events", "replay", "7"]) == 1
    assert main(["events", "purge"]) == 0


def test_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "eighty"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["sandbox", "--fail-rate", "2"])
    assert caught.value.code == 2
