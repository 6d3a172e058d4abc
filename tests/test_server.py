"""The HTTP server's limits, in-process: connections on a stand-in transport, the real parser.

The figures the checks hold to come from HTTP itself (the head ends at its blank line) and
from the limits configured here, never from the protocol's own counters.
"""

from __future__ import annotations

import asyncio
import re
import resource
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import uvicorn

from bridge.config import ServerConfig
from bridge.errors import ConfigError
from bridge.server import (
    DEFAULT_MAX_CONNECTIONS,
    MAX_HEAD_BYTES,
    RESERVED_FILES,
    GuardedProtocol,
    Limits,
    protocol_class,
    server_limits,
)
from bridge.wire import loads
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

GET = b"GET /ping HTTP/1.1\r\nhost: bridge\r\n"


class Transport:
    """Just enough of an asyncio transport: what is written, whether it was closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.written = bytearray()
        self.closed = False
        self.protocol: asyncio.Protocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            self.loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def status(self) -> int | None:
        """The status of the first answer written, if any."""
        if not self.written:
            return None
        return int(bytes(self.written).split(b" ", 2)[1])

    def json(self) -> Any:
        return loads(bytes(self.written).partition(b"\r\n\r\n")[2])


class App:
    """An ASGI app that reads the whole body, then answers 200 with its size (or waits)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.requests.append((scope["path"], size))
        await self.hold.wait()
        content = str(size).encode()
        headers = [(b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class Server:
    """One protocol class (one lobby) and the connections made to it."""

    def __init__(self, limits: Limits) -> None:
        self.app = App()
        self.config = uvicorn.Config(self.app, lifespan="off", log_config=None)
        self.config.load()
        self.state = uvicorn.server.ServerState()
        self.protocol = protocol_class(limits)
        self.loop = asyncio.get_running_loop()

    def connect(self) -> tuple[GuardedProtocol, Transport]:
        connection = self.protocol(config=self.config, server_state=self.state, app_state={})
        transport = Transport(self.loop)
        transport.protocol = connection
        connection.connection_made(transport)  # type: ignore[arg-type]
        return connection, transport


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def limits() -> Limits:
    return Limits(header_timeout=5.0, max_connections=3)


class FeedSpy:
    """Stands in for the connection's parser and records each piece fed to it."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed: list[int] = []

    def feed_data(self, data: bytes) -> None:
        self.fed.append(len(data))
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_head_in_small_pieces_reaches_the_parser_in_few_feeds(limits: Limits) -> None:
    server = Server(limits)
    connection, transport = server.connect()
    spy = FeedSpy(connection.parser)
    connection.parser = spy  # type: ignore[assignment]
    head = GET + b"x-pad: " + b"a" * 60_000 + b"\r\n\r\n"
    for piece in pieces(head, 64):  # 940 reads
        connection.data_received(piece)
    await settle()
    assert transport.status == 200 and server.app.requests == [("/ping", 0)]
    # The parser copies what it holds of a header on every feed: the sum of what it held
    # at each feed is the copying: a few times the head, not 940 times half of it.
    held = [sum(spy.fed[: index + 1]) for index in range(len(spy.fed))]
    assert sum(spy.fed) == len(head)
    assert sum(held) <= 3 * len(head), spy.fed
    assert len(spy.fed) <= 16, spy.fed


async def test_a_head_over_64_kib_is_refused_431_and_closed(limits: Limits) -> None:
    server = Server(limits)
    connection, transport = server.connect()
    spy = FeedSpy(connection.parser)
    connection.parser = spy  # type: ignore[assignment]
    connection.data_received(GET + b"x-pad: ")
    for _ in range(10):  # 640 KiB of one header value, as the endless-header attack sends
        connection.data_received(b"a" * 65536)
    await settle()
    assert transport.status == 431
    assert transport.json()["error"] == "headers_too_large"
    assert transport.closed and not server.app.requests
    assert sum(spy.fed) <= MAX_HEAD_BYTES  # never more than the limit reached the parser


async def test_the_limit_counts_the_head_only(limits: Limits) -> None:
    server = Server(limits)
    pad = b"x-pad: " + b"a" * (MAX_HEAD_BYTES - len(GET) - 60) + b"\r\n"
    body = b"{" + b" " * 300_000 + b"}"
    head = b"POST /big HTTP/1.1\r\nhost: bridge\r\n" + pad
    head += f"content-length: {len(body)}\r\n\r\n".encode()
    assert len(head) <= MAX_HEAD_BYTES < len(head + body)
    connection, transport = server.connect()
    connection.data_received(head + body)  # a head near the limit, a body far past it: one read
    await settle()
    assert transport.status == 200 and ("/big", len(body)) in server.app.requests


async def test_one_byte_past_the_limit_is_refused(limits: Limits) -> None:
    server = Server(limits)
    line = b"x-pad: " + b"a" * (MAX_HEAD_BYTES - len(GET) - 2 - 9) + b"\r\n"
    exact = GET + line + b"\r\n"
    assert len(exact) == MAX_HEAD_BYTES
    connection, transport = server.connect()
    connection.data_received(exact)
    await settle()
    assert transport.status == 200
    over = GET + b"x" + line + b"\r\n"
    connection, transport = server.connect()
    connection.data_received(over)
    await settle()
    assert transport.status == 431


async def test_a_head_whose_end_is_split_across_reads_is_served_at_once(limits: Limits) -> None:
    server = Server(limits)
    connection, transport = server.connect()
    connection.data_received(GET + b"x-pad: " + b"a" * 5000)  # fed: the first read of a head
    connection.data_received(b"\r\n\r")  # held: smaller than what the parser has seen
    await settle()
    assert transport.status is None
    connection.data_received(b"\n")
    await settle()
    assert transport.status == 200


async def test_a_head_not_complete_in_time_gets_408() -> None:
    server = Server(Limits(header_timeout=0.05, max_connections=10))
    slow, slow_transport = server.connect()
    slow.data_received(GET)
    _, silent_transport = server.connect()
    quick, quick_transport = server.connect()
    quick.data_received(GET + b"\r\n")
    await asyncio.sleep(0.2)
    assert slow_transport.status == 408 and slow_transport.closed
    assert slow_transport.json()["error"] == "timeout"
    assert silent_transport.status == 408 and silent_transport.closed
    assert quick_transport.status == 200  # answered first; closed later, idle past the timeout


async def test_a_slow_answer_is_not_cut_off_by_the_head_timeout() -> None:
    server = Server(Limits(header_timeout=0.05, max_connections=10))
    server.app.hold.clear()
    connection, transport = server.connect()
    connection.data_received(GET + b"\r\n")
    await asyncio.sleep(0.2)  # the app takes longer than a head may
    assert transport.status is None and not transport.closed
    server.app.hold.set()
    await settle()
    assert transport.status == 200
    # Kept alive, the connection waits for its next head, and that wait is timed too.
    transport.written.clear()
    await asyncio.sleep(0.2)
    assert transport.status == 408 and transport.closed


async def test_at_the_limit_the_longest_waiting_head_makes_room(limits: Limits) -> None:
    server = Server(limits)
    first, first_transport = server.connect()
    first.data_received(GET)
    second, second_transport = server.connect()
    second.data_received(GET)
    third, third_transport = server.connect()
    third.data_received(GET)
    newcomer, newcomer_transport = server.connect()  # the fourth of three
    await settle()
    assert first_transport.status == 503 and first_transport.closed
    assert first_transport.json()["error"] == "unavailable"
    assert not (second_transport.closed or third_transport.closed or newcomer_transport.closed)
    newcomer.data_received(GET + b"\r\n")
    await settle()
    assert newcomer_transport.status == 200


async def test_an_idle_connection_is_closed_quietly_to_make_room(limits: Limits) -> None:
    server = Server(limits)
    _, idle_transport = server.connect()  # sent nothing yet
    busy, _ = server.connect()
    busy.data_received(GET)
    server.connect()
    server.connect()
    await settle()
    assert idle_transport.closed and idle_transport.status is None


async def test_with_every_connection_busy_a_newcomer_is_refused(limits: Limits) -> None:
    server = Server(limits)
    server.app.hold.clear()
    transports = []
    for _ in range(3):
        connection, transport = server.connect()
        connection.data_received(GET + b"\r\n")  # complete: the app is working on it
        transports.append(transport)
    await settle()
    _, newcomer = server.connect()
    await settle()
    assert newcomer.status == 503 and newcomer.closed
    assert b"retry-after: 1" in newcomer.written
    assert not any(transport.closed for transport in transports)
    server.app.hold.set()
    await settle()
    assert [transport.status for transport in transports] == [200, 200, 200]


async def test_servers_do_not_share_a_lobby(limits: Limits) -> None:
    one, other = Server(limits), Server(limits)
    for _ in range(3):
        one.connect()[0].data_received(GET)
    _, transport = other.connect()
    await settle()
    assert not transport.closed


def test_the_default_connection_limit_leaves_room_for_the_bridges_own_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hard = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, hard))
    limits = server_limits(ServerConfig())
    assert limits.max_connections == 1024 - RESERVED_FILES
    assert limits.header_timeout == 10.0 and limits.max_head_bytes == 65536
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (65536, hard))
    assert server_limits(ServerConfig()).max_connections == DEFAULT_MAX_CONNECTIONS
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (hard, hard))  # unlimited
    assert server_limits(ServerConfig()).max_connections == DEFAULT_MAX_CONNECTIONS
    assert server_limits(ServerConfig(max_connections=50_000)).max_connections == 50_000


def test_a_configured_connection_limit_raises_the_soft_file_limit_or_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda kind, limits: raised.append(limits))
    assert server_limits(ServerConfig(max_connections=2000)).max_connections == 2000
    assert raised == [(2000 + RESERVED_FILES, 4096)]
    assert server_limits(ServerConfig(max_connections=500)).max_connections == 500
    assert len(raised) == 1  # it fitted: nothing raised
    with pytest.raises(ConfigError, match=r"server\.max_connections"):
        server_limits(ServerConfig(max_connections=4000))


@pytest.mark.parametrize("name", ["uvicorn", "httptools"])
def test_the_installed_server_is_the_release_the_limits_were_tested_with(name: str) -> None:
    # The limits reach into uvicorn's httptools protocol; another release needs these tests
    # run against it before its pin in pyproject.toml moves.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = dict(
        re.fullmatch(r"([a-z]+)(?:\[\w+\])?==([\w.]+)", spec).groups()  # type: ignore[union-attr]
        for spec in project["project"]["dependencies"]
        if "==" in spec
    )
    assert version(name) == pins[name]
