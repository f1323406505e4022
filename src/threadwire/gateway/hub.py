"""Local fan-out: one bus listener per thread, many subscribers, and the replay/live seam.

A subscriber's place is the last seq it was handed. The hub registers a subscription
with the thread's room BEFORE it reads the head or replays from the store, buffers the
live events that arrive meanwhile, and hands over only `seq == last + 1`. A seq jump
in the live stream (a bus that lost or reordered a message, another node's publish)
switches the subscription back to reading the store until it has caught up. So every
subscriber sees each event exactly once, in order, whatever the timing (protocol
spec 2.2 and 2.3); the store is the truth and the bus only a doorbell.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Coroutine
from typing import Any, Final, Protocol

from threadwire.bus.base import Bus
from threadwire.bus.link import LinkState, SupportsLink
from threadwire.events import Event
from threadwire.gateway import metrics
from threadwire.gateway.wsproto import text_frame
from threadwire.store.base import Store

PAGE: Final = 500
"""Events read from the store at a time while catching up."""

logger = logging.getLogger("threadwire.gateway")


class Wire:
    """A stored event with its wire forms, each serialized once for every subscriber."""

    __slots__ = ("_event_json", "_frame", "_message", "_sse", "_text", "event", "seq")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.seq = event.seq
        self._event_json: bytes | None = None
        self._message: bytes | None = None
        self._text: str | None = None
        self._frame: bytes | None = None
        self._sse: bytes | None = None

    @property
    def event_json(self) -> bytes:
        """The event's JSON object (protocol spec 1)."""
        if self._event_json is None:
            self._event_json = self.event.to_json()
        return self._event_json

    @property
    def message(self) -> bytes:
        """The WebSocket message `{"type": "event", "event": {...}}`, UTF-8."""
        if self._message is None:
            self._message = b'{"type":"event","event":' + self.event_json + b"}"
        return self._message

    @property
    def json(self) -> str:
        """The WebSocket message as text (for the ASGI send)."""
        if self._text is None:
            self._text = self.message.decode()
        return self._text

    @property
    def frame(self) -> bytes:
        """The same message as one complete WebSocket text frame, ready for any socket."""
        if self._frame is None:
            self._frame = text_frame(self.message)
        return self._frame

    @property
    def sse(self) -> bytes:
        """The Server-Sent Events record: `id`, `event` and `data` lines."""
        if self._sse is None:
            event = self.event
            self._sse = f"id: {event.seq}\nevent: {event.type}\ndata: ".encode() + (
                self.event_json + b"\n\n"
            )
        return self._sse


class Sink(Protocol):
    """Where a subscription's events go: a WebSocket connection or an SSE stream."""

    def offer(self, wire: Wire) -> bool:
        """Queue a live event without waiting; False when the queue is full (the sink
        then closes itself as lagging) or the sink is closed."""
        ...

    async def put(self, wire: Wire) -> bool:
        """Queue a replayed event, waiting for room; False once the sink is closed."""
        ...

    def subscription_failed(self, subscription: Subscription, exc: Exception) -> None:
        """Catching up failed (events pruned, store down): tell the client, drop it."""
        ...


class _State(enum.Enum):
    PENDING = "pending"
    CATCHING_UP = "catching_up"
    LIVE = "live"
    CLOSED = "closed"


class Subscription:
    """One sink's interest in one thread, and its place in that thread's seq."""

    def __init__(self, hub: Hub, thread_id: str, sink: Sink) -> None:
        self.hub = hub
        self.thread_id = thread_id
        self.sink = sink
        self.head_seq = 0
        self.last_seq = 0
        self._state = _State.PENDING
        self._buffer: dict[int, Wire] = {}
        self._max_seen = 0
        self._first_page: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self._recheck = False
        self._repairing = False

    @property
    def live(self) -> bool:
        """True once caught up with the store and following the live stream."""
        return self._state is _State.LIVE

    @property
    def closed(self) -> bool:
        """True once released."""
        return self._state is _State.CLOSED

    def start(self) -> None:
        """Begin delivery: the caller has sent its `subscribed` answer first."""
        if self._state is not _State.PENDING:
            return
        page, self._first_page = self._first_page, []
        if not page and not self._recheck and self._max_seen <= self.last_seq:
            self._buffer.clear()
            self._state = _State.LIVE
            return
        self._state = _State.CATCHING_UP
        self._task = self.hub.spawn(self._catch_up(page, full=len(page) >= PAGE))

    def close(self) -> None:
        """Stop delivering; what the sink already queued is its business."""
        self._state = _State.CLOSED
        self._buffer.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None

    def backfill(self) -> None:
        """Announcements may have been missed (the bus link came back): read the store
        from the last seq delivered before trusting the live stream again."""
        if self._state is _State.LIVE:
            metrics.backfills.labels(metrics.BACKFILL_LINK).inc()
            self._repairing = True
            self._state = _State.CATCHING_UP
            self._task = self.hub.spawn(self._catch_up([], full=True))
        elif self._state is not _State.CLOSED:
            self._recheck = True

    def on_live(self, wire: Wire) -> None:
        """A live event of the thread (called by the room, must not block)."""
        state = self._state
        seq = wire.seq
        if state is _State.LIVE:
            if seq == self.last_seq + 1:
                if self.sink.offer(wire):
                    self.last_seq = seq
                return
            if seq <= self.last_seq:
                return
            metrics.backfills.labels(metrics.BACKFILL_SEQ_JUMP).inc()
            self._repairing = True
            self._state = _State.CATCHING_UP
            self._hold(wire)
            self._task = self.hub.spawn(self._catch_up([], full=True))
        elif state is not _State.CLOSED:
            self._hold(wire)

    def _hold(self, wire: Wire) -> None:
        if wire.seq > self._max_seen:
            self._max_seen = wire.seq
        # Past the limit the store fills in what the buffer would have held.
        if len(self._buffer) < self.hub.buffer_limit:
            self._buffer[wire.seq] = wire

    async def _catch_up(self, page: list[Event], *, full: bool) -> None:
        """Replay from the store and the buffer until nothing is missing, then go live."""
        store = self.hub.store
        try:
            while True:
                for event in page:
                    if event.seq <= self.last_seq:
                        continue
                    if not await self.sink.put(Wire(event)) or self.closed:
                        return
                    self.last_seq = event.seq
                    if self._repairing:
                        metrics.backfilled_events.inc()
                if not await self._drain_buffer():
                    return
                if not full and not self._recheck and self._max_seen <= self.last_seq:
                    # No await since the buffer check: nothing can slip in between.
                    self._buffer.clear()
                    self._state = _State.LIVE
                    self._repairing = False
                    return
                self._recheck = False
                page = await store.read_events(self.thread_id, after_seq=self.last_seq, limit=PAGE)
                full = len(page) >= PAGE
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closed:
                logger.warning(
                    "catching up thread %s failed: %s",
                    self.thread_id,
                    exc,
                    extra={"thread": self.thread_id},
                )
                self.sink.subscription_failed(self, exc)

    async def _drain_buffer(self) -> bool:
        while (wire := self._buffer.pop(self.last_seq + 1, None)) is not None:
            if not await self.sink.put(wire) or self.closed:
                return False
            self.last_seq = wire.seq
        if self._buffer:
            self._buffer = {s: w for s, w in self._buffer.items() if s > self.last_seq}
        return True


class _Room:
    """The subscribers of one thread on this node, behind one bus listener."""

    __slots__ = ("failed", "ready", "subs")

    def __init__(self) -> None:
        self.subs: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.failed: BaseException | None = None

    def listener(self, event: Event) -> None:
        wire = Wire(event)
        metrics.events_published.inc()
        for sub in tuple(self.subs):
            sub.on_live(wire)


class Hub:
    """This node's subscriptions by thread, fed by the bus."""

    def __init__(self, store: Store, bus: Bus, *, buffer_limit: int = 1000) -> None:
        self.store = store
        self.bus = bus
        self.buffer_limit = max(1, buffer_limit)
        self._rooms: dict[str, _Room] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._generation = bus.link.generation if isinstance(bus, SupportsLink) else 0
        if isinstance(bus, SupportsLink):
            bus.add_link_listener(self._on_link)

    def _on_link(self, state: LinkState) -> None:
        """A bus link that came back up may have missed events: back-fill everyone."""
        if not state.connected or state.generation == self._generation:
            return
        self._generation = state.generation
        logger.info("bus link is up again: back-filling %d threads", len(self._rooms))
        for room in self._rooms.values():
            for sub in tuple(room.subs):
                sub.backfill()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a catch-up task that `close()` will cancel."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def subscribe(self, thread_id: str, sink: Sink, after_seq: int | None) -> Subscription:
        """Register `sink` for `thread_id` and find its starting place.

        Returns a PENDING subscription with `head_seq` set: send the `subscribed` answer,
        then call `start()`. `after_seq=None` means only new events. Raises EventsGone
        when the events after `after_seq` were pruned (nothing stays registered).
        """
        sub = Subscription(self, thread_id, sink)
        await self._attach(sub)
        try:
            head = await self.store.head_seq(thread_id)
            start = head if after_seq is None else after_seq
            sub.head_seq = head
            sub.last_seq = start
            if start < head:
                sub._first_page = await self.store.read_events(
                    thread_id, after_seq=start, limit=PAGE
                )
        except BaseException:
            self.release(sub)
            raise
        return sub

    def release(self, sub: Subscription) -> None:
        """Drop `sub` at once; the bus unsubscribes in the background when a room empties."""
        if sub.closed:
            return
        sub.close()
        room = self._rooms.get(sub.thread_id)
        if room is None or sub not in room.subs:
            return
        room.subs.discard(sub)
        metrics.subscriptions.dec()
        if not room.subs and room.ready.is_set():
            del self._rooms[sub.thread_id]
            if room.failed is None:
                task = asyncio.get_running_loop().create_task(
                    self._unsubscribe_bus(sub.thread_id, room)
                )
                self._cleanups.add(task)
                task.add_done_callback(self._cleanups.discard)

    async def close(self) -> None:
        """Cancel every catch-up; let pending bus unsubscribes finish."""
        if isinstance(self.bus, SupportsLink):
            self.bus.remove_link_listener(self._on_link)
        for room in self._rooms.values():
            for sub in tuple(room.subs):
                sub.close()
        self._rooms.clear()
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._cleanups, return_exceptions=True)

    @property
    def thread_count(self) -> int:
        """Threads with at least one subscriber on this node."""
        return len(self._rooms)

    async def _attach(self, sub: Subscription) -> None:
        room = self._rooms.get(sub.thread_id)
        if room is None:
            room = self._rooms[sub.thread_id] = _Room()
            room.subs.add(sub)
            metrics.subscriptions.inc()
            try:
                await self.bus.subscribe(sub.thread_id, room.listener)
            except BaseException as exc:
                room.failed = exc
                metrics.subscriptions.dec(len(room.subs))
                room.subs.clear()
                sub.close()
                if self._rooms.get(sub.thread_id) is room:
                    del self._rooms[sub.thread_id]
                raise
            finally:
                room.ready.set()
            return
        room.subs.add(sub)
        metrics.subscriptions.inc()
        await room.ready.wait()
        if room.failed is not None:
            raise RuntimeError(f"the bus refused thread {sub.thread_id!r}") from room.failed

    async def _unsubscribe_bus(self, thread_id: str, room: _Room) -> None:
        try:
            await self.bus.unsubscribe(thread_id, room.listener)
        except Exception as exc:
            logger.warning("bus unsubscribe of %s failed: %s", thread_id, exc)
