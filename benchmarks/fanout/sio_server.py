"""The python-socketio peer: an ASGI Socket.IO server under uvicorn, nothing stored.

    python -m benchmarks.fanout.sio_server PORT

Subscribers connect with `/socket.io/?EIO=4&transport=websocket&room=<name>` and are
put in that room. `POST /publish/<name>` emits the JSON body to the room
(`sio.emit`); `POST /inproc/start` starts one credit-paced in-process loop per room.
uvicorn runs as threadwire's does: stock asyncio loop, httptools, websockets-sansio,
no per-message deflate; its access log is off (python-socketio's own logs are too).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any
from urllib.parse import parse_qs

import socketio
import uvicorn
from benchmarks.fanout.credits import CreditBoard, open_board
from benchmarks.fanout.workload import SOCKETIO_EVENT, now_us

sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
loops: set[asyncio.Task[None]] = set()

Scope = dict[str, Any]
Message = dict[str, Any]


async def connect(sid: str, environ: dict[str, Any]) -> None:
    room = parse_qs(environ.get("QUERY_STRING", "")).get("room", [""])[0]
    await sio.enter_room(sid, room)


sio.on("connect", handler=connect)


async def room_loop(board: CreditBoard, index: int, name: str, events: int, pad: str) -> None:
    """Emit the room's events while credit lasts."""
    k = 0
    while k < events and await board.acquire(index, k):
        await sio.emit(SOCKETIO_EVENT, {"i": k, "t": now_us(), "pad": pad}, to=name)
        k += 1


async def start(config: dict[str, Any]) -> None:
    """Start one in-process loop per room."""
    board = await open_board(int(config["credit_port"]))
    pad = "x" * int(config["pad"])
    for index, name in enumerate(config["rooms"]):
        task = asyncio.create_task(room_loop(board, index, name, int(config["events"]), pad))
        loops.add(task)
        task.add_done_callback(loops.discard)


async def http_app(scope: Scope, receive: Any, send: Any) -> None:
    """`POST /publish/<room>` and `POST /inproc/start`; 404 for anything else."""
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message: Message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    path: str = scope["path"]
    status = 202
    if path.startswith("/publish/"):
        await sio.emit(SOCKETIO_EVENT, json.loads(body), to=path[9:])
    elif path == "/inproc/start":
        await start(json.loads(body))
    else:
        status = 404
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


app = socketio.ASGIApp(sio, other_asgi_app=http_app)


def main(port: int) -> None:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
