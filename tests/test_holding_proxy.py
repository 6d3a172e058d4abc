"""The holding proxy over real sockets, in front of a sandbox running as its own process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.wire import loads
from tests.harness import Process, free_port, sandbox_invoices, wait_until
from tests.holding_proxy import HoldingProxy

HOLD = 1.0
INVOICES = "/external/api/v1/invoices"
AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    tmp = tmp_path_factory.mktemp("holding")
    port = free_port()
    process = Process(["sandbox", "--port", str(port), "--auto-products"], port, tmp / "log")
    yield process.start()
    process.stop()


def invoice(po_number: str) -> dict[str, Any]:
    return {
        "company_id": 1,
        "order_date": "2026-11-20",
        "payment_terms": "Due on receipt",
        "customer_po_number": po_number,
        "items": [{"quantity": 2, "unit_price": 4.5, "sku": "HOLD-1"}],
    }


def landed(sandbox: Process, po_number: str) -> list[dict[str, Any]]:
    return [i for i in sandbox_invoices(sandbox.url) if i["customer_po_number"] == po_number]


def post(url: str, po_number: str, timeout: float = 10) -> httpx.Response:
    return httpx.post(url + INVOICES, json=invoice(po_number), headers=AUTH, timeout=timeout)


def test_a_held_invoice_lands_after_the_hold_even_when_the_client_gave_up(
    sandbox: Process,
) -> None:
    with HoldingProxy(sandbox.url, hold_count=1, hold_seconds=HOLD) as proxy:
        with pytest.raises(httpx.ReadTimeout):
            post(proxy.url, "#GAVE-UP", timeout=HOLD / 4)
        assert landed(sandbox, "#GAVE-UP") == []
        [held] = proxy.wait_for_held(1, timeout=HOLD + 10)
    assert held.method == "POST" and held.target == INVOICES
    assert json.loads(held.body)["customer_po_number"] == "#GAVE-UP"
    assert held.forwarded_at is not None and held.answered_at is not None
    assert held.forwarded_at - held.received_at >= HOLD
    assert held.status == 201 and held.client_gone
    [created] = landed(sandbox, "#GAVE-UP")
    assert created["total"] == 9


def test_only_the_first_n_creations_are_held_and_all_else_passes_straight_through(
    sandbox: Process,
) -> None:
    with HoldingProxy(sandbox.url, hold_count=2, hold_seconds=HOLD) as proxy:
        answers: dict[str, httpx.Response] = {}
        waiting = [
            threading.Thread(target=lambda po=po: answers.update({po: post(proxy.url, po)}))
            for po in ("#HELD-1", "#HELD-2")
        ]
        for thread in waiting:
            thread.start()
        assert wait_until(lambda: len(proxy.held) == 2, timeout=5, interval=0.01)
        started = time.monotonic()
        third = post(proxy.url, "#STRAIGHT")
        listed = httpx.get(proxy.url + INVOICES, headers=AUTH, timeout=10)
        passed_in = time.monotonic() - started
        assert third.status_code == 201 and listed.status_code == 200
        assert passed_in < HOLD / 2, passed_in
        # The held two are not in the sandbox yet; the one after them is.
        assert landed(sandbox, "#STRAIGHT") and not landed(sandbox, "#HELD-1")
        for thread in waiting:
            thread.join()
        exchanges = proxy.exchanges
    assert [answers[po].status_code for po in ("#HELD-1", "#HELD-2")] == [201, 201]
    for po in ("#HELD-1", "#HELD-2"):
        assert loads(answers[po].content)["data"]["id"] == landed(sandbox, po)[0]["id"]
    assert [(e.method, e.held) for e in exchanges] == [
        ("POST", True),
        ("POST", True),
        ("POST", False),
        ("GET", False),
    ]
    assert all(not e.client_gone for e in exchanges)


def test_one_kept_alive_connection_carries_held_and_plain_requests(sandbox: Process) -> None:
    with (
        HoldingProxy(sandbox.url, hold_count=1, hold_seconds=HOLD / 2) as proxy,
        httpx.Client(base_url=proxy.url, headers=AUTH, timeout=10) as client,
    ):
        before = client.get(INVOICES, params={"customer_po_number[eq]": "#KEPT"})
        created = client.post(INVOICES, json=invoice("#KEPT"))
        after = client.get(INVOICES, params={"customer_po_number[eq]": "#KEPT"})
        exchanges = proxy.exchanges
    assert before.json()["data"] == [] and created.status_code == 201
    assert [i["id"] for i in after.json()["data"]] == [created.json()["data"]["id"]]
    assert [e.held for e in exchanges] == [False, True, False]
    assert len({e.connection for e in exchanges}) == 1
    assert exchanges[0].target == INVOICES + "?customer_po_number%5Beq%5D=%23KEPT"


def raw_exchange(port: int, request: bytes) -> bytes:
    """Everything the proxy writes back to `request` on a fresh connection until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_chunked_body_is_forwarded_and_connection_close_is_honoured(sandbox: Process) -> None:
    payload = json.dumps(invoice("#CHUNKED")).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:10], payload[10:]))
    request = (
        b"POST " + INVOICES.encode() + b" HTTP/1.1\r\nHost: proxy\r\n"
        b"Authorization: Bearer t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    with HoldingProxy(sandbox.url, hold_count=0) as proxy:
        answer = raw_exchange(proxy.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 ")
    assert b"connection: close" in head.lower()
    assert loads(body)["data"]["customer_po_number"] == "#CHUNKED"


def test_bad_requests_and_an_unreachable_upstream_get_plain_answers() -> None:
    with HoldingProxy(f"http://127.0.0.1:{free_port()}", hold_count=0) as proxy:
        garbled = raw_exchange(proxy.port, b"NONSENSE\r\n\r\n")
        unreachable = httpx.get(proxy.url + "/anything", timeout=10)
        [exchange] = proxy.exchanges
    assert garbled.startswith(b"HTTP/1.1 400 ") and b"malformed request head" in garbled
    assert unreachable.status_code == 502 and "upstream unreachable" in unreachable.text
    assert exchange.status is None and exchange.error and "ConnectError" in exchange.error
