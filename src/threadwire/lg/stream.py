"""One run's events as a LangGraph SSE stream, through the gateway's hub.

A `RunStream` is a hub sink for the run's thread, so it gets the hub's guarantees
(replay from the store, then live, no gap and no duplicate at the seam, bounded
queue); it keeps the run's events, turns each into parts (`modes.py`) and ends after
the run's terminal event. Every part's SSE `id:` is the seq of the event it comes
from, so `Last-Event-ID` resumes exactly where the client stopped.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import StreamingResponse

from threadwire.events import Event
from threadwire.gateway import errors, metrics
from threadwire.gateway.hub import Subscription
from threadwire.gateway.sse import HEADERS
from threadwire.gateway.streamsink import KEEPALIVE, QueuedStream, StreamResponse
from threadwire.lg.modes import CUSTOM, RunView, custom_part, metadata_part
from threadwire.store import EventsGone, RunRecord, Store
from threadwire.store.base import MAX_PAGE

if TYPE_CHECKING:
    from threadwire.gateway.node import Gateway

SSE_MEDIA_TYPE: Final = "text/event-stream"
STATUS_WAIT: Final = 5.0
"""Longest a finished stream waits for its run's final status to be stored."""

logger = logging.getLogger("threadwire.lg")


@dataclass(frozen=True, slots=True)
class Scanned:
    """What the store holds of a run up to a seq: where it began and whether it ended."""

    first_seq: int | None
    terminal_seq: int | None


async def thread_events(
    store: Store, thread_id: str, *, after: int = 0, upto: int | None = None
) -> AsyncIterator[Event]:
    """The thread's stored events with `after < seq <= upto`, in order, page by page; a
    pruned prefix is skipped (the thread's low-water mark), never raised as EventsGone."""
    thread = await store.get_thread(thread_id)
    after = max(after, thread.low_seq if thread is not None else 0, 0)
    while upto is None or after < upto:
        page = await store.read_events(thread_id, after_seq=after, limit=MAX_PAGE)
        for event in page:
            if upto is not None and event.seq > upto:
                return
            yield event
        if len(page) < MAX_PAGE:
            return
        after = page[-1].seq


async def run_events(
    store: Store, thread_id: str, run_id: str, *, after: int = 0, upto: int | None = None
) -> AsyncIterator[Event]:
    """The run's stored events with `after < seq <= upto`, up to its terminal one (the
    store has no index of events by run, so this reads the thread's)."""
    async for event in thread_events(store, thread_id, after=after, upto=upto):
        if event.run_id == run_id:
            yield event
            if event.is_terminal:
                return


async def snapshots(gateway: Gateway, runs: list[RunRecord]) -> dict[str, dict[str, Any]]:
    """The values of each of one thread's `runs` as they stand, in one read of the thread."""
    if not runs:
        return {}
    views = {run.run_id: RunView(run, graph=is_graph_run(gateway, run)) for run in runs}
    async for event in thread_events(gateway.store, runs[0].thread_id):
        view = views.get(event.run_id)
        if view is not None:
            view.apply(event)
    return {run.run_id: views[run.run_id].snapshot(run) for run in runs}


async def scan_run(
    store: Store, thread_id: str, run_id: str, *, upto: int, view: RunView | None
) -> Scanned:
    """Fold the run's events up to `upto` into `view` (when given); where it began and ended."""
    first: int | None = None
    terminal: int | None = None
    async for event in run_events(store, thread_id, run_id, upto=upto):
        first = event.seq if first is None else first
        if view is not None:
            view.apply(event)
        if event.is_terminal:
            terminal = event.seq
    return Scanned(first, terminal)


async def final_values(gateway: Gateway, run: RunRecord, *, after: int = 0) -> dict[str, Any]:
    """Wait for the run to finish; its final values (runs.wait, join, cancel with wait)."""
    final = await gateway.supervisor.wait(run.run_id)
    view = RunView(final, graph=is_graph_run(gateway, final))
    async for event in run_events(gateway.store, final.thread_id, final.run_id, after=after):
        view.apply(event)
    return view.final(final)


def is_graph_run(gateway: Gateway, run: RunRecord) -> bool:
    """True when the run's agent is a LangGraph graph (its updates are its own)."""
    if run.agent not in gateway.registry:
        return False
    return getattr(gateway.registry.get(run.agent).fn, "is_langgraph_graph", False) is True


class RunStream(QueuedStream):
    """A hub sink that streams one run's events as LangGraph parts."""

    def __init__(
        self,
        gateway: Gateway,
        user: str,
        modes: tuple[str, ...],
        *,
        on_abandon: Callable[[str], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.user = user
        self.modes = frozenset(modes)
        self.on_abandon = on_abandon
        """Called when the client goes away before the run ended (`on_disconnect=cancel`)."""
        self.run_id = ""
        self.view: RunView | None = None
        self.metadata_after = 0
        self.started = False
        self.done = False
        super().__init__(gateway.settings.ws_queue_size)
        self._ended_by_server = False
        self._subscription: Subscription | None = None
        self._released = False

    # hub sink
    def subscription_failed(self, subscription: Subscription, exc: Exception) -> None:
        """Catching up failed (events pruned, store down): end the stream."""
        logger.warning("run stream of %s ended: %s", self.run_id, exc)
        self.close()

    def close(self) -> None:
        """End the stream after what is queued (shutdown, lagging, failure)."""
        self._ended_by_server = True
        super().close()

    def shutdown(self) -> None:
        """The server is shutting down: end the stream."""
        self.close()

    # life
    async def subscribe(self, thread_id: str, after_seq: int | None) -> Subscription:
        """Register with the hub (before the run starts or the store is read); 410 when
        the events after `after_seq` were pruned."""
        try:
            self._subscription = await self.gateway.hub.subscribe(thread_id, self, after_seq)
        except EventsGone as exc:
            metrics.refusals.labels(metrics.REASON_GONE).inc()
            raise errors.gone(exc) from exc
        return self._subscription

    def bind(self, run_id: str, view: RunView, *, metadata_after: int, started: bool) -> None:
        """Which run to stream: the metadata part is sent before the run's first event
        if that event's seq - 1 is above `metadata_after` (and the run has not `started`
        before the stream's starting point)."""
        self.run_id = run_id
        self.view = view
        self.metadata_after = metadata_after
        self.started = started

    def response(self, headers: dict[str, str]) -> StreamingResponse:
        """The streaming answer; it releases the stream however it ends."""
        return StreamResponse(
            self, self._body(), media_type=SSE_MEDIA_TYPE, headers={**HEADERS, **headers}
        )

    def release(self) -> None:
        """Give back the subscription and the user's connection slot (idempotent)."""
        self.closed = True
        if self._released:
            return
        self._released = True
        if self._subscription is not None:
            self.gateway.hub.release(self._subscription)
        self.gateway.detach(self)
        self.gateway.user_connections.release(self.user)

    def render(self, event: Event) -> bytes:
        """The parts of one event of the thread (nothing for other runs' events)."""
        if event.run_id != self.run_id or self.done:
            return b""
        parts = []
        if not self.started:
            self.started = True
            if event.seq - 1 > self.metadata_after:
                parts.append(metadata_part(self.run_id, event.seq - 1))
        if CUSTOM in self.modes:
            parts.append(custom_part(event))
        if self.view is not None:
            derived = self.view.apply(event)
            parts.extend(p for p in derived if p.mode is None or p.mode in self.modes)
        if event.is_terminal:
            self.done = True
        return b"".join(part.encode() for part in parts)

    async def _body(self) -> AsyncIterator[bytes]:
        sub = self._subscription
        assert sub is not None
        keepalive = self.gateway.settings.sse_keepalive
        try:
            sub.start()
            while not self.done:
                if wires := self.take():
                    chunk = b"".join(self.render(wire.event) for wire in wires)
                    if chunk:
                        yield chunk
                    continue
                if self.closed:
                    return
                if not await self.wait(keepalive):
                    yield KEEPALIVE
            # The SDK reads the run when the stream ends: its status must be final by
            # then, and it is stored one write after the terminal event (ADR 0066).
            await self.gateway.supervisor.settled(self.run_id, within=STATUS_WAIT)
        finally:
            gone = not self.done and not self._ended_by_server
            self.closed = True
            if gone and self.on_abandon is not None and self.run_id:
                self.on_abandon(self.run_id)


async def empty_stream() -> AsyncIterator[bytes]:
    """A stream with no parts (a run that ended at or before the client's last event)."""
    for _ in ():
        yield b""
