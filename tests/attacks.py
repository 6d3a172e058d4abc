"""Attacks on the front door, run from threads against a real bridge, and what they measure.

An endless header, a crowd of half-sent requests and back-to-back 1 MiB number-heavy bodies,
each as the issue's reviewer ran them;
`deliveries` posts valid orders meanwhile and times each answer, `MemoryWatch` samples the
bridge's resident memory.
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness import sign_and_post
from tests.orders import body, shopify_order

PIECE = b"a" * 65536
HALF_REQUEST = b"POST /webhooks/shopify HTTP/1.1\r\nhost: bridge\r\n"

# Order ids unique to this process, so no two runs against one store share one.
_order_ids = itertools.count(random.SystemRandom().randrange(10**12, 10**13, 1000))


@dataclass
class EndlessHeader:
    """Clients that each send `x-pad: aaaa…` in 64 KiB pieces, reconnecting when refused."""

    port: int
    clients: int = 2
    answers: list[bytes] = field(default_factory=list)  # the first line of each answer
    sent: int = 0  # bytes, over all connections
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> EndlessHeader:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                time.sleep(0.05)
                continue
            with sock:
                try:
                    sock.sendall(b"POST /webhooks/shopify HTTP/1.1\r\nhost: bridge\r\nx-pad: ")
                    while not self._stop.is_set():
                        sock.sendall(PIECE)
                        self.sent += len(PIECE)
                except OSError:  # refused: note what was answered, then start again
                    self.answers.append(_first_line(sock))

    def refused_with(self, status: int) -> int:
        prefix = f"HTTP/1.1 {status} ".encode()
        return sum(answer.startswith(prefix) for answer in self.answers)


def _first_line(sock: socket.socket) -> bytes:
    try:
        sock.settimeout(1)
        return sock.recv(200).partition(b"\r\n")[0]
    except OSError:
        return b""


@dataclass
class HalfRequests:
    """`count` connections that each send a request line and one header, then nothing.

    A connection the bridge closes is opened again, so the crowd stays `count` strong.
    """

    port: int
    count: int
    opened: int = 0
    closed: int = 0
    _socks: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HalfRequests:
        for _ in range(self.count):
            self._socks.append(self._open())
        self._thread = threading.Thread(target=self._refill, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        for sock in self._socks:
            sock.close()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(HALF_REQUEST)
        sock.setblocking(False)
        self.opened += 1
        return sock

    def _refill(self) -> None:
        while not self._stop.wait(0.05):
            for index, sock in enumerate(self._socks):
                try:
                    if sock.recv(4096):
                        continue  # an answer (503, 408): the close follows
                except BlockingIOError:
                    continue  # still held open
                except OSError:
                    pass
                sock.close()
                self.closed += 1
                try:
                    self._socks[index] = self._open()
                except OSError:
                    return


def number_heavy_order(size: int, *, strict: bool = False) -> bytes:
    """A new, valid order padded to `size` bytes with an array of decimal numbers; `strict`
    adds an escaped colon, which only the strict parser can vouch for."""
    order = shopify_order(next(_order_ids))
    if strict:
        order["x_note"] = "at 10:30"
    order["x_numbers"] = []
    empty = body(order).replace(b"10:30", b"10\\u003a30")
    numbers = b",".join(b"%d.%02d" % (1 + i % 9, i % 100) for i in range((size - len(empty)) // 5))
    return empty.replace(b'"x_numbers": []', b'"x_numbers": [' + numbers + b"]")


@dataclass
class LargeBodies:
    """One authenticated sender posting `size`-byte number-heavy orders back to back."""

    url: str
    secret: str
    size: int
    strict: bool = False
    statuses: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LargeBodies:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            payload = number_heavy_order(self.size, strict=self.strict)
            try:
                answer = sign_and_post(self.url, "shopify", payload, self.secret, timeout=30)
                self.statuses.append(answer.status_code)
            except httpx.HTTPError:
                self.statuses.append(0)


@dataclass
class Timed:
    status: int
    seconds: float


def deliveries(
    url: str, secret: str, count: int, *, pause: float = 0.2, timeout: float = 30.0
) -> list[Timed]:
    """Post up to `count` new, valid Shopify orders one after another, each answer timed;
    the first that gets no answer within `timeout` (status 0) ends the run."""
    timed = []
    for _ in range(count):
        payload = body(shopify_order(next(_order_ids)))
        started = time.monotonic()
        try:
            status = sign_and_post(url, "shopify", payload, secret, timeout=timeout).status_code
        except httpx.HTTPError:
            status = 0
        timed.append(Timed(status, time.monotonic() - started))
        if status == 0:
            break
        time.sleep(pause)
    return timed


class MemoryWatch:
    """Samples a process's resident memory (`VmRSS`, MiB) from a thread until stopped."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self.samples.append(self.rss())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def rss(self) -> float:
        for line in self.status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise ValueError(f"no VmRSS in {self.status}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.rss())

    @property
    def peak(self) -> float:
        return max(self.samples)
