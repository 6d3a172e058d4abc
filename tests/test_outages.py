"""Luminous unreachable, Luminous refusing our token, and a backlog drained at the pace we set.

Readiness: an outage is not ours to report, so `/readyz` stays 200 while Luminous is down
(the bridge keeps recording deliveries and retries them); a refused token is ours to fix,
so `/readyz` answers 503 naming it until a probe finds the token accepted again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import (
    Process,
    admin_events,
    bridge_config,
    bridge_process,
    free_port,
    sandbox_invoices,
    sandbox_process,
    sandbox_stats,
    sign_and_post,
    wait_until,
)
from tests.orders import body, shopify_order

SECRET = "outage-shopify-secret"
ADMIN = "outage-admin-token"
TOKEN = "the-bridges-token"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SECRET,
    "LUMINOUS_API_TOKEN": TOKEN,
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}
PENDING = {"received", "processing", "retrying"}


class Pair:
    """A sandbox and a bridge pointed at it; either restarted on its port and files."""

    def __init__(self, tmp: Path, sandbox_flags: tuple[str, ...], **overrides: Any) -> None:
        self.tmp = tmp
        self.sandbox = sandbox_process(tmp, free_port(), *sandbox_flags).start()
        config = bridge_config(tmp, self.sandbox.port, overrides)
        self.bridge = bridge_process(config, free_port(), ENV).start()

    def restart_sandbox(self, *flags: str) -> None:
        self.sandbox.kill()
        self.sandbox = sandbox_process(self.tmp, self.sandbox.port, *flags).start()

    def post(self, orders: list[dict[str, Any]]) -> list[httpx.Response]:
        def one(order: dict[str, Any]) -> httpx.Response:
            return sign_and_post(
                self.bridge.url, "shopify", body(order), SECRET, delivery_id=f"wh-{order['id']}"
            )

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, orders))

    def events(self) -> list[dict[str, Any]]:
        return admin_events(self.bridge.url, ADMIN)

    def all_created(self, count: int) -> bool:
        events = self.events()
        return len(events) == count and all(e["status"] == "created" for e in events)

    def readiness(self) -> httpx.Response:
        return httpx.get(self.bridge.url + "/readyz", timeout=10)

    def stop(self) -> None:
        self.bridge.stop()
        self.sandbox.kill()


@pytest.fixture
def pairs(tmp_path: Path) -> Iterator[list[Pair]]:
    started: list[Pair] = []
    yield started
    for pair in started:
        pair.stop()


def one_invoice_each(sandbox: Process, orders: list[dict[str, Any]]) -> None:
    invoices = sandbox_invoices(sandbox.url, token=TOKEN)
    by_po = Counter(invoice["customer_po_number"] for invoice in invoices)
    assert by_po == Counter(order["name"] for order in orders), by_po


@pytest.mark.slow
def test_while_luminous_is_down_events_wait_and_complete_by_themselves(
    tmp_path: Path, pairs: list[Pair]
) -> None:
    # Few attempts: the outage outlasts them, and only max_age may end an event.
    pair = Pair(tmp_path, (), retry={"max_attempts": 3, "max_delay": 0.5})
    pairs.append(pair)
    pair.sandbox.kill()
    orders = [shopify_order(71_000 + n) for n in range(5)]
    answers = pair.post(orders)
    assert [a.status_code for a in answers] == [202] * 5, [a.text for a in answers]

    tried_enough = wait_until(
        lambda: all(e["retries"] > 3 for e in pair.events()), timeout=20, interval=0.3
    )
    events = pair.events()
    assert tried_enough, events
    assert {e["status"] for e in events} <= PENDING, events
    assert all("could not be reached" in (e["reason"] or "") for e in events), events
    ready = pair.readiness()
    assert ready.status_code == 200, ready.text

    pair.sandbox = sandbox_process(tmp_path, pair.sandbox.port).start()
    assert wait_until(lambda: pair.all_created(5), timeout=20), pair.events()
    one_invoice_each(pair.sandbox, orders)


@pytest.mark.slow
def test_a_refused_token_pauses_work_until_a_probe_finds_it_accepted(
    tmp_path: Path, pairs: list[Pair]
) -> None:
    pair = Pair(tmp_path, ("--token", "another-token"))
    pairs.append(pair)
    orders = [shopify_order(72_000 + n) for n in range(3)]
    answers = pair.post(orders)
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]

    paused = wait_until(lambda: pair.readiness().status_code == 503, timeout=10)
    assert paused, pair.readiness().text
    problems = pair.readiness().json()["problems"]
    assert any("refuses the API token" in problem for problem in problems), problems
    assert TOKEN not in str(problems)
    metrics = httpx.get(pair.bridge.url + "/metrics").text
    assert "bridge_paused 1.0" in metrics
    events = pair.events()
    assert {e["status"] for e in events} <= PENDING and len(events) == 3, events

    pair.restart_sandbox("--token", TOKEN)
    # The worker probes every 15 s while paused; deferred events come back on their own.
    resumed = wait_until(lambda: pair.readiness().status_code == 200, timeout=25)
    assert resumed, pair.readiness().text
    assert wait_until(lambda: pair.all_created(3), timeout=25), pair.events()
    one_invoice_each(pair.sandbox, orders)


@pytest.mark.slow
def test_a_backlog_drains_at_the_configured_pace_without_429s(
    tmp_path: Path, pairs: list[Pair]
) -> None:
    rate = 5
    pair = Pair(tmp_path, (), luminous={"max_requests_per_second": rate})
    pairs.append(pair)
    orders = [shopify_order(73_000 + n) for n in range(30)]
    answers = pair.post(orders)
    assert all(a.is_success for a in answers), [a.text for a in answers]
    assert wait_until(lambda: pair.all_created(30), timeout=30), pair.events()

    requests = sandbox_stats(pair.sandbox.url)["requests"]
    times = sorted(request["at"] for request in requests)
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    span = times[-1] - times[0]
    pace = (len(times) - rate) / span  # after the bucket's initial burst of `rate`
    print(f"\n{len(times)} requests in {span:.1f}s: {pace:.2f}/s, busiest second {busiest}")
    assert Counter(r["status"] for r in requests)[429] == 0
    assert len(times) >= 30
    assert pace <= rate * 1.1, (pace, span, len(times))
    assert busiest <= 2 * rate, busiest  # a full bucket, then the steady rate
    one_invoice_each(pair.sandbox, orders)
