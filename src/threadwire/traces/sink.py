"""The trace sink: exports stored events to ClickHouse in batches, off the event path.

`submit(events)` is synchronous, allocation-only and never raises: it appends to a
bounded buffer and returns. One background task turns buffered events into rows
(in a worker thread) and writes them in batches. While the target is down the batch
is retried with backoff and the buffer absorbs new events; once it is full, new
events are dropped and counted (`threadwire_trace_events_dropped_total{reason}`).
Delivery never waits on traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from threadwire.events import Event
from threadwire.store.base import RunRecord
from threadwire.traces import metrics
from threadwire.traces.rows import RunTracker, TraceRows
from threadwire.traces.target import TraceTarget, TraceTargetError, create_trace_target

log = logging.getLogger(__name__)

MAX_REFUSALS = 3
"""Attempts at a batch the (reachable) target keeps refusing before it is dropped."""

RunLookup = Callable[[str], Awaitable[RunRecord | None]]
"""run_id -> its record (e.g. `store.get_run`): names the agent of a run the sink
meets without having been told about it."""


class TraceSink:
    """Batches events into a TraceTarget; `start()`, `submit()`..., `close()`.

    `max_buffer` bounds the events held (buffered plus the batch being written);
    `batch_size` events, or whatever arrived within `flush_interval` seconds, make a
    write; a failed write is retried after `retry_initial` seconds, doubling up to
    `retry_max`. Use it from one event loop (submit is not thread-safe).
    """

    def __init__(
        self,
        target: TraceTarget,
        *,
        lookup_run: RunLookup | None = None,
        max_buffer: int = 100_000,
        batch_size: int = 5_000,
        flush_interval: float = 1.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        max_open_runs: int = 100_000,
    ) -> None:
        if max_buffer < 1 or batch_size < 1:
            raise ValueError(
                f"max_buffer and batch_size must be >= 1, got {max_buffer} and {batch_size}"
            )
        self.target = target
        self.lookup_run = lookup_run
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._tracker = RunTracker(max_open_runs=max_open_runs)
        self._buffer: deque[Event] = deque()
        self._hints: deque[RunRecord] = deque(maxlen=10_000)
        self._accepted = 0
        self._settled = 0
        self._inflight = 0
        self._flush_to = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._opened = False
        self.written = 0
        self.dropped = 0

    @property
    def buffered(self) -> int:
        """Events accepted and not yet written or dropped."""
        return self._accepted - self._settled

    def submit(self, events: Sequence[Event]) -> None:
        """Queue stored events for export; never blocks, never raises.

        Call it from the event loop's thread after the events are persisted (e.g. right
        after the coordinator publishes them), in each thread's seq order.
        """
        if self._closing:
            self._drop("shutdown", len(events))
            return
        room = self.max_buffer - len(self._buffer) - self._inflight
        if room >= len(events):
            self._buffer.extend(events)
            taken = len(events)
        else:
            taken = max(room, 0)
            self._buffer.extend(events[:taken])
            self._drop("buffer_full", len(events) - taken)
        self._accepted += taken
        metrics.buffered_events.inc(taken)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    def submit_run(self, run: RunRecord) -> None:
        """Tell the sink a run's agent and times (optional: saves a store lookup)."""
        self._hints.append(run)

    async def start(self) -> None:
        """Start the background writer; the target is opened there, with retries."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="threadwire-trace-sink")

    async def flush(self) -> None:
        """Wait until every event submitted so far is written (or dropped).

        While the target is down this waits for it: bound it with `asyncio.timeout`.
        """
        goal = self._accepted
        if self._task is None and self._settled < goal:
            raise RuntimeError("the trace sink is not running: await start() first")
        self._flush_to = max(self._flush_to, goal)
        self._wake.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._settled >= goal)

    async def close(self, grace: float = 10.0) -> None:
        """Write what is buffered (for up to `grace` seconds), then stop and close the
        target; what is still buffered then is dropped and counted."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = len(self._buffer) + self._inflight
        if left:
            self._buffer.clear()
            self._inflight = 0
            self._drop("shutdown", left)
            await self._settle(left)
        try:
            await self.target.close()
        except TraceTargetError as exc:
            log.warning("closing trace target %s: %s", self.target.url, exc)

    # the background writer

    def _drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped += count
            metrics.events_dropped.labels(reason).inc(count)

    async def _settle(self, count: int) -> None:
        async with self._progress:
            self._settled += count
            self._progress.notify_all()
        metrics.buffered_events.dec(count)

    def _urgent(self) -> bool:
        return self._closing or self._flush_to > self._settled

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less when submit, flush or close wakes the writer."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _run(self) -> None:
        while True:
            if len(self._buffer) < self.batch_size and not self._urgent():
                await self._pause(self.flush_interval)
            if not self._buffer:
                if self._closing:
                    return
                continue
            count = min(len(self._buffer), self.batch_size)
            batch = [self._buffer.popleft() for _ in range(count)]
            self._inflight = count  # close() counts it as dropped if it cancels us here
            try:
                await self._export(batch)
            except Exception:
                log.exception("trace sink: exporting %d events failed", count)
                self._drop("error", count)
            self._inflight = 0
            await self._settle(count)

    async def _export(self, batch: list[Event]) -> None:
        try:
            rows = await self._rows(batch)
        except Exception:
            log.exception("trace sink: turning %d events into rows failed", len(batch))
            self._drop("error", len(batch))
            return
        delay = self.retry_initial
        refusals = 0
        while True:
            try:
                await self._write(rows)
            except TraceTargetError as exc:
                metrics.write_errors.inc()
                # A target that answers a ping but fails the insert refuses this batch:
                # retry a few times (it may be throttling), then drop it, not the sink.
                if self._opened and await self._alive():
                    refusals += 1
                    if refusals >= MAX_REFUSALS:
                        log.error(
                            "trace target %s refused %d events: %s",
                            self.target.url,
                            len(batch),
                            exc,
                        )
                        self._drop("rejected", len(batch))
                        return
                log.warning(
                    "trace target %s unavailable (%s); %d events buffered, retrying in %.1fs",
                    self.target.url,
                    exc,
                    self.buffered,
                    delay,
                )
                await self._pause(delay)
                delay = min(delay * 2, self.retry_max)
            else:
                self.written += len(batch)
                metrics.events_written.inc(len(batch))
                return

    async def _rows(self, batch: list[Event]) -> TraceRows:
        while self._hints:
            self._tracker.note_run(self._hints.popleft())
        if self.lookup_run is not None:
            for run_id in sorted(self._tracker.unknown_runs(batch)):
                try:
                    run = await self.lookup_run(run_id)
                except Exception as exc:  # the store is someone else's outage
                    log.warning("trace sink: looking up run %r failed: %s", run_id, exc)
                    continue
                if run is not None:
                    self._tracker.note_run(run)
        # Only this task touches the tracker, so a worker thread may run it.
        return await asyncio.to_thread(self._tracker.rows, batch)

    async def _write(self, rows: TraceRows) -> None:
        if not self._opened:
            await self.target.open()
            self._opened = True
        # events first: a run row never appears without the events that made it
        for table, columns, types, table_rows in rows.by_table():
            await self.target.insert(table, columns, types, table_rows)

    async def _alive(self) -> bool:
        try:
            await self.target.ping()
        except TraceTargetError:
            return False
        return True


def create_trace_sink(
    url: str,
    *,
    lookup_run: RunLookup | None = None,
    max_buffer: int = 100_000,
    batch_size: int = 5_000,
    flush_interval: float = 1.0,
) -> TraceSink:
    """A sink writing to the target `url` names (see `create_trace_target`).

    Raises TraceTargetError at once for a bad URL or a missing driver extra; an
    unreachable target is not an error here (the sink buffers and retries).
    """
    return TraceSink(
        create_trace_target(url),
        lookup_run=lookup_run,
        max_buffer=max_buffer,
        batch_size=batch_size,
        flush_interval=flush_interval,
    )
