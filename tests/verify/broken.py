"""TEST-ONLY broken servers: the real app behind a wrapper that tampers with exactly one
WebSocket event frame (drops, duplicates, reorders, misroutes or corrupts it).

    tamper = Tamper("drop", at_seq=3)
    async with serve_broken(tamper) as url: ...   # then `threadwire verify --url url`

The store and the HTTP API stay honest, so the verifier's ground truth is right and
only delivery is broken, once.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import jwt
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.gateway.harness import node_settings

from threadwire.gateway import create_app
from threadwire.gateway.node import Gateway
from threadwire.gateway.server import GatewayServer, uvicorn_config
from threadwire.gateway.wsproto import EXTENSION

MODES: Final = ("drop", "duplicate", "reorder", "misroute", "corrupt")


def _user(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            token = value.decode().partition(" ")[2]
            claims = jwt.decode(token, options={"verify_signature": False})
            return str(claims["sub"])
    return ""


def _event(message: Message) -> dict[str, Any] | None:
    if message["type"] != "websocket.send" or message.get("text") is None:
        return None
    frame: dict[str, Any] = json.loads(message["text"])
    return frame["event"] if frame.get("type") == "event" else None


class Tamper:
    """An ASGI wrapper that breaks the first event frame with seq `at_seq`, once."""

    def __init__(self, mode: str, *, at_seq: int = 3) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown tamper mode {mode!r}; one of {MODES}")
        self.mode = mode
        self.at_seq = at_seq
        self.fired = False
        self.detail = ""
        self._last_frame: dict[str, Message] = {}
        """Per user, the last event frame sent to them (what a misroute leaks)."""

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The app, with this tamper on its WebSocket sends."""

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return
            # Without the direct frame writer, every frame passes through the ASGI send.
            extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != EXTENSION}
            scope = {**scope, "extensions": extensions}
            await app(scope, receive, self._sender(_user(scope), send))

        return wrapped

    def _sender(self, user: str, send: Send) -> Send:
        held: dict[str, Message] = {}
        """A reordered frame, by thread, until the thread's next event has gone out."""

        async def tampering_send(message: Message) -> None:
            event = _event(message)
            if event is None:
                await send(message)
                return
            if self.fired or event["seq"] != self.at_seq:
                await send(message)
                self._last_frame[user] = message
                late = held.pop(event["thread_id"], None)
                if late is not None:
                    await send(late)
                return
            await self._fire(user, message, event, send, held)

        return tampering_send

    async def _fire(
        self,
        user: str,
        message: Message,
        event: dict[str, Any],
        send: Send,
        held: dict[str, Message],
    ) -> None:
        where = f"{event['thread_id']} seq {event['seq']} to {user}"
        if self.mode == "misroute":
            await send(message)
            stolen = next((m for u, m in self._last_frame.items() if u != user), None)
            if stolen is None:
                return  # nothing of another user seen yet: try on a later frame
            await send(stolen)
            self.detail = f"leaked {_event(stolen)} to {user}"
        elif self.mode == "drop":
            self.detail = f"dropped {where}"
        elif self.mode == "duplicate":
            await send(message)
            await send(message)
            self.detail = f"sent {where} twice"
        elif self.mode == "reorder":
            held[event["thread_id"]] = message
            self.detail = f"held {where} back behind the thread's next event"
        else:
            forged = {**event, "event_id": "evt_00000000000000000000000000"}
            await send({**message, "text": json.dumps({"type": "event", "event": forged})})
            self.detail = f"changed the event_id of {where}"
        self.fired = True


@asynccontextmanager
async def serve_broken(tamper: Tamper, **settings: Any) -> AsyncIterator[str]:
    """A memory-store node whose WebSocket frames pass through `tamper`; yields its URL.

    Started as `tests.gateway.harness.serve_app` starts the honest one: socket bound
    first, returns once the lifespan has started.
    """
    config = node_settings(**settings)
    app = create_app(config)
    gateway: Gateway = app.state.gateway
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, 0))
    host, port = sock.getsockname()[:2]
    server = GatewayServer(uvicorn_config(tamper.wrap(app), gateway, log_level="warning"), gateway)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    started = asyncio.create_task(server.started_event.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        started.cancel()
        await task
        raise RuntimeError("the broken server exited during startup")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
