"""Exactly once against the clock and the scheduler: wall-clock steps, paused replicas and
sends that land long after the client gave up, each over real processes.

Every scenario here doubled an invoice before claims were fenced by their generation, leases
were measured on a clock that does not step, and a resend waited for the first send to be
unable to land.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.harness import (
    Process,
    admin_events,
    bridge_config,
    bridge_process,
    free_port,
    sandbox_invoices,
    sandbox_process,
    sign_and_post,
    wait_until,
)
from tests.holding_proxy import HoldingProxy
from tests.orders import body, shopify_order
from tests.test_replicas import scratch_database

SECRET = "fencing-shopify-secret"
ADMIN = "fencing-admin-token"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": "fencing-luminous-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def needs(tool: str, present: bool) -> None:
    """Skip without the Debian package on a developer's machine; CI installs it and fails."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing; .ci/run installs it")
    pytest.skip(f"{tool} is not installed (apt-get install {tool})")


def settled(bridge: Process, event_id: int, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        for event in admin_events(bridge.url, ADMIN):
            if event["event_id"] == event_id and event["status"] not in (
                "received",
                "processing",
                "retrying",
            ):
                return event
        return None

    event = wait_until(finished, timeout)
    assert event is not None, f"event {event_id} not finished:\n{bridge.output()[-3000:]}"
    return event


def invoices_for(sandbox: Process, po_number: str) -> list[dict[str, Any]]:
    return sandbox_invoices(sandbox.url, **{"customer_po_number[eq]": po_number})


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Process]:
    process = sandbox_process(tmp_path, free_port(), "--latency", "2000").start()
    yield process
    process.stop(timeout=5)


def test_a_forward_wall_clock_step_does_not_double_an_invoice(
    tmp_path: Path, sandbox: Process
) -> None:
    """The wall clock jumps +120 s (an NTP step, a VM resume) while an order is resolved."""
    needs("faketime", LIBFAKETIME.exists())
    step = tmp_path / "faketime"
    step.write_text("+0\n")
    config = bridge_config(
        tmp_path,
        sandbox.port,
        {
            "luminous": {"timeout": 10.0, "unknown_outcome_wait": 60.0},
            "server": {"respond_within": 0},
        },
    )
    env = {
        **ENV,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(step),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # an NTP step moves the wall clock only
    }
    bridge = bridge_process(config, free_port(), env).start()
    try:
        order = shopify_order(7_300_000_000_001, number=3001)
        answer = sign_and_post(bridge.url, "shopify", body(order), SECRET, delivery_id="step-1")
        assert answer.status_code == 202, answer.text
        time.sleep(0.5)  # the product lookup is on its 2 s way
        step.write_text("+120s\n")
        event = settled(bridge, answer.json()["event_id"], 30)
    finally:
        bridge.stop()
    assert event["status"] == "created", event
    assert len(invoices_for(sandbox, "#3001")) == 1
    # The lease outlived the step: the event was never taken over (on the wall clock it was,
    # and only the claim's generation kept the first task from sending).
    assert "left to its new holder" not in bridge.output()


@pytest.mark.slow
def test_a_replica_paused_before_its_send_does_not_send_after_losing_the_claim(
    tmp_path: Path,
) -> None:
    """Replica A marks the send and is SIGSTOPped while it waits for its rate limiter; B takes
    the event over and invoices it; A, resumed, must not send."""
    sandbox = sandbox_process(tmp_path, free_port()).start()
    bridges: list[Process] = []
    try:
        with scratch_database() as url:
            for replica in (0, 1):
                directory = tmp_path / f"replica{replica}"
                directory.mkdir()
                config = bridge_config(
                    directory,
                    sandbox.port,
                    {
                        "store": {"url": url},
                        "server": {"respond_within": 0},
                        # One request every 4 s: the send waits in the limiter after the
                        # product lookup. A lease is 3 × 1 s + 5 s.
                        "luminous": {
                            "timeout": 1.0,
                            "max_requests_per_second": 0.25,
                            "unknown_outcome_wait": 1.0,
                        },
                    },
                )
                bridges.append(bridge_process(config, free_port(), ENV).start())
            first, second = bridges
            order = shopify_order(7_300_000_000_002, number=3002)
            answer = sign_and_post(first.url, "shopify", body(order), SECRET, delivery_id="p-1")
            assert answer.status_code == 202, answer.text
            event_id = answer.json()["event_id"]

            def marked() -> bool:
                with psycopg.connect(url, autocommit=True) as db:
                    row = db.execute("SELECT sent FROM orders").fetchone()
                return bool(row and row[0])

            assert wait_until(marked, 10, interval=0.02), first.output()[-2000:]
            assert first.proc is not None
            first.proc.send_signal(signal.SIGSTOP)
            try:
                event = settled(second, event_id, 30)
                assert event["status"] == "created", event
                assert len(invoices_for(sandbox, "#3002")) == 1
            finally:
                first.proc.send_signal(signal.SIGCONT)
            time.sleep(6)  # A's limiter wait ends; a send, if any, would land now
            assert len(invoices_for(sandbox, "#3002")) == 1
            assert "left to its new holder" in first.output()
            for bridge in bridges:
                assert bridge.stop() == 0
    finally:
        for bridge in bridges:
            bridge.stop()
        sandbox.stop(timeout=5)


@pytest.mark.parametrize(
    ("timeout", "hold", "wait"),
    [
        pytest.param(2.0, 6.0, 10.0, id="scaled"),
        pytest.param(10.0, 20.0, 60.0, id="as-reported", marks=pytest.mark.slow),
    ],
)
def test_a_send_held_past_the_deadline_is_adopted_not_repeated(
    tmp_path: Path, timeout: float, hold: float, wait: float
) -> None:
    """A proxy holds the first `POST /invoices` past the client's deadline, then lets it land.
    The bridge looks the order up until the first send can no longer land, and adopts it."""
    sandbox = sandbox_process(tmp_path, free_port()).start()
    try:
        with HoldingProxy(sandbox.url, hold_count=1, hold_seconds=hold) as proxy:
            config = bridge_config(
                tmp_path,
                sandbox.port,
                {
                    "server": {"respond_within": 0},
                    "luminous": {
                        "base_url": proxy.url + "/external/api/v1",
                        "timeout": timeout,
                        "unknown_outcome_wait": wait,
                    },
                },
            )
            bridge = bridge_process(config, free_port(), ENV).start()
            try:
                order = shopify_order(7_300_000_000_003, number=3003)
                answer = sign_and_post(
                    bridge.url, "shopify", body(order), SECRET, delivery_id="late-1"
                )
                event = settled(bridge, answer.json()["event_id"], wait + hold + 30)
            finally:
                bridge.stop()
            held = proxy.held
        landed = invoices_for(sandbox, "#3003")
    finally:
        sandbox.stop(timeout=5)
    assert len(held) == 1 and held[0].client_gone and held[0].status == 201
    assert len(landed) == 1, landed
    assert event["status"] == "created" and event["invoice_id"] == landed[0]["id"]


def test_debian_tools_the_suite_needs_are_installed() -> None:
    """CI must not pass by skipping: the packages the fencing and signature tests use."""
    needs("faketime", LIBFAKETIME.exists())
    needs("php-cli", shutil.which("php") is not None)
