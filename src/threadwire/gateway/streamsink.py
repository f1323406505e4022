"""The bounded queue behind every streamed HTTP response fed by the hub (SSE, /lg runs).

Live events that find the queue full end the stream (the client resumes from the
store); replayed events wait for room below a low-water mark, so a catch-up never
overflows it. The stream's body drains the queue in chunks and waits for more.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from threadwire.gateway import metrics
from threadwire.gateway.hub import Wire

if TYPE_CHECKING:
    from threadwire.gateway.node import Gateway

KEEPALIVE = b": keep-alive\n\n"


class QueuedStream:
    """Hub-sink half of a streamed response: `offer`/`put` in, `take`/`wait` out."""

    def __init__(self, capacity: int) -> None:
        self._queue: deque[Wire] = deque()
        self._capacity = max(1, capacity)
        self._low_water = max(1, self._capacity // 2)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False

    def offer(self, wire: Wire) -> bool:
        """Queue a live event; a full queue ends the stream (the client resumes)."""
        if self.closed:
            return False
        if len(self._queue) >= self._capacity:
            metrics.lagging_closes.labels("sse").inc()
            self.close()
            return False
        self._queue.append(wire)
        self._wake.set()
        return True

    async def put(self, wire: Wire) -> bool:
        """Queue a replayed event once the queue is below its low-water mark."""
        while len(self._queue) >= self._low_water and not self.closed:
            self._room.clear()
            await self._room.wait()
        if self.closed:
            return False
        self._queue.append(wire)
        self._wake.set()
        return True

    def close(self) -> None:
        """End the stream after what is queued (shutdown, lagging, failure)."""
        self.closed = True
        self._wake.set()
        self._room.set()

    def take(self) -> list[Wire]:
        """Everything queued, oldest first; frees room for replay."""
        wires = list(self._queue)
        self._queue.clear()
        self._room.set()
        return wires

    async def wait(self, keepalive: float) -> bool:
        """Wait for more events or the close; False when `keepalive` seconds passed first
        (the body then sends a keep-alive comment)."""
        self._wake.clear()
        if self._queue or self.closed:
            return True
        try:
            async with asyncio.timeout(keepalive):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True


class ReleasableStream(Protocol):
    """A stream the gateway counts while open and that gives back what it holds."""

    @property
    def gateway(self) -> Gateway: ...

    def shutdown(self) -> None: ...

    def release(self) -> None: ...


class StreamResponse(StreamingResponse):
    """A streaming response that releases its stream however it ends (even unstarted)."""

    def __init__(self, stream: ReleasableStream, body: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._stream.gateway.attach(self._stream)
        metrics.sse_streams.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            metrics.sse_streams.dec()
            self._stream.release()
