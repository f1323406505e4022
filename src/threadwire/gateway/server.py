"""Running the app under uvicorn with threadwire's shutdown order.

uvicorn on SIGTERM stops listening, closes WebSockets with 1012 and waits for open
responses, and only then runs the lifespan shutdown: too late for the protocol's
1001 and for ending SSE streams. `GatewayServer` drains the gateway first (new
requests get 503, WebSockets close with 1001, streams end), then lets uvicorn finish.
`threadwire serve` and the test servers both run through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, Final, TypeVar

import uvicorn

from threadwire.gateway.node import Gateway
from threadwire.gateway.wsproto import FramesProtocol

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


GC_THRESHOLDS: Final = (20_000, 50, 100)
"""The cyclic collector's thresholds once serving (CPython's default: 700, 10, 10)."""


def settle_gc() -> None:
    """Once the server listens: freeze the start-up heap out of the cyclic collector's
    reach and run it less often (decision 0114). Everything is still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when it is installed (uvicorn[standard] brings it), else on
    asyncio's own loop: uvloop's callbacks, futures and transports cost the fan-out
    path about a fifth of its CPU less (docs/decisions/0110)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def uvicorn_config(app: Any, gateway: Gateway, **overrides: Any) -> uvicorn.Config:
    """The uvicorn settings threadwire needs: frame cap, no access log of its own."""
    settings = gateway.settings
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        # websockets-sansio, plus writing each event's frame built once (decision 0113).
        "ws": FramesProtocol,
        # The WebSocket library enforces --max-frame-bytes and closes with 1009.
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": False,
        "access_log": False,
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": max(1.0, settings.shutdown_grace),
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class GatewayServer(uvicorn.Server):
    """A uvicorn server that drains the gateway before uvicorn's own shutdown."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.started_event.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.gateway.drain()
        await super().shutdown(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Turn SIGTERM and SIGINT into a graceful shutdown that exits 0.

        uvicorn re-raises the captured signal once it has shut down, which would end the
        process by the signal; the protocol wants exit status 0 after a drain.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with port 0)."""
        for server in self.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the server is not listening")
