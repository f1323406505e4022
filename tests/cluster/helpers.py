"""Helpers of the cluster suite: async conditions, Redis peeks, a store with runs of nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from threadwire.bus.base import Bus
from threadwire.events import AGENT_STARTED, RUN_QUEUED, Event, NewEvent, utcnow
from threadwire.ids import new_event_id, new_run_id, new_thread_id
from threadwire.runtime.coordinator import Coordinator
from threadwire.store.base import RunRecord, RunStatus, Store


async def eventually(
    condition: Callable[[], Awaitable[object]], within: float = 10.0, what: str = "condition"
) -> None:
    """Re-check an async condition (a Redis or store read) until it holds, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


async def start_run(
    store: Store,
    coordinator: Coordinator,
    node_id: str | None,
    *,
    thread_id: str | None = None,
    status: RunStatus = "running",
) -> RunRecord:
    """A run of `node_id` as the supervisor leaves it mid-way: recorded, with its first
    events (`run_queued`, and `agent_started` once running) stored and published."""
    if thread_id is None:
        thread_id = new_thread_id()
        await store.create_thread(thread_id, "user_1")
    run = RunRecord(
        run_id=new_run_id(thread_id),
        thread_id=thread_id,
        agent="demo",
        status=status,
        created_at=utcnow(),
        owner="user_1",
        node_id=node_id,
    )
    await store.create_run(run)
    types = [RUN_QUEUED] if status == "queued" else [RUN_QUEUED, AGENT_STARTED]
    await emit(coordinator, run, *types)
    return run


async def emit(
    coordinator: Coordinator, run: RunRecord, *types: str, data: dict[str, Any] | None = None
) -> list[Event]:
    """Store and publish events of `run` through the one event path."""
    return await coordinator.emit(
        [NewEvent(new_event_id(), run.thread_id, run.run_id, t, utcnow(), dict(data or {}))
         for t in types]
    )


async def terminal_events_of(store: Store, run: RunRecord) -> list[Event]:
    """Every stored terminal event of `run`."""
    events = await store.read_events(run.thread_id, after_seq=0, limit=1000)
    return [e for e in events if e.run_id == run.run_id and e.is_terminal]


def coordinator_over(store: Store, bus: Bus) -> Coordinator:
    """The one event path over `store` and `bus`."""
    return Coordinator(store, bus)
