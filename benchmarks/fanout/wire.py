"""Lean clients for the load generator: WebSocket subscribers and keep-alive HTTP.

The load generator has one CPU for up to 2,000 connections and well over 100,000
frames a second, so it must cost far less per frame than any server it measures.
`WsClient` lets `websockets` (its sans-I/O `ClientProtocol`) build and check the
opening handshake and frame what the client sends (masked), and reads the server's
frames itself: unmasked, unfragmented text frames of a few hundred bytes, where a
generic parser costs about 3 to 6 us per frame and this one about 1 us.
`HttpClient` is a keep-alive HTTP/1.1 client for Content-Length answers, with
requests pre-formatted by the caller (httpx costs hundreds of microseconds each).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, cast

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

OP_TEXT: Final = 0x1
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA


class WsClient(asyncio.Protocol):
    """A WebSocket client connection; subclasses handle text frames in `on_frames`."""

    def __init__(self, uri: str, headers: dict[str, str] | None = None) -> None:
        self.protocol = ClientProtocol(parse_uri(uri))
        self.headers = headers or {}
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self._head = b""
        self._buffer = b""

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        request = self.protocol.connect()
        for name, value in self.headers.items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self._handshake(data)
            return
        self._frames(self._buffer + data if self._buffer else data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc!r}"))
        self.on_lost()

    # -- what subclasses implement ------------------------------------------------------

    def on_open(self) -> None:
        """The handshake succeeded."""

    def on_frames(self, buffer: bytes, frames: list[tuple[int, int]]) -> None:
        """Text frames `buffer[start:stop]`, in order, all received at the same time."""

    def on_lost(self) -> None:
        """The connection is gone (closed by either side or broken)."""

    # -- sending ------------------------------------------------------------------------

    def send_text(self, text: bytes) -> None:
        """Send one text frame (masked, as a client must)."""
        if self.open:
            self.protocol.send_text(text)
            self._flush()

    def close(self) -> None:
        """Drop the connection without ceremony (the benchmark is over)."""
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data and self.transport is not None:
            self.transport.write(b"".join(data))

    # -- receiving ------------------------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self._head = head
            return
        self._head = b""
        self.protocol.receive_data(head[: end + 4])
        for event in self.protocol.events_received():
            assert isinstance(event, Response)
        if self.protocol.state is not State.OPEN:
            error = self.protocol.handshake_exc or ConnectionError("handshake failed")
            if not self.opened.done():
                self.opened.set_exception(error)
            self.close()
            return
        self.open = True
        self.opened.set_result(None)
        self.on_open()
        rest = head[end + 4 :]
        if rest:
            self._frames(rest)

    def _frames(self, buffer: bytes) -> None:
        frames: list[tuple[int, int]] = []
        pos, end = 0, len(buffer)
        while end - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                start = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                start = pos + 10
            stop = start + length
            if stop > end:
                break
            opcode = buffer[pos] & 0x0F
            if opcode == OP_TEXT:
                frames.append((start, stop))
            else:
                self._control(opcode, buffer[start:stop])
            pos = stop
        self._buffer = buffer[pos:] if pos < end else b""
        if frames:
            self.on_frames(buffer, frames)

    def _control(self, opcode: int, body: bytes) -> None:
        if opcode == OP_PING and self.open:
            self.protocol.send_pong(body)
            self._flush()
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(body[:2], "big") if len(body) >= 2 else 1005
            self.close()


class HttpClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `request` sends bytes, returns (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._waiting: deque[asyncio.Future[tuple[int, bytes]]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"HTTP connection lost: {exc!r}"))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send a complete request; the future gets the answer's status and body."""
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            waiter.set_exception(ConnectionError("HTTP connection closed"))
            return waiter
        self._waiting.append(waiter)
        self.transport.write(raw)
        return waiter

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        while self._waiting:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            at = head.lower().find(b"content-length:")
            length = 0
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            status = int(head[9:12])
            body = buffer[end + 4 : total]
            buffer = buffer[total:]
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result((status, body))
        self._buffer = buffer

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()


def http_request(
    method: str, host: str, port: int, path: str, body: bytes = b"", token: str | None = None
) -> bytes:
    """A complete HTTP/1.1 request (JSON body, optional bearer token)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body or method == "POST":
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_http(host: str, port: int) -> HttpClient:
    """A connected HttpClient."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(HttpClient, host, port)
    return client
