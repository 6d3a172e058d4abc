"""The HTTP server in front of the app: uvicorn with httptools, and limits on request heads.

httptools grows a header value by concatenation each time more of it arrives, so a head
fed in many pieces costs quadratic time and, without a limit, unbounded memory. Here a
head is held back until it is complete or has doubled since the parser last saw it, which
keeps the parser's copying linear, and it is refused with 431 past `MAX_HEAD_BYTES`. A head
that has not arrived within `header_timeout` gets 408. At `max_connections`, the connection
that has waited longest for a head is dropped to let a new one in.

This subclasses uvicorn's `HttpToolsProtocol`; pyproject.toml pins the uvicorn and
httptools releases it is tested with.
"""

from __future__ import annotations

import asyncio
import gc
import http
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.config import ServerConfig
from bridge.errors import ConfigError

log = logging.getLogger("bridge.server")

MAX_HEAD_BYTES = 65_536
DEFAULT_MAX_CONNECTIONS = 1000
# Descriptors kept back from connections: the store, the Luminous client's pool, the
# PostgreSQL pool, logs and the event loop's own.
RESERVED_FILES = 128
_END_OF_HEAD = b"\r\n\r\n"
_WARN_EVERY = 60.0  # seconds between warnings that the connection limit was reached


@dataclass(frozen=True)
class Limits:
    """What the server allows each connection and how many it holds at once."""

    header_timeout: float
    max_connections: int
    max_head_bytes: int = MAX_HEAD_BYTES


def server_limits(config: ServerConfig) -> Limits:
    """The limits `config` asks for, with `max_connections` checked against the file limit.

    Unset, `max_connections` is DEFAULT_MAX_CONNECTIONS or what the file limit leaves
    room for, whichever is fewer. A configured value that does not fit raises the soft
    file limit as far as needed, or is refused if the hard limit is lower.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    room = DEFAULT_MAX_CONNECTIONS if soft == unlimited else soft - RESERVED_FILES
    wanted = config.max_connections
    if wanted is None:
        wanted = max(1, min(DEFAULT_MAX_CONNECTIONS, room))
    elif wanted > room and soft != unlimited:
        needed = wanted + RESERVED_FILES
        if hard != unlimited and needed > hard:
            raise ConfigError(
                "server.max_connections",
                f"{wanted} connections need {needed} open files; the limit is {hard}",
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return Limits(header_timeout=config.header_timeout, max_connections=wanted)


def refusal(status: int, code: str, message: str, *extra: bytes) -> bytes:
    """A whole HTTP answer in the bridge's error shape, closing the connection."""
    content = orjson.dumps({"error": code, "message": message})
    return b"".join(
        [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode(),
            b"content-type: application/json\r\n",
            f"content-length: {len(content)}\r\n".encode(),
            *extra,
            b"connection: close\r\n\r\n",
            content,
        ]
    )


def _end_of_head(tail: bytes, data: bytes) -> int:
    """How far into `data` the head's blank line ends, or -1; `tail` came just before."""
    found = (tail + data[:3]).find(_END_OF_HEAD)
    if found >= 0:
        return found + len(_END_OF_HEAD) - len(tail)
    found = data.find(_END_OF_HEAD)
    return found + len(_END_OF_HEAD) if found >= 0 else -1


class Lobby:
    """Every open connection, and those waiting for a request head, longest-waiting first."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open: set[GuardedProtocol] = set()
        self.waiting: dict[GuardedProtocol, None] = {}  # insertion order = waiting since
        self.dropped = 0
        self._warned_at = -_WARN_EVERY

    def arrive(self, connection: GuardedProtocol) -> None:
        """Admit a new connection, dropping the longest-waiting one if the server is full."""
        self.open.add(connection)
        if len(self.open) > self.limits.max_connections:
            self._note_full()
            victim = next(iter(self.waiting), None)
            if victim is None:
                connection.refuse(503, "unavailable", self.full_message(), b"retry-after: 1\r\n")
                return
            victim.drop()
        self.wait(connection)

    def wait(self, connection: GuardedProtocol) -> None:
        self.waiting[connection] = None

    def served(self, connection: GuardedProtocol) -> None:
        """The connection's request head is complete: it no longer waits."""
        self.waiting.pop(connection, None)

    def leave(self, connection: GuardedProtocol) -> None:
        self.open.discard(connection)
        self.waiting.pop(connection, None)

    def full_message(self) -> str:
        return f"the bridge holds {self.limits.max_connections} connections already"

    def _note_full(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "connection limit (%s) reached: %s connections dropped or refused so far",
                self.limits.max_connections,
                self.dropped,
            )


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head limit, the head timeout and the lobby."""

    lobby: Lobby  # set on the subclass `protocol_class` makes, one per server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._held = bytearray()  # head bytes not yet given to the parser
        self._head_bytes = 0  # of this head, received so far
        self._parsed_bytes = 0  # of this head, given to the parser so far
        self._tail = b""  # the last bytes of this head, to find an end split across reads
        self._head_timer: asyncio.TimerHandle | None = None
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.lobby.arrive(self)
        if not self._closing:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lobby.leave(self)
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self.lobby.leave(self)  # the connection is the WebSocket protocol's from now on
        self._stop_head_timer()
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.lobby.wait(self)
            self._await_head()

    # -- the head ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._in_head:
            super().data_received(data)
            return
        self._unset_keepalive_if_required()
        end = _end_of_head(self._tail, data)
        self._head_bytes += len(data) if end < 0 else end
        if self._head_bytes > self.lobby.limits.max_head_bytes:
            limit = self.lobby.limits.max_head_bytes
            self.refuse(431, "headers_too_large", f"the request head is over {limit} bytes")
            return
        self._held += data
        self._tail = (self._tail + data[-3:])[-3:]
        if end >= 0 or len(self._held) >= self._parsed_bytes:
            chunk = bytes(self._held)
            self._held.clear()
            self._parsed_bytes += len(chunk)
            super().data_received(chunk)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.lobby.served(self)
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows in the stream is the next request's head.
        self._in_head = True
        self._head_bytes = self._parsed_bytes = 0
        self._tail = b""

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(
            self.lobby.limits.header_timeout, self._head_timed_out
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        timeout = self.lobby.limits.header_timeout
        self.refuse(408, "timeout", f"request head not received within {timeout:g} s")

    # -- refusing ------------------------------------------------------------------------

    def refuse(self, status: int, code: str, message: str, *extra: bytes) -> None:
        """Answer with an error and close; whatever the client still sends is ignored."""
        self.lobby.leave(self)
        self._stop_head_timer()
        self._closing = True
        if self.transport.is_closing():
            return
        # A head sent early, while the last answer is still being written, gets no answer
        # of its own: writing one now would corrupt the answer in flight.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(refusal(status, code, message, *extra))
        self.transport.close()

    def drop(self) -> None:
        """Make room for a new connection: an idle one is closed, a half-sent head refused."""
        if self._head_bytes:
            self.refuse(503, "unavailable", self.lobby.full_message())
        else:
            self.lobby.leave(self)
            self._closing = True
            self.transport.close()


def protocol_class(limits: Limits) -> type[GuardedProtocol]:
    """A protocol class of its own for one server, so its connections share one lobby."""
    return type("BridgeHTTPProtocol", (GuardedProtocol,), {"lobby": Lobby(limits)})


def serve(app: Any, host: str, port: int, limits: Limits) -> None:
    """Run `app` until SIGTERM or Ctrl-C, behind the limits."""
    # What is built by now (modules, schemas, the app) lives as long as the process; frozen,
    # a full collection under load no longer walks it (7.8% → 2.9% of a busy bridge's CPU).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=protocol_class(limits),
        log_config=None,
        access_log=False,
    )
