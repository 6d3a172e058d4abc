"""The front door under attack: each finding of the review, against a real `bridge serve
--sandbox` on a free port, while valid deliveries must still be answered within a second.

Figures (answer times, resident memory) are printed; `pytest -s` shows them.
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.server import RESERVED_FILES
from bridge.wire import loads
from tests.attacks import (
    EndlessHeader,
    HalfRequests,
    LargeBodies,
    MemoryWatch,
    Timed,
    deliveries,
    number_heavy_order,
)
from tests.harness import Process, free_port, wait_until, write_config

SECRET = "front-door-secret"
ANSWER_WITHIN = 1.0  # seconds, for a valid delivery while under attack
MAX_RSS_MIB = 150
OPEN_FILES = 1024  # the bridge's soft RLIMIT_NOFILE in the crowd test
CROWD = 1100  # half-sent requests, more than OPEN_FILES
MAX_BODY = 1_048_576  # the default server.max_body_bytes


def start_bridge(folder: Path, header_timeout: float, open_files: int | None = None) -> Process:
    config = write_config(
        folder / "bridge.toml",
        {
            "server": {"header_timeout": header_timeout},
            "store": {"url": f"sqlite:///{folder / 'bridge.db'}", "durability": "normal"},
            "luminous": {"max_requests_per_second": 0},
        },
    )
    port = free_port()
    args = ["serve", "--sandbox", "--config", str(config), "--port", str(port)]
    env = {"SHOPIFY_WEBHOOK_SECRET": SECRET}
    log = folder / "bridge.log"
    return Process(args, port, log, env=env, cwd=folder, open_files=open_files).start()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_bridge(tmp_path_factory.mktemp("front-door"), header_timeout=1.0)
    yield process
    process.stop()
    assert "Traceback" not in process.output(), process.output()[-3000:]


def check_answered_in_time(timed: list[Timed], what: str) -> None:
    times = [answer.seconds for answer in timed]
    print(
        f"\n{what}: {len(timed)} deliveries, answers {sorted({a.status for a in timed})}, "
        f"p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    assert all(answer.status == 201 for answer in timed), timed
    assert max(times) < ANSWER_WITHIN, timed


def test_an_endless_header_delays_no_delivery(bridge: Process) -> None:
    assert bridge.proc is not None
    with MemoryWatch(bridge.proc.pid) as memory, EndlessHeader(bridge.port, clients=2) as attack:
        time.sleep(0.5)
        timed = deliveries(bridge.url, SECRET, 16, pause=0.25, timeout=3)
    check_answered_in_time(timed, "endless header")
    print(
        f"RSS {memory.samples[0]:.0f} → peak {memory.peak:.0f} MiB; "
        f"{len(attack.answers)} attacking connections refused"
    )
    assert memory.peak < MAX_RSS_MIB
    assert attack.refused_with(431) >= 1, attack.answers[:5]
    assert attack.refused_with(431) == len([a for a in attack.answers if a]), attack.answers[:5]


def test_a_head_near_the_limit_is_served_and_one_past_it_gets_431(bridge: Process) -> None:
    near = httpx.get(bridge.url + "/healthz", headers={"x-pad": "a" * 64_000}, timeout=5)
    assert near.status_code == 200, near.text
    past = httpx.get(bridge.url + "/healthz", headers={"x-pad": "a" * 65_536}, timeout=5)
    assert past.status_code == 431
    assert loads(past.content)["error"] == "headers_too_large"


def test_a_head_that_never_ends_gets_408_and_is_closed(bridge: Process) -> None:
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/shopify HTTP/1.1\r\nhost: bridge\r\n")
        started = time.monotonic()
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        waited = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert loads(received.partition(b"\r\n\r\n")[2])["error"] == "timeout"
    assert 0.9 <= waited < 3.0  # header_timeout is 1 s


@pytest.fixture
def room_for_a_crowd() -> Iterator[None]:
    """This process opens CROWD sockets and more: make sure its own file limit allows it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CROWD + 256
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard file limit ({hard}) is too low for {CROWD} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_half_sent_requests_do_not_lock_out_a_delivery(
    tmp_path: Path, room_for_a_crowd: None
) -> None:
    # A head timeout far beyond the test: the connection limit alone must keep the door open.
    bridge = start_bridge(tmp_path, header_timeout=60.0, open_files=OPEN_FILES)
    assert bridge.proc is not None
    pid = bridge.proc.pid
    held = OPEN_FILES - RESERVED_FILES
    try:
        with MemoryWatch(pid) as memory, HalfRequests(bridge.port, CROWD) as crowd:
            # Every one accepted: those past the limit made the oldest heads give way.
            assert wait_until(lambda: crowd.closed >= CROWD - held, timeout=10), crowd
            files = len(os.listdir(f"/proc/{pid}/fd"))
            timed = deliveries(bridge.url, SECRET, 8, pause=0.25, timeout=3)
        check_answered_in_time(timed, f"{CROWD} half-sent requests")
        print(
            f"bridge files open {files} (limit {OPEN_FILES}); crowd opened {crowd.opened}, "
            f"dropped {crowd.closed}; RSS peak {memory.peak:.0f} MiB"
        )
        assert files <= OPEN_FILES
        assert memory.peak < MAX_RSS_MIB
        assert bridge.proc.poll() is None
    finally:
        bridge.stop()
    assert "Traceback" not in bridge.output(), bridge.output()[-3000:]


@pytest.mark.parametrize("strict", [False, True], ids=["fast parse", "strict parse"])
def test_large_number_heavy_bodies_delay_no_other_sender(bridge: Process, strict: bool) -> None:
    # An escaped colon sends the body past the C parser to the one with Python hooks.
    assert len(number_heavy_order(MAX_BODY, strict=strict)) <= MAX_BODY
    assert bridge.proc is not None
    with (
        MemoryWatch(bridge.proc.pid) as memory,
        LargeBodies(bridge.url, SECRET, MAX_BODY, strict=strict) as sender,
    ):
        assert wait_until(lambda: len(sender.statuses) >= 1, timeout=30), "no large body answered"
        timed = deliveries(bridge.url, SECRET, 16, pause=0.1, timeout=3)
    check_answered_in_time(timed, f"{len(sender.statuses)} large bodies meanwhile")
    print(f"RSS {memory.samples[0]:.0f} → peak {memory.peak:.0f} MiB")
    assert memory.peak < MAX_RSS_MIB
    assert len(sender.statuses) >= 3, sender.statuses
    assert set(sender.statuses) <= {201, 202}, sender.statuses
