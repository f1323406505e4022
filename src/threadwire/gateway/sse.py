"""Server-Sent Events: one thread's events as `id: seq` / `event: type` / `data: json`.

The same hub subscription as a WebSocket's (replay from the store, then live, no gap
or duplicate at the seam), with its own bounded queue: a stream that falls behind is
ended, and the browser's EventSource reconnects with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from starlette.responses import StreamingResponse

from threadwire.gateway import errors, metrics
from threadwire.gateway.hub import Subscription
from threadwire.gateway.streamsink import KEEPALIVE, QueuedStream, StreamResponse
from threadwire.store import EventsGone

if TYPE_CHECKING:
    from threadwire.gateway.node import Gateway

HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

logger = logging.getLogger("threadwire.gateway")


class SseStream(QueuedStream):
    """A hub sink feeding one streaming response."""

    def __init__(self, gateway: Gateway, user: str, *, expires_at: float | None = None) -> None:
        self.gateway = gateway
        self.user = user
        self.expires_at = expires_at
        self._expiry: asyncio.TimerHandle | None = None
        super().__init__(gateway.settings.ws_queue_size)
        self._trailer: bytes | None = None
        self._subscription: Subscription | None = None
        self._released = False

    def subscription_failed(self, subscription: Subscription, exc: Exception) -> None:
        """End the stream with a comment saying why (pruned events or a store error)."""
        code = "gone" if isinstance(exc, EventsGone) else "unavailable"
        self._trailer = f": error {code}\n\n".encode()
        self.close()

    def shutdown(self) -> None:
        """The server is shutting down: end the stream."""
        self.close()

    async def open(self, thread_id: str, after_seq: int | None) -> StreamingResponse:
        """Subscribe, then answer with the stream; raises a 410 problem when pruned."""
        try:
            self._subscription = await self.gateway.hub.subscribe(thread_id, self, after_seq)
        except EventsGone as exc:
            metrics.refusals.labels(metrics.REASON_GONE).inc()
            raise errors.gone(exc) from exc
        if self.expires_at is not None:
            delay = max(0.0, self.expires_at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)
        return StreamResponse(self, self._body(), media_type="text/event-stream", headers=HEADERS)

    def _expired(self) -> None:
        """The token's `exp` passed: end the stream (a reconnect needs a fresh token)."""
        metrics.refusals.labels(metrics.REASON_UNAUTHORIZED).inc()
        self._trailer = b": error unauthorized\n\n"
        self.close()

    def release(self) -> None:
        """Give back the subscription and the user's connection slot (idempotent)."""
        self.closed = True
        if self._released:
            return
        self._released = True
        if self._expiry is not None:
            self._expiry.cancel()
        if self._subscription is not None:
            self.gateway.hub.release(self._subscription)
        self.gateway.detach(self)
        self.gateway.user_connections.release(self.user)

    async def _body(self) -> AsyncIterator[bytes]:
        sub = self._subscription
        assert sub is not None
        keepalive = self.gateway.settings.sse_keepalive
        delivered = 0
        try:
            yield f": subscribed head_seq={sub.head_seq}\n\n".encode()
            sub.start()
            while True:
                if wires := self.take():
                    delivered += len(wires)
                    yield b"".join(wire.sse for wire in wires)
                    continue
                if self.closed:
                    if self._trailer:
                        yield self._trailer
                    return
                if not await self.wait(keepalive):
                    yield KEEPALIVE
        finally:
            self.closed = True
            if delivered:
                metrics.events_delivered.labels("sse").inc(delivered)
