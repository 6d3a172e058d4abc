"""A lean keep-alive HTTP/1.1 poster, so the load generator leaves the CPU to the bridge.

A general-purpose client spends a few milliseconds of CPU per request; on a two-core machine
that is taken from the server being measured. This one writes prepared request bytes and
reads `Content-Length` answers, which is all the bridge sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping


def request_bytes(host: str, path: str, content: bytes, headers: Mapping[str, str]) -> bytes:
    """A complete POST request, built once so that sending it costs no CPU to speak of."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(content)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content


class Connection:
    """One persistent connection; requests on it go one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; return the answer's status and body."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        length = None
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise ConnectionError(f"answer without Content-Length: {status_line}")
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()
