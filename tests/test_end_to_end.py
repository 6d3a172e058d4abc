"""The whole flow over real sockets: signed deliveries into `bridge serve`, invoices out of
the sandbox running as its own process, as a user runs them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bridge.wire import loads
from tests.conftest import ROOT
from tests.harness import Process, free_port, run_cli, sandbox_invoices, sign_and_post
from tests.orders import body, seed, shopify_order

SECRET = "e2e-shopify-secret"
ADMIN = "e2e-admin-token"


def write_config(tmp_path: Path, sandbox_port: int, **server: float) -> Path:
    respond_within = server.get("respond_within", 5.0)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[server]
respond_within = {respond_within}

[store]
url = "sqlite:///{tmp_path / "bridge.db"}"

[luminous]
base_url = "http://127.0.0.1:{sandbox_port}/external/api/v1"
timeout = 2.0
max_requests_per_second = 0
unknown_outcome_wait = 3.0

[retry]
base_delay = 0.05
max_delay = 0.3

[sources.shopify]
secret_env = "SHOPIFY_WEBHOOK_SECRET"

[sources.shopify.options]
company_id = 1
payment_terms = "Due on receipt"
"""
    )
    return config


ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": "test-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}


def start_sandbox(tmp_path: Path, port: int, *flags: str) -> Process:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    args = ["sandbox", "--port", str(port), "--seed", str(seed_file)]
    args += ["--state", str(tmp_path / "sandbox-state.json"), *flags]
    return Process(args, port, tmp_path / "sandbox.log").start()


def start_bridge(tmp_path: Path, config: Path, port: int) -> Process:
    args = ["serve", "--config", str(config), "--port", str(port)]
    return Process(args, port, tmp_path / "bridge.log", env=ENV).start()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    sandbox = start_sandbox(tmp_path, free_port())
    bridge = start_bridge(tmp_path, write_config(tmp_path, sandbox.port), free_port())
    yield bridge, sandbox
    bridge.stop()
    sandbox.stop()


def admin_get(bridge: Process, path: str) -> httpx.Response:
    return httpx.get(bridge.url + path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def test_an_order_becomes_one_invoice_whose_total_is_the_orders(
    services: tuple[Process, Process],
) -> None:
    bridge, sandbox = services
    order = shopify_order(
        820982911946154508, lines=[("TEE-BLK-M", 3, "19.99"), ("SOCK-3PK", 1, "12.00")]
    )
    answer = sign_and_post(bridge.url, "shopify", body(order), SECRET, delivery_id="wh-1")
    assert answer.status_code == 201, answer.text
    created = loads(answer.content)
    assert created["status"] == "created" and isinstance(created["invoice_id"], int)
    invoices = sandbox_invoices(sandbox.url)
    assert len(invoices) == 1
    invoice = invoices[0]
    assert invoice["id"] == created["invoice_id"]
    assert invoice["total"] == Decimal(order["total_price"])
    assert invoice["customer_po_number"] == order["name"]
    assert "shopify:820982911946154508" in invoice["alternate_ids"]
    event = loads(admin_get(bridge, f"/events/{created['event_id']}").content)
    assert event["status"] == "created" and event["order_id"] == "820982911946154508"
    assert [step["outcome"] for step in event["history"]] == ["created"]


def test_repeats_and_redeliveries_create_no_second_invoice(
    services: tuple[Process, Process],
) -> None:
    bridge, sandbox = services
    payload = body(shopify_order(5001))
    first = sign_and_post(bridge.url, "shopify", payload, SECRET, delivery_id="wh-a")
    repeat = sign_and_post(bridge.url, "shopify", payload, SECRET, delivery_id="wh-a")
    other_delivery = sign_and_post(bridge.url, "shopify", payload, SECRET, delivery_id="wh-b")
    assert first.status_code == 201
    assert repeat.status_code == 200 and other_delivery.status_code == 200
    original = loads(first.content)
    for answer in (repeat, other_delivery):
        again = loads(answer.content)
        assert again == {**original, "duplicate": True}
    assert len(sandbox_invoices(sandbox.url)) == 1


def test_bad_deliveries_get_clear_4xx_and_nothing_is_recorded(
    services: tuple[Process, Process],
) -> None:
    bridge, sandbox = services
    payload = body(shopify_order(5002))
    wrong = sign_and_post(bridge.url, "shopify", payload, "not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "unauthorized" and "does not match" in wrong.json()["message"]
    unsigned = httpx.post(
        bridge.url + "/webhooks/shopify",
        content=payload,
        headers={"Content-Type": "application/json"},
    )
    assert unsigned.status_code == 401
    assert httpx.post(bridge.url + "/webhooks/nope", content=payload).status_code == 404
    form = httpx.post(
        bridge.url + "/webhooks/shopify",
        content=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415 and "application/json" in form.json()["message"]
    huge = sign_and_post(bridge.url, "shopify", b'{"x": "' + b"a" * 1_100_000 + b'"}', SECRET)
    assert huge.status_code == 413
    broken = sign_and_post(bridge.url, "shopify", b'{"id": 1,', SECRET)
    assert broken.status_code == 400 and broken.json()["error"] == "malformed_json"
    assert admin_get(bridge, "/events").json()["data"] == []
    assert sandbox_invoices(sandbox.url) == []


def test_an_unknown_sku_ends_dead_naming_it(services: tuple[Process, Process]) -> None:
    bridge, sandbox = services
    order = shopify_order(5003, lines=[("NOT-IN-CATALOGUE", 1, "10.00")])
    answer = sign_and_post(bridge.url, "shopify", body(order), SECRET)
    assert answer.status_code == 200, answer.text
    dead = answer.json()
    assert dead["status"] == "dead"
    assert "unknown SKU NOT-IN-CATALOGUE" in dead["reason"]
    assert sandbox_invoices(sandbox.url) == []
    listed = admin_get(bridge, "/events?status=dead").json()["data"]
    assert [event["event_id"] for event in listed] == [dead["event_id"]]


def test_skipped_test_orders_and_unreconciled_totals(services: tuple[Process, Process]) -> None:
    bridge, sandbox = services
    skipped = sign_and_post(bridge.url, "shopify", body(shopify_order(5004, test=True)), SECRET)
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    assert "test" in skipped.json()["reason"]
    bad = shopify_order(5005)
    bad["total_price"] = bad["total_price_set"]["shop_money"]["amount"] = "999.99"
    dead = sign_and_post(bridge.url, "shopify", body(bad), SECRET)
    assert dead.status_code == 200 and dead.json()["status"] == "dead"
    assert "999.99" in dead.json()["reason"] and "do not reconcile" in dead.json()["reason"]
    other_topic = sign_and_post(
        bridge.url, "shopify", body(shopify_order(5006)), SECRET, topic="orders/updated"
    )
    assert (
        other_topic.json()["status"] == "skipped"
        and "orders/updated" in other_topic.json()["reason"]
    )
    assert sandbox_invoices(sandbox.url) == []


def test_admin_routes_need_the_token(services: tuple[Process, Process]) -> None:
    bridge, _ = services
    assert httpx.get(bridge.url + "/events").status_code == 401
    assert (
        httpx.get(bridge.url + "/events", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert admin_get(bridge, "/events/999").status_code == 404
    assert httpx.get(bridge.url + "/readyz").json() == {"status": "ready"}


def test_metrics_count_deliveries_and_outcomes(services: tuple[Process, Process]) -> None:
    bridge, _ = services
    assert (
        sign_and_post(bridge.url, "shopify", body(shopify_order(5301)), SECRET).status_code == 201
    )
    assert sign_and_post(bridge.url, "shopify", b"{}", "wrong-secret").status_code == 401
    metrics = httpx.get(bridge.url + "/metrics").text
    assert 'bridge_events{status="created"} 1.0' in metrics
    assert 'bridge_deliveries_total{source="shopify",status="201"} 1.0' in metrics
    assert 'bridge_deliveries_total{source="shopify",status="401"} 1.0' in metrics
    assert 'bridge_event_outcomes_total{outcome="created",source="shopify"} 1.0' in metrics
    assert 'bridge_answer_seconds_count{source="shopify"} 2.0' in metrics
    assert "bridge_paused 0.0" in metrics


@pytest.mark.slow
def test_a_restart_takes_up_every_unfinished_event(tmp_path: Path) -> None:
    sandbox_port, bridge_port = free_port(), free_port()
    sandbox = start_sandbox(tmp_path, sandbox_port, "--fail-rate", "1", "--fault-seed", "7")
    config = write_config(tmp_path, sandbox_port, respond_within=0.5)
    bridge = start_bridge(tmp_path, config, bridge_port)
    orders = [shopify_order(7000 + n) for n in range(3)]
    try:
        for order in orders:
            answer = sign_and_post(bridge.url, "shopify", body(order), SECRET)
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] in ("processing", "retrying")
        bridge.kill()
        sandbox.stop()
        sandbox = start_sandbox(tmp_path, sandbox_port)
        bridge = start_bridge(tmp_path, config, bridge_port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = admin_get(bridge, "/events").json()["data"]
            if all(event["status"] == "created" for event in events):
                break
            time.sleep(0.2)
        assert [event["status"] for event in events] == ["created"] * 3, bridge.output()
        invoices = sandbox_invoices(sandbox.url)
        assert sorted(i["customer_po_number"] for i in invoices) == sorted(
            o["name"] for o in orders
        )
    finally:
        bridge.stop()
        sandbox.stop()


def test_the_readme_demo(tmp_path: Path) -> None:
    """`bridge serve --sandbox`, then `bridge send shopify examples/shopify-order.json`."""
    port = free_port()
    env = {"SHOPIFY_WEBHOOK_SECRET": "demo"}
    server = Process(
        ["serve", "--sandbox", "--port", str(port)],
        port,
        tmp_path / "serve.log",
        env=env,
        cwd=tmp_path,
    ).start()
    example = ROOT / "examples" / "shopify-order.json"
    url = f"http://127.0.0.1:{port}"
    try:
        first = run_cli("send", "shopify", str(example), "--url", url, env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("HTTP 201")
        created = loads(first.stdout.split("\n", 1)[1])
        invoice = httpx.get(
            f"{url}/external/api/v1/invoices/{created['invoice_id']}",
            headers={"Authorization": "Bearer anything"},
        )
        order = loads(example.read_bytes())
        assert loads(invoice.content)["data"]["total"] == Decimal(order["total_price"])
        again = run_cli("send", "shopify", str(example), "--url", url, env=env, cwd=tmp_path)
        assert again.stdout.startswith("HTTP 200")
        assert loads(again.stdout.split("\n", 1)[1])["invoice_id"] == created["invoice_id"]
        assert len(sandbox_invoices(url)) == 1
        wrong = run_cli(
            "send",
            "shopify",
            str(example),
            "--url",
            url,
            env={"SHOPIFY_WEBHOOK_SECRET": "wrong"},
            cwd=tmp_path,
        )
        assert wrong.returncode == 1 and wrong.stdout.startswith("HTTP 401")
        assert (tmp_path / "bridge.db").exists()
    finally:
        server.stop()
    listed = run_cli("events", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.splitlines()[-1] == "1 matching: 1 created"


def test_a_dead_event_replays_once_its_cause_is_fixed(services: tuple[Process, Process]) -> None:
    bridge, sandbox = services
    order = shopify_order(5101, lines=[("LATE-SKU", 2, "15.00")])
    dead = sign_and_post(bridge.url, "shopify", body(order), SECRET).json()
    assert dead["status"] == "dead" and "unknown SKU LATE-SKU" in dead["reason"]
    created = httpx.post(
        f"{sandbox.url}/external/api/v1/products",
        json={"name": "Late product", "sku": "LATE-SKU"},
        headers={"Authorization": "Bearer test-token"},
    )
    assert created.status_code in (200, 201), created.text
    config = str(bridge.args[bridge.args.index("--config") + 1])
    replay = run_cli("events", "--config", config, "replay", str(dead["event_id"]), env=ENV)
    assert replay.returncode == 0, replay.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        event = admin_get(bridge, f"/events/{dead['event_id']}").json()
        if event["status"] == "created":
            break
        time.sleep(0.2)
    assert event["status"] == "created", event
    assert [step["outcome"] for step in event["history"]] == ["dead", "replayed", "created"]
    assert len(sandbox_invoices(sandbox.url)) == 1
    repeat = sign_and_post(bridge.url, "shopify", body(order), SECRET).json()
    assert repeat["invoice_id"] == event["invoice_id"] and repeat["duplicate"] is True
