"""A reverse proxy for late-commit tests: it holds the first invoice creations, then lands them.

Put in front of a sandbox, `HoldingProxy` forwards every request as it comes, except the first
`hold_count` `POST …/invoices`: those it keeps for `hold_seconds`, then forwards even if the
client has given up meanwhile, so the invoice is created after the client's timeout, as a slow
Luminous can do. It records every request, which it held, and when each was forwarded.
Setting `refuse_next = N` answers the next N such POSTs 502 without forwarding them, as a
gateway in front of Luminous does when Luminous never saw the request.

    with HoldingProxy(sandbox.url, hold_count=1, hold_seconds=20) as proxy:
        ...  # point the bridge at proxy.url + "/external/api/v1"
        [held] = proxy.wait_for_held(1, timeout=30)
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import httpx

# Never passed on: headers of one connection, not of the message, and the length and host,
# which each leg sets for itself.
NOT_PASSED_ON = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
# Longer than any fault the sandbox injects (it stalls answers for 60 s).
UPSTREAM_TIMEOUT = 120.0


class BadRequest(Exception):
    """A request this proxy cannot read; answered 400 and the connection closed."""


@dataclass
class Exchange:
    """One request through the proxy and what became of it; times are Unix seconds."""

    connection: int  # the client connection that carried it, counted from 1
    method: str
    target: str  # path and query, as the client sent them
    body: bytes
    received_at: float  # the whole request had arrived
    held: bool
    refused: bool = False  # answered 502 here, never forwarded
    forwarded_at: float | None = None  # sent on to the upstream
    answered_at: float | None = None  # the upstream's whole answer was in
    status: int | None = None  # the upstream's; None while pending or when unreachable
    error: str | None = None  # why the upstream could not be reached
    client_gone: bool = False  # the client had closed its connection by the time of the answer


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str:
        return ", ".join(value for key, value in self.headers if key.lower() == name)

    @property
    def keep_alive(self) -> bool:
        tokens = {token.strip().lower() for token in self.header("connection").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


class HoldingProxy:
    """An HTTP/1.1 reverse proxy to `upstream` on a loopback port, served from its own thread.

    The first `hold_count` POSTs whose path ends with `hold_path` are held `hold_seconds`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        hold_count: int = 1,
        hold_seconds: float = 20.0,
        hold_path: str = "/invoices",
        port: int = 0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_count = hold_count
        self.hold_seconds = hold_seconds
        self.hold_path = hold_path
        self.port = port  # 0: a free one, chosen by `start`
        self.refuse_next = 0  # the next POSTs to `hold_path` to answer 502 unforwarded
        self._exchanges: list[Exchange] = []
        self._changed = threading.Condition()  # guards the exchanges; notified on each answer
        self._connections = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HoldingProxy:
        """Listen and serve in a background thread; returns once connections are accepted."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen()
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(sock),), name="holding-proxy", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the holding proxy did not start in 10 s")
        return self

    def stop(self) -> None:
        """Close every connection and drop what is still held or in flight."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> HoldingProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def exchanges(self) -> list[Exchange]:
        """A snapshot of every request so far, in the order they arrived."""
        with self._changed:
            return [dataclasses.replace(exchange) for exchange in self._exchanges]

    @property
    def held(self) -> list[Exchange]:
        """A snapshot of the requests that were held."""
        return [exchange for exchange in self.exchanges if exchange.held]

    def wait_for_held(self, count: int, timeout: float) -> list[Exchange]:
        """The held requests once `count` of them have their upstream's answer (or failed to
        reach it); raise `TimeoutError` after `timeout` seconds."""

        def done() -> bool:
            landed = [e for e in self._exchanges if e.held and e.answered_at is not None]
            return len(landed) >= count

        with self._changed:
            if not self._changed.wait_for(done, timeout):
                raise TimeoutError(f"{count} held request(s) not forwarded in {timeout} s")
        return self.held

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT) as client:
            server = await asyncio.start_server(
                lambda reader, writer: self._connection(reader, writer, client), sock=sock
            )
            self._ready.set()
            await self._stopping.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _track(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: httpx.AsyncClient
    ) -> None:
        current = asyncio.current_task()
        assert current is not None
        self._track(current)
        number = next(self._connections)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except BadRequest as exc:
                    writer.write(_plain(400, "Bad Request", f"{exc}\n", close=True))
                    await writer.drain()
                    return
                if request is None:
                    return
                exchange = self._record(number, request)
                # Its own task, so a held request is still forwarded when its client is gone.
                forwarding = asyncio.create_task(self._forward(client, request, exchange, reader))
                self._track(forwarding)
                answer = await asyncio.shield(forwarding)
                if exchange.client_gone:
                    return
                writer.write(answer if request.keep_alive else _close_after(answer))
                await writer.drain()
                if not request.keep_alive:
                    return
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            # Stopping. Python 3.11's stream server logs a handler that ends cancelled.
            pass
        finally:
            writer.close()

    def _record(self, connection: int, request: _Request) -> Exchange:
        path = urlsplit(request.target).path.rstrip("/")
        with self._changed:
            held_so_far = sum(exchange.held for exchange in self._exchanges)
            matches = request.method == "POST" and path.endswith(self.hold_path)
            refused = matches and self.refuse_next > 0
            self.refuse_next -= refused
            exchange = Exchange(
                connection=connection,
                method=request.method,
                target=request.target,
                body=request.body,
                received_at=time.time(),
                held=matches and not refused and held_so_far < self.hold_count,
                refused=refused,
            )
            self._exchanges.append(exchange)
        return exchange

    async def _forward(
        self,
        client: httpx.AsyncClient,
        request: _Request,
        exchange: Exchange,
        reader: asyncio.StreamReader,
    ) -> bytes:
        """The upstream's answer to `request` as bytes for the client, after any hold."""
        if exchange.refused:
            self._answered(exchange, reader, status=502)
            return _plain(502, "Bad Gateway", "upstream refused by the proxy\n")
        if exchange.held:
            await asyncio.sleep(self.hold_seconds)
        headers = [(k, v) for k, v in request.headers if k.lower() not in NOT_PASSED_ON]
        outgoing = client.build_request(
            request.method, self.upstream + request.target, headers=headers, content=request.body
        )
        with self._changed:
            exchange.forwarded_at = time.time()
        try:
            response = await client.send(outgoing, stream=True)
            try:
                content = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._answered(exchange, reader, error=error)
            return _plain(502, "Bad Gateway", f"upstream unreachable: {error}\n")
        self._answered(exchange, reader, status=response.status_code)
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in NOT_PASSED_ON]
        return _head(response.status_code, response.reason_phrase, kept, len(content)) + content

    def _answered(
        self,
        exchange: Exchange,
        reader: asyncio.StreamReader,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        with self._changed:
            exchange.answered_at, exchange.status, exchange.error = time.time(), status, error
            # A client that closed its side (clients time out so) has given up waiting.
            exchange.client_gone = reader.at_eof() or reader.exception() is not None
            self._changed.notify_all()


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on a connection; None when the client closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise BadRequest("the connection closed in the middle of a request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    start, *lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    try:
        method, target, version = start.split(" ")
        headers = [(key.strip(), value.strip()) for key, value in (h.split(":", 1) for h in lines)]
    except ValueError as exc:
        raise BadRequest(f"malformed request head: {start[:100]!r}") from exc
    request = _Request(method, target, version, headers)
    try:
        if "chunked" in request.header("transfer-encoding").lower():
            request.body = await _read_chunked(reader)
        else:
            request.body = await reader.readexactly(int(request.header("content-length") or 0))
    except (ValueError, asyncio.IncompleteReadError) as exc:
        raise BadRequest(f"unreadable request body: {exc}") from exc
    return request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(chunks)


def _head(status: int, reason: str, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    return "\r\n".join([*lines, f"content-length: {length}", "", ""]).encode("latin-1")


def _close_after(answer: bytes) -> bytes:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head + b"\r\nconnection: close\r\n\r\n" + body


def _plain(status: int, reason: str, text: str, *, close: bool = False) -> bytes:
    content = text.encode()
    answer = _head(status, reason, [("content-type", "text/plain; charset=utf-8")], len(content))
    answer += content
    return _close_after(answer) if close else answer
