"""The `bridge` command's offline verbs: exit codes and what they print."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import StoreConfig
from bridge.store import open_store
from bridge.store.base import DEAD, REJECTED, SCHEMA_VERSION, NewDelivery
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
    assert main(["events", "list"]) == 2
    assert "bridge migrate" in capsys.readouterr().err
    assert not (isolated / "bridge.db").exists()  # reading never creates a store
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


# -- bridge events: find, dismiss, purge ----------------------------------------------


async def _failed_orders(database: Path) -> dict[str, int]:
    """Order #3044 dead on its currency (PO SH-#3044), #3045 rejected, #3046 still waiting."""
    store = open_store(StoreConfig(url=f"sqlite:///{database}", durability="normal"), create=True)
    await store.migrate()
    ids = {}
    for number, status, reason in (
        (3044, DEAD, "currency EUR, the source takes USD"),
        (3045, REJECTED, "line_items is not a list"),
        (3046, None, None),
    ):
        delivery = NewDelivery(
            "shopify",
            f"d{number}",
            "acme.myshopify.com",
            "orders/create",
            {},
            b"{}",
            order_id=str(number),
            order_name=f"#{number}",
        )
        event, _ = await store.record(delivery)
        ids[str(number)] = event.id
        if status is None:
            continue
        claimed = await store.claim(event.id, "test", 60)
        assert claimed is not None
        keys = [f"SH-#{number}"]
        assert await store.finish(event.id, claimed.generation, status, reason=reason, keys=keys)
    await store.close()
    return ids


def test_events_list_finds_an_order_by_any_key_and_counts_by_status(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = asyncio.run(_failed_orders(isolated / "bridge.db"))
    for ref in ("3044", "#3044", "sh-#3044"):
        assert main(["events", "list", "--order", ref]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1].split()[0] == str(ids["3044"]) and "dead" in out[1], out
        assert out[-1] == "1 matching: 1 dead"
    assert main(["events", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "3 matching: 1 received, 1 dead, 1 rejected"
    )
    assert main(["events", "list", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"next page: --before {ids['3046']}"
    assert out[-2] == "3 matching: 1 received, 1 dead, 1 rejected; shown 1"
    assert main(["events", "list", "--search", "EUR", "--json"]) == 0
    listed = loads(capsys.readouterr().out)
    assert [e["event_id"] for e in listed["data"]] == [ids["3044"]]
    assert listed["counts"] == {"dead": 1} and listed["next_before"] is None
    assert main(["events", "list", "--shop", "other.myshopify.com"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 matching: none"


@pytest.mark.parametrize(
    "argv,named",
    [
        (["events", "list", "--source", "nope"], "source 'nope'"),
        (["events", "list", "--status", "gone"], "status must be one of"),
        (["events", "list", "--until", "soon"], "until 'soon'"),
        (["events", "dismiss", "1", "--reason", " "], "needs a reason"),
        (["events", "dismiss", "--reason", "x"], "IDs or --status"),
        (["events", "dismiss", "1", "--source", "shopify", "--reason", "x"], "go with --status"),
        (["events", "purge", "--status", "dismissed"], "--before"),
        (["events", "purge", "--before", "2d"], "goes with --status"),
    ],
)
def test_events_arguments_that_name_nothing_usable_exit_2_in_one_line(
    isolated: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1, err


def test_events_dismiss_clears_the_dead_and_replay_revives_them(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = asyncio.run(_failed_orders(isolated / "bridge.db"))
    reason = "EUR orders are invoiced by hand"
    dry = ["events", "dismiss", "--status", "dead", "--reason", reason, "--dry-run"]
    assert main(dry) == 0
    assert capsys.readouterr().out.startswith(f"would dismiss event {ids['3044']} (dead:")
    assert main(["events", "list", "--status", "dead", "--json"]) == 0
    assert len(loads(capsys.readouterr().out)["data"]) == 1  # a dry run changes nothing
    assert main(["events", "dismiss", "--status", "dead", "--reason", reason]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "dismissed 1 events"
    assert main(["events", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "3 matching: 1 received, 1 rejected, 1 dismissed"
    )
    assert main(["events", "dismiss", "--status", "dead", "--reason", reason]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no dead events match: nothing to dismiss",
        "dismissed 0 events",
    ]
    assert main(["events", "replay", "--status", "dead", "--dry-run"]) == 0
    assert capsys.readouterr().out == "no dead events match: nothing to replay\n"
    assert main(["events", "dismiss", str(ids["3046"]), "--reason", reason]) == 1
    assert "only dead or rejected events are dismissed" in capsys.readouterr().err
    assert main(["events", "show", str(ids["3044"])]) == 0
    shown = loads(capsys.readouterr().out)
    assert shown["status"] == "dismissed" and shown["reason"] == reason
    assert [step["outcome"] for step in shown["history"]] == ["dead", "dismissed"]
    assert main(["events", "purge", "--status", "dismissed", "--before", "2099-01-01"]) == 0
    assert "purged the payloads of 1 dismissed events" in capsys.readouterr().out
    assert main(["events", "replay", "--status", "dismissed"]) == 0
    assert "replayed event" in capsys.readouterr().out
    assert main(["events", "list", "--status", "received", "--json"]) == 0
    assert len(loads(capsys.readouterr().out)["data"]) == 2
