"""A run's end is written event first, status second (ADR 0066), so a crash between the
two leaves a run that recovery finds and settles without a second terminal event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadwire.bus.memory import MemoryBus
from threadwire.events import utcnow
from threadwire.ids import new_run_id
from threadwire.runtime import AgentRegistry, RunContext, Supervisor
from threadwire.runtime.context import new_event
from threadwire.store import Store
from threadwire.store.base import RunRecord

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT, assert_run_life


class CrashBeforeStatus:
    """The store as a process sees it that dies right after storing a terminal event:
    every final status update fails (the process never got to make it)."""

    def __init__(self, inner: Store, log: list[str]) -> None:
        self._inner = inner
        self.log = log
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        if changes.get("status") in {"completed", "failed", "cancelled"}:
            self.log.append("status")
            raise ConnectionError("the process died before recording the status")
        return await self._inner.update_run(run_id, **changes)


class OrderedCoordinator(RecordingCoordinator):
    """Notes when a terminal event is stored, in the same log as status updates."""

    def __init__(self, store: Any, log: list[str]) -> None:
        super().__init__(store, MemoryBus())
        self.log = log

    async def emit(self, events: Any, *, idempotency_key: str | None = None) -> Any:
        stored = await super().emit(events, idempotency_key=idempotency_key)
        self.log.extend("event" for e in stored if e.is_terminal)
        return stored


@pytest.mark.parametrize("end", ["complete", "cancel"])
async def test_the_terminal_event_is_stored_before_the_status_and_recovery_settles_it(
    store: Store, registry: AgentRegistry, thread_id: str, end: str
) -> None:
    log: list[str] = []
    crashing: Any = CrashBeforeStatus(store, log)
    coordinator = OrderedCoordinator(crashing, log)
    release = asyncio.Event()

    async def held(ctx: RunContext, input: dict[str, Any]) -> str:
        await release.wait()
        return "ok"

    registry.register("held", held)
    dying = Supervisor(crashing, coordinator, registry, node_id="n1")
    run = await dying.submit(user_id="u", thread_id=thread_id, agent="held", input={})
    if end == "cancel":
        await dying.cancel(run.run_id)
    else:
        release.set()
        await dying.wait(run.run_id, timeout=WAIT)
    await dying.shutdown(grace=0)

    assert log == ["event", "status"]
    # What the crash left: a terminal event, and a status that still says unfinished.
    left = await store.get_run(run.run_id)
    assert left is not None and not left.finished

    survivor = Supervisor(store, RecordingCoordinator(store, MemoryBus()), registry, node_id="n1")
    [settled] = await survivor.start()
    assert settled.run_id == run.run_id
    assert settled.status == ("completed" if end == "complete" else "cancelled")
    events = await store.read_events(thread_id, after_seq=0, limit=100)
    assert_run_life([e for e in events if e.run_id == run.run_id])
    assert await survivor.start() == []


async def test_an_orphan_is_ended_event_first_and_only_once(
    make_supervisor: SupervisorFactory,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    """A run left `running` whose terminal event did get stored is settled, not ended
    again; one without gets its `interrupted` error."""
    ended, open_ = (
        await _left_running(store, coordinator, thread_id),
        await _left_running(store, coordinator, thread_id),
    )
    await coordinator.emit([new_event(ended.run_id, thread_id, "agent_completed", {"result": 7})])

    recovered = {r.run_id: r for r in await make_supervisor(node_id="n1").start()}

    assert recovered[ended.run_id].status == "completed"
    assert recovered[ended.run_id].result == 7
    assert recovered[open_.run_id].status == "failed"
    assert recovered[open_.run_id].error == {
        "code": "interrupted",
        "message": "the node stopped before the run ended",
    }
    for run in (ended, open_):
        assert_run_life(coordinator.of_run(run.run_id))


async def _left_running(
    store: Store, coordinator: RecordingCoordinator, thread_id: str
) -> RunRecord:
    run = RunRecord(
        run_id=new_run_id(thread_id), thread_id=thread_id, agent="demo", status="running",
        created_at=utcnow(), owner="u", started_at=utcnow(), node_id="n1",
    )  # fmt: skip
    await store.create_run(run)
    await coordinator.emit([new_event(run.run_id, thread_id, "run_queued", {})])
    await coordinator.emit([new_event(run.run_id, thread_id, "agent_started", {})])
    return run


async def test_settled_waits_for_the_status_that_follows_the_terminal_event(
    make_supervisor: SupervisorFactory,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    elsewhere = await _left_running(store, coordinator, thread_id)
    supervisor = make_supervisor(node_id="n2")
    assert await supervisor.settled(elsewhere.run_id, within=0.05) is None

    async def finish_later() -> None:
        await asyncio.sleep(0.1)  # the owner's status write, a moment after its event
        await store.update_run(elsewhere.run_id, status="completed", finished_at=utcnow())

    finisher = asyncio.create_task(finish_later())
    settled = await supervisor.settled(elsewhere.run_id, within=WAIT)
    await finisher
    assert settled is not None and settled.status == "completed"
