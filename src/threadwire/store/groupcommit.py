"""Group commit: concurrent appends queue up and one writer task commits them together.

Per-event commits cap throughput at the disk's (or the network's) commit rate; one
transaction per *batch of callers* keeps each caller's events atomic while paying that
cost once for all of them. No timer: a batch is whatever queued while the previous
commit ran, so an idle store commits at once (see docs/decisions/0011).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from threadwire.events import Event, NewEvent
from threadwire.store.base import StoreError

DEFAULT_MAX_BATCH_EVENTS: Final = 2000


@dataclass(eq=False, slots=True)
class AppendRequest:
    """One caller's append: its events, its idempotency key, and where its answer goes."""

    events: Sequence[NewEvent]
    key: str | None
    future: asyncio.Future[list[Event]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: list[Event] | BaseException) -> None:
        """Answer the caller (unless it stopped waiting)."""
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


Flush = Callable[[list[AppendRequest]], Awaitable[None]]
"""Writes a batch in as few transactions as it can and settles every request, after
commit; raising fails every request it left unsettled."""


class GroupCommitter:
    """A queue of AppendRequests drained by one writer task (or, disabled, none)."""

    def __init__(
        self,
        flush: Flush,
        *,
        enabled: bool = True,
        max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
    ) -> None:
        self._flush = flush
        self._enabled = enabled
        self._max_batch_events = max_batch_events
        self._queue: asyncio.Queue[AppendRequest | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writer task (needs a running loop)."""
        if self._enabled and self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="threadwire-store-writer")

    async def submit(self, events: Sequence[NewEvent], key: str | None) -> list[Event]:
        """Queue `events` and wait until they are committed (or refused)."""
        if self._closed:
            raise StoreError("the store is closed")
        request = AppendRequest(events, key)
        if not self._enabled:
            await self._flush_settling([request])
        else:
            self._queue.put_nowait(request)
        return await request.future

    async def close(self) -> None:
        """Refuse new appends, commit those already queued, stop the writer."""
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first.events)
            while size < self._max_batch_events and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item.events)
            live = [r for r in batch if not r.future.cancelled()]
            if live:
                await self._flush_settling(live)

    async def _flush_settling(self, batch: list[AppendRequest]) -> None:
        try:
            await self._flush(batch)
        except asyncio.CancelledError as exc:
            for request in batch:
                request.settle(StoreError(f"append interrupted: {exc!r}"))
            raise
        except Exception as exc:
            for request in batch:
                request.settle(exc)
