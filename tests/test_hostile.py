"""The hostile-input corpus against a real `bridge serve --sandbox` on a real socket.

Every answer must be the documented one, as JSON `{"error", "message"}` or a documented 2xx
body; none may be a 5xx or hang. Afterwards the bridge must still be alive, every delivery
answered 2xx must be recorded (and nothing else), and its log must hold no traceback.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bridge.wire import loads
from tests.harness import Process, free_port
from tests.hostile_cases import (
    ADMIN_TOKEN,
    CASES,
    RAW_CASES,
    Case,
    Expect,
    RawCase,
    bridge_config,
    bridge_env,
    request_bytes,
)

ANSWER_TIMEOUT = 10.0  # far beyond any documented wait: past it, the request hung
TRICKLE_INTERVAL = 0.25
LONGEST_MESSAGE = 300  # a message echoes what was wrong, never a whole hostile input


@dataclass
class Answer:
    """One HTTP answer read off the socket; status 0 = closed with no answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def describe(self) -> str:
        return f"HTTP {self.status} {self.headers} {self.body[:400]!r}"


@dataclass
class Corpus:
    """The bridge under attack and what it has answered so far."""

    bridge: Process
    answered: dict[int, str]  # event_id → status of every 2xx answer that named an event
    refused_as_strict: int = 0  # 422 answers: recorded events whose answer names no ID

    def admin(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.get(self.bridge.url + path, headers=headers, timeout=ANSWER_TIMEOUT)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    folder = tmp_path_factory.mktemp("hostile")
    config = folder / "bridge.toml"
    config.write_text(bridge_config(folder / "bridge.db"))
    port = free_port()
    args = ["serve", "--sandbox", "--config", str(config), "--port", str(port)]
    bridge = Process(args, port, folder / "bridge.log", env=bridge_env(), cwd=folder).start()
    yield Corpus(bridge, {})
    bridge.stop()


# -- a client that sends exactly the bytes it is given --------------------------------------


def _parse(data: bytes, *, head: bool) -> Answer | None:
    """The first complete non-1xx answer in `data`, or None while it is incomplete."""
    while True:
        top, found, rest = data.partition(b"\r\n\r\n")
        if not found:
            return None
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for header in lines[1:]:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            data = rest
            continue
        length = 0 if head else int(headers.get("content-length", "0"))
        if len(rest) < length:
            return None
        return Answer(status, headers, rest[:length])


def _send(sock: socket.socket, data: bytes, then: str, trickle: bytes) -> None:
    try:
        sock.sendall(data)
        if then == "half-close":
            sock.shutdown(socket.SHUT_WR)
        for byte in trickle:
            readable, _, _ = select.select([sock], [], [], TRICKLE_INTERVAL)
            if readable:  # answered: stop feeding it
                return
            sock.sendall(bytes([byte]))
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the body ended: the answer may still be readable


def exchange(
    port: int, data: bytes, *, then: str = "wait", trickle: bytes = b"", head: bool = False
) -> Answer:
    """Send `data`, then wait, hang up or trickle `trickle`; the answer, read by a deadline."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) as sock:
        _send(sock, data, then, trickle)
        while (answer := _parse(received, head=head)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no answer within {ANSWER_TIMEOUT} s: {received[:300]!r}")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except TimeoutError:
                continue
            if not chunk:
                return Answer(0, {}, received)
            received += chunk
        return answer


# -- checks ------------------------------------------------------------------------------


def check_answer(answer: Answer, expect: Expect, corpus: Corpus) -> None:
    """The answer is the expected one, JSON, says what is wrong; 2xx events are noted."""
    assert answer.status < 500, answer.describe()
    assert answer.status == expect.status, answer.describe()
    if expect.code is None and not answer.body:
        return
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.describe()
    body: dict[str, Any] = loads(answer.body)
    if answer.status >= 400:
        assert {"error", "message"} <= body.keys(), body
        assert body["error"] == expect.code, body
        assert len(body["message"]) <= LONGEST_MESSAGE, body
        text = " ".join(
            [body["message"]] + [f"{d['field']} {d['problem']}" for d in body.get("details") or []]
        )
        if answer.status == 422:
            assert body["details"], body
            corpus.refused_as_strict += 1
    else:
        if expect.code is not None:
            assert body["status"] == expect.code, body
        if "event_id" in body:
            corpus.answered[body["event_id"]] = body["status"]
        text = str(body.get("reason") or "")
        assert body.get("duplicate", False) is expect.duplicate, body
        if body.get("status") == "created":
            assert isinstance(body["invoice_id"], int), body
    for word in expect.says:
        assert word.casefold() in text.casefold(), (word, body)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_corpus(corpus: Corpus, case: Case) -> None:
    head = case.method == "HEAD"
    data = request_bytes(case)
    for _ in range(case.sends - 1):
        earlier = exchange(corpus.bridge.port, data, head=head)
        assert 200 <= earlier.status < 300, earlier.describe()
        check_answer(earlier, Expect(earlier.status, None), corpus)
        if case.resign:
            data = request_bytes(case)
    check_answer(exchange(corpus.bridge.port, data, head=head), case.expect, corpus)


@pytest.mark.parametrize("case", RAW_CASES, ids=[case.id for case in RAW_CASES])
def test_dishonest_framing(corpus: Corpus, case: RawCase) -> None:
    answer = exchange(corpus.bridge.port, case.head(), then=case.then, trickle=case.trickle)
    assert answer.status in case.statuses, answer.describe()
    if answer.status == 0:
        return
    from_parser = not answer.headers.get("content-type", "").startswith("application/json")
    if from_parser:
        # The HTTP parser refused the framing before the bridge saw a request.
        assert case.parser_may_refuse and answer.status == 400, answer.describe()
        return
    check_answer(answer, Expect(answer.status, case.code), corpus)


def test_the_bridge_survives_and_recorded_exactly_what_it_answered(corpus: Corpus) -> None:
    bridge = corpus.bridge
    assert bridge.proc is not None and bridge.proc.poll() is None, bridge.output()
    assert httpx.get(bridge.url + "/healthz", timeout=ANSWER_TIMEOUT).status_code == 200
    valid = next(case for case in CASES if case.id == "signature:shopify:valid")
    check_answer(exchange(bridge.port, request_bytes(valid)), valid.expect, corpus)
    for event_id, status in corpus.answered.items():
        event = corpus.admin(f"/events/{event_id}")
        assert event.status_code == 200, (event_id, event.text)
        assert loads(event.content)["status"] == status, event.text
    listed = loads(corpus.admin("/events?limit=1000").content)["data"]
    # Refused requests leave no trace: each event was answered 2xx, repeats one that was,
    # or was answered 422 by the strict source.
    unnamed = [e for e in listed if (e["duplicate_of"] or e["event_id"]) not in corpus.answered]
    assert all(e["source"] == "partner" and e["status"] == "rejected" for e in unnamed), unnamed
    assert len(unnamed) == corpus.refused_as_strict
    log = bridge.output()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-4000:]


@pytest.mark.parametrize("method,path", [("GET", "/events/{}"), ("POST", "/events/{}/replay")])
def test_event_ids_past_64_bits_are_unknown_events(corpus: Corpus, method: str, path: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = corpus.bridge.url + path.format(2**64)
    answer = httpx.request(method, url, headers=headers, timeout=ANSWER_TIMEOUT)
    assert answer.status_code == 404, answer.text
