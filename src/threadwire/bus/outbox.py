"""Announcements on their way to Redis: queued in order, sent by one task in pipelined
batches, retried with backoff, bounded.

Publishing never waits for Redis: the events are already stored, so a Redis outage
must not fail the agent that emitted them. The queue keeps them in order while Redis
is away and drops the oldest past its bound (counted); nodes that missed them read the
store when their link comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from redis.asyncio import Redis

from threadwire.bus import metrics as m
from threadwire.bus.tasks import backoff_delay, cancel_and_wait

log = logging.getLogger(__name__)


class Outbox:
    """A bounded FIFO of (channel, payload) drained by a writer task."""

    def __init__(
        self,
        client: Callable[[], Redis],
        *,
        max_batch: int = 512,
        max_size: int = 100_000,
        backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        self._client = client
        self._max_batch = max_batch
        self._max_size = max_size
        self._backoff = backoff
        self._queue: deque[tuple[str, bytes]] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="threadwire-bus-writer")

    def put(self, channel: str, payload: bytes) -> None:
        """Queue one PUBLISH; past the bound the oldest queued one is dropped."""
        if len(self._queue) >= self._max_size:
            self._queue.popleft()
            m.outbox.dec()
            m.messages_dropped.labels("outbox_full").inc()
        self._queue.append((channel, payload))
        m.outbox.inc()
        self._drained.clear()
        self._ready.set()

    async def flush(self) -> None:
        """Wait until everything queued so far reached Redis (bound it with a timeout)."""
        await self._drained.wait()

    async def stop(self, flush_within: float) -> None:
        """Send what is queued for up to `flush_within` seconds, then stop; drop the rest."""
        if self._task is not None and self._queue:
            try:
                async with asyncio.timeout(flush_within):
                    await self.flush()
            except TimeoutError:
                log.warning("bus closed with %d announcements unsent", len(self._queue))
        await cancel_and_wait(self._task)
        self._task = None
        m.outbox.dec(len(self._queue))
        self._queue.clear()

    async def _run(self) -> None:
        attempt = 0
        while True:
            if not self._queue:
                self._drained.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                self._queue.extendleft(reversed(batch))
                raise
            except Exception as exc:
                self._queue.extendleft(reversed(batch))
                self._trim()
                m.publish_errors.inc()
                if attempt == 0:
                    log.warning("publishing to Redis failed: %s; retrying", exc)
                await asyncio.sleep(backoff_delay(attempt, *self._backoff))
                attempt += 1
                continue
            if attempt:
                log.info("publishing to Redis works again")
            attempt = 0
            m.outbox.dec(len(batch))
            m.messages_published.inc(len(batch))

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        async with self._client().pipeline(transaction=False) as pipe:
            for channel, payload in batch:
                pipe.publish(channel, payload)
            await pipe.execute()

    def _trim(self) -> None:
        while len(self._queue) > self._max_size:
            self._queue.popleft()
            m.outbox.dec()
            m.messages_dropped.labels("outbox_full").inc()
