"""The bare broadcast limit: a `websockets` server that only relays, nothing stored.

    python -m benchmarks.fanout.bare_server WS_PORT HTTP_PORT

Subscribers connect to `ws://host:WS_PORT/room/<name>`. A minimal HTTP/1.1 server on
HTTP_PORT takes `POST /publish/<name>` (the body is relayed as is, one text frame to
each subscriber of the room, with `websockets.broadcast`) and `POST /inproc/start`
(JSON `{"rooms": [...], "events": n, "pad": n, "credit_port": p}`: one in-process loop
per room that broadcasts credit-paced events). Runs on the stock asyncio loop, as
`threadwire serve` does.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, cast

from benchmarks.fanout.credits import CreditBoard, open_board
from benchmarks.fanout.workload import now_us, payload
from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = {}
loops: set[asyncio.Task[None]] = set()


async def subscriber(ws: ServerConnection) -> None:
    """Hold a subscriber in its room until it leaves."""
    name = ws.request.path.rsplit("/", 1)[-1] if ws.request else ""
    members = rooms.setdefault(name, set())
    members.add(ws)
    try:
        await ws.wait_closed()
    finally:
        members.discard(ws)


async def room_loop(board: CreditBoard, index: int, name: str, events: int, pad: str) -> None:
    """Broadcast the room's events while credit lasts."""
    members = rooms.setdefault(name, set())
    k = 0
    while k < events and await board.acquire(index, k):
        broadcast(members, payload(k, now_us(), pad))
        k += 1
        await asyncio.sleep(0)


class Http(asyncio.Protocol):
    """Just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the load generator."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            self.handle(head.split(" ", 2)[1], body)
        self.buffer = buffer

    def handle(self, path: str, body: bytes) -> None:
        if path.startswith("/publish/"):
            broadcast(rooms.get(path[9:], ()), body, text=True)
            status = b"202 Accepted"
        elif path == "/inproc/start":
            asyncio.get_running_loop().create_task(start(json.loads(body)))
            status = b"202 Accepted"
        else:
            status = b"404 Not Found"
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")


async def start(config: dict[str, Any]) -> None:
    """Start one in-process loop per room."""
    board = await open_board(int(config["credit_port"]))
    pad = "x" * int(config["pad"])
    for index, name in enumerate(config["rooms"]):
        task = asyncio.create_task(room_loop(board, index, name, int(config["events"]), pad))
        loops.add(task)
        task.add_done_callback(loops.discard)


async def main(ws_port: int, http_port: int) -> None:
    loop = asyncio.get_running_loop()
    http = await loop.create_server(Http, "127.0.0.1", http_port)
    async with serve(subscriber, "127.0.0.1", ws_port, compression=None):
        print("ready", flush=True)
        await http.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
