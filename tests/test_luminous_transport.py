"""The Luminous client on its default transport, against raw sockets that misbehave on cue.

What exactly-once rests on is tested here over real connections: a request that never got
a connection is "not sent", one that may have been written is an unknown outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest

from bridge.errors import LeaseLost, RetryableError, UnknownOutcome
from bridge.invoice import InvoiceItem, InvoiceRequest
from bridge.luminous import LuminousClient
from bridge.luminous_transport import AiohttpTransport

TOKEN = "lum-transport-test-SECRET-7c1d"
ANSWER = b'{"data": {"id": 9223372036854775807, "customer_po_number": "#1"}}'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def invoice_request() -> InvoiceRequest:
    return InvoiceRequest(
        company_id=1,
        order_date=dt.date(2026, 1, 15),
        payment_terms="Due on receipt",
        items=[InvoiceItem(product_id=100, quantity=Decimal(1), unit_price=Decimal("19.99"))],
    )


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request: its head, then as many body bytes as Content-Length says."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def answer(body: bytes = ANSWER, status: bytes = b"201 Created") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on a free port; yields the client's base URL and every request it read."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        original = reader.readuntil

        async def readuntil(separator: bytes = b"\n") -> bytes:
            data = await original(separator)
            seen.append(data)
            return data

        reader.readuntil = readuntil  # type: ignore[method-assign]
        await serve(reader, writer)

    server = await asyncio.start_server(recording, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/external/api/v1", seen
    finally:
        server.close()


def client(base_url: str, **options: float) -> LuminousClient:
    return LuminousClient(base_url, TOKEN, max_requests_per_second=None, **options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_default_transport_is_aiohttp_and_answers_exactly() -> None:
    listed = b'{"data": [{"id": 9223372036854775807}], "meta": {"last_page": 1}}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            writer.write(answer(listed) if request.startswith(b"GET") else answer())
            await writer.drain()

    async with serving(handler) as (base_url, seen), client(base_url) as luminous:
        assert isinstance(luminous._http._transport, AiohttpTransport)
        invoice = await luminous.create_invoice(invoice_request())
        found = await luminous.find_invoices_by_custom_field("Shop Order", "a b+c&d")
    assert invoice.id == 2**63 - 1  # through no float
    assert [row.id for row in found] == [2**63 - 1]
    head = seen[0].decode()
    assert head.startswith("POST /external/api/v1/invoices HTTP/1.1\r\n")
    assert f"authorization: bearer {TOKEN.lower()}\r\n" in head.lower()
    assert "content-type: application/json" in head.lower()
    # The query goes out byte for byte as httpx encoded it: %20 for a space, reserved escaped.
    assert seen[1].startswith(
        b"GET /external/api/v1/invoices?custom_fields.Shop%20Order%5Beq%5D=a%20b%2Bc%26d"
        b"&per_page=100&page=1 HTTP/1.1\r\n"
    )


@pytest.mark.anyio
async def test_a_refused_connection_is_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}/external/api/v1") as luminous:
        with pytest.raises(RetryableError) as caught:
            await luminous.create_invoice(invoice_request())
    assert type(caught.value) is RetryableError
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert TOKEN not in str(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize("when", ["before any answer", "mid-head", "mid-body"])
async def test_a_post_whose_answer_is_lost_has_an_unknown_outcome(when: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if when == "mid-head":
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Le")
        elif when == "mid-body":
            writer.write(answer()[:-10])
        await writer.drain()
        writer.transport.abort()

    async with serving(handler) as (base_url, seen), client(base_url) as luminous:
        with pytest.raises(UnknownOutcome, match="may have taken effect") as caught:
            await luminous.create_invoice(invoice_request())
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert not isinstance(caught.value.__cause__, httpx.ConnectError | httpx.ConnectTimeout)
    assert seen, "the request reached the server"


@pytest.mark.anyio
async def test_a_get_whose_answer_is_lost_is_plainly_retryable() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.transport.abort()

    async with serving(handler) as (base_url, _), client(base_url) as luminous:
        with pytest.raises(RetryableError) as caught:
            await luminous.get_invoice(7)
    assert type(caught.value) is RetryableError


@pytest.mark.anyio
async def test_a_stalled_answer_ends_at_the_deadline_as_unknown() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer()[:-5])  # the rest never comes
        await writer.drain()
        await asyncio.sleep(5)

    async with serving(handler) as (base_url, _), client(base_url, timeout=0.3) as luminous:
        with pytest.raises(UnknownOutcome, match=r"within 0\.3 s|ReadTimeout"):
            await luminous.create_invoice(invoice_request())


@pytest.mark.anyio
async def test_no_more_connections_than_max_concurrency() -> None:
    connections = 0
    in_flight = peak = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, in_flight, peak
        connections += 1
        while True:
            await read_request(reader)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1
            writer.write(answer(status=b"200 OK"))
            await writer.drain()

    async with serving(handler) as (base_url, _), client(base_url, max_concurrency=3) as luminous:
        await asyncio.gather(*(luminous.get_invoice(n) for n in range(30)))
    assert peak == 3
    assert connections == 3, "connections are kept and reused"


@pytest.mark.anyio
async def test_a_refusing_guard_writes_nothing_on_a_real_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer())
            await writer.drain()

    async def lost() -> None:
        raise LeaseLost("taken over")

    async with serving(handler) as (base_url, seen), client(base_url) as luminous:
        with pytest.raises(LeaseLost):
            await luminous.create_invoice(invoice_request(), guard=lost)
        assert seen == []
        await luminous.create_invoice(invoice_request())
    assert len(seen) == 1


def test_a_proxy_in_the_environment_keeps_httpx_s_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    proxied = LuminousClient("https://acme.example/external/api/v1", TOKEN)
    direct = LuminousClient("http://127.0.0.1:9/external/api/v1", TOKEN)
    assert not isinstance(proxied._http._transport, AiohttpTransport)
    assert isinstance(direct._http._transport, AiohttpTransport)
    monkeypatch.setenv("ALL_PROXY", "http://proxy.invalid:3128")
    assert not isinstance(
        LuminousClient("http://127.0.0.1:9/external/api/v1", TOKEN)._http._transport,
        AiohttpTransport,
    )


@pytest.mark.anyio
async def test_behind_a_proxy_httpx_s_own_client_sends_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()

    async with serving(proxy) as (proxy_url, seen):
        for scheme in ("NO", "ALL", "HTTPS"):
            monkeypatch.delenv(f"{scheme}_PROXY", raising=False)
            monkeypatch.delenv(f"{scheme.lower()}_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url.removesuffix("/external/api/v1"))
        async with client("http://luminous.invalid/external/api/v1") as luminous:
            assert not isinstance(luminous._http._transport, AiohttpTransport)
            invoice = await luminous.create_invoice(invoice_request())
    assert invoice.id == 2**63 - 1
    assert seen[0].startswith(b"POST http://luminous.invalid/external/api/v1/invoices HTTP/1.1")
