"""The floor of threadwire's own stack: uvicorn relaying, nothing stored, no framework.

    python -m benchmarks.fanout.uvicorn_floor PORT

The same server stack `threadwire serve` runs (uvicorn with httptools on uvloop, the
`FramesProtocol` that writes a frame built once to each subscriber), under a raw ASGI
app that does nothing else: no auth, no store, no logs, no metrics. What threadwire
costs beyond this is threadwire's own work, not uvicorn's. Speaks the bare relay's
protocol on one port: subscribers connect to `ws://host:PORT/room/<name>`; `POST
/publish/<name>` relays its body as one text frame to each; `POST /inproc/start` starts
one credit-paced loop per room (see bare_server.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from benchmarks.fanout.credits import CreditBoard, open_board
from benchmarks.fanout.workload import now_us, payload

from threadwire.gateway.server import run_event_loop
from threadwire.gateway.wsproto import FramesProtocol, FrameWrite, frame_writer, text_frame

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

rooms: dict[str, set[FrameWrite]] = {}
loops: set[asyncio.Task[None]] = set()


def relay(name: str, body: bytes) -> None:
    """One frame, built once, to every subscriber of the room."""
    frame = text_frame(body)
    for write in tuple(rooms.get(name, ())):
        write(frame)


async def room_loop(board: CreditBoard, index: int, name: str, events: int, pad: str) -> None:
    """Relay the room's events while credit lasts."""
    k = 0
    while k < events and await board.acquire(index, k):
        relay(name, payload(k, now_us(), pad).encode())
        k += 1
        await asyncio.sleep(0)


async def start(config: dict[str, Any]) -> None:
    """Start one in-process loop per room."""
    board = await open_board(int(config["credit_port"]))
    pad = "x" * int(config["pad"])
    for index, name in enumerate(config["rooms"]):
        task = asyncio.create_task(room_loop(board, index, name, int(config["events"]), pad))
        loops.add(task)
        task.add_done_callback(loops.discard)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The whole server: subscribers, publish and in-process start."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        write = frame_writer(scope)
        assert write is not None, "run under FramesProtocol"
        members = rooms.setdefault(scope["path"].rsplit("/", 1)[-1], set())
        members.add(write)
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            members.discard(write)
        return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    status = 202
    if path.startswith("/publish/"):
        relay(path[9:], body)
    elif path == "/inproc/start":
        asyncio.get_running_loop().create_task(start(json.loads(body)))
    else:
        status = 404
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


async def main(port: int) -> None:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        ws=FramesProtocol,
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_config=None,
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    run_event_loop(main(int(sys.argv[1])))
