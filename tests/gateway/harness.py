"""A real threadwire node on a free port, for tests that speak HTTP and WebSocket to it.

    async with serve_app(node_settings()) as node:
        async with httpx.AsyncClient(base_url=node.url) as http: ...
        async with websockets.connect(node.ws_url, additional_headers=node.auth("alice")): ...

The server runs in the test's event loop under the same uvicorn configuration and
shutdown order as `threadwire serve` (threadwire.gateway.server); the socket is bound
before the server starts, so there is no port race, and `serve_app` returns only once
the lifespan has started: no sleeps anywhere.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from threadwire.bus import Bus
from threadwire.config import Settings
from threadwire.gateway import create_app
from threadwire.gateway.auth import issue_token
from threadwire.gateway.node import Gateway
from threadwire.gateway.server import GatewayServer, uvicorn_config
from threadwire.runtime import AgentRegistry
from threadwire.store import Store

TEST_SECRET = "threadwire-test-secret-0123456789abcdef"


def node_settings(**overrides: Any) -> Settings:
    """Settings for a test node: memory store, fixed secret, loopback, no env influence."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "database_url": "memory://",
        "jwt_secret": TEST_SECRET,
        "shutdown_grace": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Node:
    """A running test node: its URLs, app, gateway and token helpers."""

    url: str
    ws_url: str
    app: FastAPI
    gateway: Gateway
    server: GatewayServer
    task: asyncio.Task[None]

    def token(self, user: str, *, ttl: float | None = 3600) -> str:
        """A user token signed with the node's secret."""
        return issue_token(self.gateway.secret, user, ttl=ttl)

    def service_token(self, name: str = "worker") -> str:
        """A service token (scope events:write)."""
        return issue_token(self.gateway.secret, name, service=True)

    def auth(self, user: str) -> dict[str, str]:
        """An Authorization header for `user`."""
        return {"Authorization": f"Bearer {self.token(user)}"}

    def service_auth(self, name: str = "worker") -> dict[str, str]:
        """An Authorization header carrying a service token."""
        return {"Authorization": f"Bearer {self.service_token(name)}"}

    async def stop(self) -> None:
        """Shut down as SIGTERM would (drain first), and wait until it has."""
        self.server.should_exit = True
        await asyncio.shield(self.task)


@asynccontextmanager
async def serve_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    registry: AgentRegistry | None = None,
) -> AsyncIterator[Node]:
    """Run a node until the block ends; yields its `Node` once it accepts requests."""
    settings = settings or node_settings()
    app = create_app(settings, store=store, bus=bus, registry=registry)
    gateway: Gateway = app.state.gateway
    # proto=IPPROTO_TCP, not 0: asyncio turns on TCP_NODELAY only for sockets that say
    # they are TCP, and without it each response waited ~40 ms on a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    host, port = sock.getsockname()[:2]
    server = GatewayServer(uvicorn_config(app, gateway, log_level="warning"), gateway)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    started = asyncio.create_task(server.started_event.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        started.cancel()
        await task  # raises the startup failure
        raise RuntimeError("the test server exited during startup")
    try:
        yield Node(f"http://{host}:{port}", f"ws://{host}:{port}/v1/ws", app, gateway, server, task)
    finally:
        server.should_exit = True
        await task
        sock.close()
