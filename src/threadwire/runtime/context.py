"""The execution context an agent receives: who and where it runs, and its event helpers.

Every event an agent produces goes through `RunContext` to the Coordinator (store,
then bus); the context stamps the run's canonical IDs, so an agent never handles an
ID string. Once the supervisor has written the run's terminal event the context is
closed and any further emit raises `RunFinished`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from threadwire.events import (
    AGENT_MESSAGE,
    AGENT_STARTED,
    AGENT_THINKING,
    RUN_QUEUED,
    TERMINAL_TYPES,
    TOOL_COMPLETED,
    TOOL_EXECUTING,
    Event,
    NewEvent,
    dumps,
    is_valid_event_type,
    utcnow,
)
from threadwire.ids import new_event_id
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.errors import RunFinished
from threadwire.store.base import STATUS_OF_TERMINAL, RunEnded

RESERVED_TYPES: Final = frozenset({RUN_QUEUED, AGENT_STARTED, *TERMINAL_TYPES})
"""Lifecycle events only the runtime writes; `ctx.emit` refuses them."""
MAX_IN_FLIGHT: Final = 1024
"""Events of one run that `emit_nowait` lets wait for the store at once."""

logger = logging.getLogger("threadwire.runtime")


def new_event(
    run_id: str, thread_id: str, type: str, data: dict[str, Any], data_json: bytes | None = None
) -> NewEvent:
    """A NewEvent for a run whose canonical IDs the caller already holds."""
    return NewEvent(new_event_id(), thread_id, run_id, type, utcnow(), data, data_json)


def check_json(data: object, what: str) -> bytes:
    """`data` as JSON; TypeError unless it is JSON (the store and every subscriber need it)."""
    try:
        return dumps(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None


class ToolCall:
    """One tool call in progress; set `.result` (or call `set_result`/`set_error`)."""

    def __init__(self, name: str, args: dict[str, Any], index: int) -> None:
        self.name = name
        self.args = args
        self.index = index
        self.result: Any = None
        self.error: str | None = None

    def set_result(self, value: Any) -> None:
        """Record the tool's result (JSON), reported in `tool_completed`."""
        self.result = value

    def set_error(self, message: str) -> None:
        """Record a failure without raising: `tool_completed` carries `error`."""
        self.error = message


class RunContext:
    """What an agent knows of its run, and the only way it emits events.

    >>> async def agent(ctx: RunContext, input: dict[str, Any]) -> str:
    ...     await ctx.thinking("looking it up")
    ...     async with ctx.tool("search", {"q": input["prompt"]}) as call:
    ...         call.result = ["a hit"]
    ...     await ctx.message("found a hit")
    ...     return "done"
    """

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        user_id: str,
        thread_id: str,
        run_id: str,
        agent: str,
    ) -> None:
        self.user_id = user_id
        self.thread_id = thread_id
        self.run_id = run_id
        self.agent = agent
        self.cancelled = asyncio.Event()
        """Set when the run is cancelled or timed out; the agent's task is also cancelled."""
        self._coordinator = coordinator
        self._lock = asyncio.Lock()
        self._closed = False
        self._tool_calls = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._batch: list[tuple[NewEvent, asyncio.Future[Event]]] = []
        self._waiting = 0

    @property
    def closed(self) -> bool:
        """True once the run's terminal event is written."""
        return self._closed

    async def thinking(self, text: str) -> Event:
        """Emit `agent_thinking` {"text": text}."""
        return await self._emit(AGENT_THINKING, {"text": text})

    async def message(self, chunk: str) -> Event:
        """Emit one `agent_message` {"text": chunk} (a whole message or a streamed token)."""
        return await self._emit(AGENT_MESSAGE, {"text": chunk})

    async def emit(self, type: str, data: dict[str, Any] | None = None) -> Event:
        """Emit an event of `type` (custom types allowed; lifecycle types are not)."""
        return await self._emit(type, _agent_data(type, data))

    def emit_nowait(self, type: str, data: dict[str, Any] | None = None) -> asyncio.Future[Event]:
        """Emit without waiting for the store: for agents that produce faster than one
        commit per event (streamed tokens).

        The event is stored, then delivered, in call order with every other event of
        the run, and before its terminal event; no subscriber sees it before it is
        stored. Events emitted during one pass of the event loop are stored together,
        as one append. Await the returned future for the stored event (or the reason
        it was not stored), or `flush()` for all of them. Raises `asyncio.QueueFull`
        when MAX_IN_FLIGHT events of the run are still waiting for the store.
        """
        data = _agent_data(type, data)
        data_json = check_json(data, f"data of {type!r}")
        if self._closed:
            raise RunFinished(self.run_id, "finished")
        if self._failure is not None:
            raise self._failure
        if self._waiting >= MAX_IN_FLIGHT:
            raise asyncio.QueueFull(
                f"{MAX_IN_FLIGHT} events of run {self.run_id} are waiting for the store: "
                "await some of them or ctx.flush()"
            )
        return self._queue(type, data, data_json)

    async def flush(self) -> None:
        """Wait until every event emitted so far is stored and announced; raises the
        first error of any of them."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight)
        if self._failure is not None:
            raise self._failure

    @asynccontextmanager
    async def tool(
        self, name: str, args: dict[str, Any] | None = None, *, call_id: str | None = None
    ) -> AsyncIterator[ToolCall]:
        """Bracket a tool call: `tool_executing` on entry, `tool_completed` on exit.

        `tool_completed` carries `result` or `error` and `duration_ms`. An exception in
        the block is reported as the error (its class name only) and propagates.
        """
        self._tool_calls += 1
        call = ToolCall(name, dict(args or {}), self._tool_calls)
        head: dict[str, Any] = {"tool": name, "call": call.index}
        if call_id is not None:
            head["call_id"] = call_id
        await self._emit(TOOL_EXECUTING, {**head, "args": call.args})
        started = time.monotonic()
        try:
            yield call
        except (Exception, asyncio.CancelledError) as exc:
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else None
            error = reason or call.error or f"tool failed ({exc.__class__.__name__})"
            data = {**head, "duration_ms": _elapsed_ms(started), "error": error}
            if not self._closed:  # a finished run's context takes nothing more
                await self._emit(TOOL_COMPLETED, data)
            raise
        data = {**head, "duration_ms": _elapsed_ms(started)}
        if call.error is not None:
            data["error"] = call.error
        else:
            try:
                check_json(call.result, f"result of tool {name!r}")
            except TypeError:
                await self._emit(TOOL_COMPLETED, {**data, "error": "result is not JSON"})
                raise
            data["result"] = call.result
        await self._emit(TOOL_COMPLETED, data)

    async def _emit(self, type: str, data: dict[str, Any]) -> Event:
        data_json = check_json(data, f"data of {type!r}")
        if self._failure is not None:
            raise self._failure
        if self._in_flight:
            # Behind the events still in flight: a batch's task queues it for the store
            # in its first step, and tasks take their first step in the order made.
            if self._closed:
                raise RunFinished(self.run_id, "finished")
            return await self._queue(type, data, data_json)
        async with self._lock:
            if self._closed:
                raise RunFinished(self.run_id, "finished")
            try:
                stored = await self._coordinator.emit(
                    [new_event(self.run_id, self.thread_id, type, data, data_json)]
                )
            except RunEnded as exc:
                raise self._ended(exc) from exc
        return stored[0]

    def _ended(self, exc: RunEnded) -> RunFinished:
        """The store holds the run's end already (the cluster ended it while this node
        was unreachable): the context closes, as if the supervisor had ended it."""
        self._closed = True
        status = STATUS_OF_TERMINAL.get(exc.terminal.type, "ended") if exc.terminal else "ended"
        finished = RunFinished(self.run_id, status)
        finished.__cause__ = exc
        return finished

    def _queue(self, type: str, data: dict[str, Any], data_json: bytes) -> asyncio.Future[Event]:
        """Add the event to this pass's batch, whose task stores it in the next pass."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Event] = loop.create_future()
        self._batch.append((new_event(self.run_id, self.thread_id, type, data, data_json), future))
        self._waiting += 1
        if len(self._batch) == 1:
            task = loop.create_task(self._store_batch())
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return future

    async def _store_batch(self) -> None:
        batch, self._batch = self._batch, []
        try:
            stored = await self._coordinator.emit([event for event, _ in batch])
        except RunEnded as exc:
            self._landed(batch, self._ended(exc))
            return
        except BaseException as exc:
            self._landed(batch, exc)
            if isinstance(exc, Exception):
                return  # recorded: the run's next emit or flush raises it
            raise
        self._waiting -= len(batch)
        for (_, future), event in zip(batch, stored, strict=True):
            if not future.done():  # the agent may have cancelled its wait
                future.set_result(event)

    def _landed(
        self, batch: list[tuple[NewEvent, asyncio.Future[Event]]], exc: BaseException
    ) -> None:
        """A batch was not stored: each of its futures says why, and the run's next emit
        (and `flush`) raises the first failure, so no later event hides a lost one."""
        self._waiting -= len(batch)
        failure = exc if isinstance(exc, Exception) else StoreNotReached(exc)
        for _, future in batch:
            if not future.done():
                future.set_exception(failure)
                future.exception()  # retrieved: the failure is logged once, below
        if self._failure is None:
            self._failure = failure
            logger.warning(
                "run %s: %d event(s) emitted without waiting were not stored: %r",
                self.run_id,
                len(batch),
                exc,
            )

    async def _finish(self, type: str, data: dict[str, Any]) -> Event:
        """Close the context and write the run's terminal event after everything emitted."""
        async with self._lock:
            self._closed = True
            if self._in_flight:  # queued in order already; announced before the end
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            stored = await self._coordinator.emit(
                [new_event(self.run_id, self.thread_id, type, data)]
            )
        return stored[0]


class StoreNotReached(Exception):
    """A batch of `emit_nowait` events was interrupted (cancelled) before the store
    answered: whether it was stored is unknown."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"interrupted before the store answered: {cause!r}")


def _agent_data(type: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """Check what an agent passes to `emit`; a copy of its data."""
    if not is_valid_event_type(type):
        raise ValueError(f"event type {type!r} is not 1 to 64 characters of a-z 0-9 _ . : -")
    if type in RESERVED_TYPES:
        raise ValueError(f"event type {type!r} is written by the runtime, not by agents")
    if data is not None and not isinstance(data, dict):
        raise TypeError(f"event data must be a dict, not {data.__class__.__name__}")
    return dict(data or {})


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
