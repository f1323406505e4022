"""The `threadwire.frames` extension: frames built once, written past the ASGI send.

A real uvicorn server on a free port runs a tiny ASGI app with `FramesProtocol`; a real
`websockets` client reads what the app wrote.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from threadwire.gateway.wsproto import FramesProtocol, FrameWrite, frame_writer, text_frame

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[FrameWrite | None, Receive, Send], Awaitable[None]]


class _Server(uvicorn.Server):
    """A uvicorn server that says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.started_event.set()


@asynccontextmanager
async def served(handler: Handler, *, deflate: bool = False) -> AsyncIterator[str]:
    """Serve `handler` (called after the accept with the scope's frame writer)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return  # lifespan: nothing to start
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await handler(frame_writer(scope), receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ws=FramesProtocol,
        ws_per_message_deflate=deflate,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await server.started_event.wait()
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_frames_written_directly_reach_the_client_in_order_with_asgi_sends() -> None:
    async def handler(write: FrameWrite | None, receive: Receive, send: Send) -> None:
        assert write is not None
        assert write(text_frame(json.dumps({"n": 1}).encode()))
        await send({"type": "websocket.send", "text": json.dumps({"n": 2})})
        big = "é" * 70_000  # a 16-bit and then a 64-bit length header
        assert write(text_frame(json.dumps({"n": 3, "pad": big}).encode()))
        await receive()  # until the client leaves

    async with served(handler) as url, connect(url, compression=None, max_size=None) as ws:
        got = [json.loads(await ws.recv()) for _ in range(3)]
    assert [m["n"] for m in got] == [1, 2, 3]
    assert got[2]["pad"] == "é" * 70_000


async def test_a_negotiated_deflate_extension_withholds_the_writer() -> None:
    seen: list[FrameWrite | None] = []

    async def handler(write: FrameWrite | None, receive: Receive, send: Send) -> None:
        seen.append(write)
        await send({"type": "websocket.send", "text": "ok"})
        await receive()

    async with served(handler, deflate=True) as url, connect(url) as ws:
        assert await ws.recv() == "ok"
    assert seen == [None]


async def test_writer_refuses_once_a_slow_reader_paused_the_transport() -> None:
    refused_after: list[int] = []
    refused = asyncio.Event()

    async def handler(write: FrameWrite | None, receive: Receive, send: Send) -> None:
        assert write is not None
        frame = text_frame(b"x" * 65_536)
        for n in range(100_000):  # the socket buffers fill long before this
            if not write(frame):
                refused_after.append(n)
                break
        refused.set()
        await receive()

    async with served(handler) as url:
        # The client reads nothing until the server has refused a frame.
        async with connect(url, compression=None, max_size=None, max_queue=1) as ws:
            await refused.wait()
            assert refused_after and refused_after[0] > 0
            for _ in range(refused_after[0]):  # every frame written arrives whole
                assert await ws.recv() == "x" * 65_536


async def test_writer_refuses_after_the_close_was_sent() -> None:
    results: list[bool] = []

    async def handler(write: FrameWrite | None, receive: Receive, send: Send) -> None:
        assert write is not None
        await send({"type": "websocket.close", "code": 4008, "reason": "lagging"})
        results.append(write(text_frame(b'"late"')))

    async with served(handler) as url, connect(url, compression=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    assert results == [False]
