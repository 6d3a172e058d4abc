"""An httpx transport over aiohttp's connection pool, for the Luminous client.

httpx's own transport (httpcore) walks every pooled connection on every request, asking
each socket whether it is readable; at 32 connections that bookkeeping was most of the
client's CPU. aiohttp keeps a free list and parses answers in C. httpx still builds the
request, follows none of its redirects, decodes the answer and keeps the cookies; this
module only moves bytes, so the client's API, its timeouts and its errors stay httpx's.

What an error means for exactly-once is kept: only a failure to get a connection (refused,
DNS, TLS, the pool's or the connect timeout) is an `httpx.ConnectError`/`ConnectTimeout`,
"never sent"; anything once the request may have been written is a read, write or protocol
error, so a lost POST stays an unknown outcome.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import yarl
from multidict import CIMultiDict

__all__ = ["AiohttpTransport"]

_READ_CHUNK = 64 * 1024


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's failures as the httpx errors that say whether the request left.

    aiohttp names the errors of its connector (getting a connection); every other one is
    read as "the request may have been written".
    """
    try:
        yield
    except aiohttp.ClientProxyConnectionError as exc:
        raise httpx.ProxyError(str(exc), request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS: before any byte went
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ServerFingerprintMismatch as exc:  # during the TLS handshake
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ConnectionTimeoutError as exc:  # waiting for a pool slot or connecting
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
        # A connection closed without an answer, or an answer that is not HTTP.
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except (aiohttp.NonHttpUrlClientError, aiohttp.InvalidURL) as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:  # a reset or a broken pipe mid-exchange
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    """An answer's body as aiohttp reads it; closing before its end drops the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            while chunk := await self._response.content.read(_READ_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # back to the pool
        else:
            self._response.close()  # half-read: the connection cannot be reused


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with at most `limits.max_connections` connections, for one base URL.

    The TLS context is httpx's default one (`SSL_CERT_FILE`/`SSL_CERT_DIR` or certifi).
    Proxies are not handled here: the client keeps httpx's own transport when the
    environment names one.
    """

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl = ssl_context or httpx.create_ssl_context(trust_env=True)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: aiohttp binds the session to the running event loop.
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 0,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            auto_decompress=False,  # httpx decodes what it asked for
            timeout=aiohttp.ClientTimeout(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        try:
            content: bytes | AsyncIterator[bytes] | None = request.content or None
        except httpx.RequestNotRead:
            content = _chunks(request)
        timeout = request.extensions.get("timeout", {})
        connect, pool = timeout.get("connect"), timeout.get("pool")
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        )
        with _as_httpx_errors(request):
            response = await self._session.request(
                request.method,
                # Encoded as httpx built it: a requoted query could mean another filter.
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=content,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    # aiohttp's `connect` spans the wait for a pooled slot and the connect.
                    connect=None if connect is None or pool is None else connect + pool,
                    sock_connect=connect,
                    sock_read=timeout.get("read"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _chunks(request: httpx.Request) -> AsyncIterator[bytes]:
    assert isinstance(request.stream, httpx.AsyncByteStream)
    async for chunk in request.stream:
        yield chunk
