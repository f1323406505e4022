"""The runtime under the store's run-life rule (decision 0111): a run the cluster ended
with `node_lost` while its node was still alive (a pause, 0064) gets nothing more from
that node, and the node neither crashes nor loops over the refusal."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from tests.store.helpers import new_event, new_run

from threadwire.cluster.recovery import NODE_LOST, end_runs_of_node
from threadwire.events import AGENT_COMPLETED, AGENT_ERROR
from threadwire.runtime import AgentRegistry, RunContext
from threadwire.runtime.errors import RunFinished
from threadwire.store import RunEnded, Store

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT


class Paused:
    """An agent that emits once, waits for the test, then tries to emit and finish."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go_on = asyncio.Event()
        self.refusal: BaseException | None = None

    async def agent(self, ctx: RunContext, input: dict[str, Any]) -> str:
        await ctx.message("before the pause")
        self.started.set()
        await self.go_on.wait()
        try:
            await ctx.message("after the pause")
        except RunFinished as exc:
            self.refusal = exc
            raise
        return "done"


def _stored_types(coordinator: RecordingCoordinator, run_id: str) -> list[str]:
    return coordinator.types(run_id)


async def test_a_run_ended_by_the_cluster_takes_no_more_events_from_its_node(
    thread_id: str,
    store: Store,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    make_supervisor: SupervisorFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    paused = Paused()
    registry.register("paused", paused.agent)
    supervisor = make_supervisor(node_id="node-a")
    run = await supervisor.submit(user_id="alice", thread_id=thread_id, agent="paused", input={})
    await asyncio.wait_for(paused.started.wait(), WAIT)

    # Another node takes node-a for dead and ends its runs, while node-a's agent waits.
    recovered = await end_runs_of_node(store, coordinator, "node-a")
    assert [r.run_id for r in recovered.failed] == [run.run_id]

    with caplog.at_level(logging.WARNING, logger="threadwire.runtime"):
        paused.go_on.set()
        final = await supervisor.wait(run.run_id, timeout=WAIT)
    # The agent hears the run is over, as from a context the supervisor closed.
    assert isinstance(paused.refusal, RunFinished)
    assert paused.refusal.status == "failed"
    assert isinstance(paused.refusal.__cause__, RunEnded)
    assert final.status == "failed" and final.error is not None
    assert final.error["code"] == NODE_LOST
    stored = await store.get_run(run.run_id)
    assert stored == final
    types = _stored_types(coordinator, run.run_id)
    assert types == ["run_queued", "agent_started", "agent_message", AGENT_ERROR]
    assert supervisor.running_count == 0
    assert any("the stored end stands" in r.getMessage() for r in caplog.records)


async def test_a_queued_run_the_cluster_ended_is_never_started(
    thread_id: str,
    store: Store,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    make_supervisor: SupervisorFactory,
) -> None:
    paused = Paused()
    registry.register("paused", paused.agent)
    supervisor = make_supervisor(node_id="node-a", max_concurrent_runs=1)
    first = await supervisor.submit(user_id="alice", thread_id=thread_id, agent="paused", input={})
    queued = await supervisor.submit(user_id="alice", thread_id=thread_id, agent="paused", input={})
    await asyncio.wait_for(paused.started.wait(), WAIT)
    await end_runs_of_node(store, coordinator, "node-a")

    paused.go_on.set()  # the first run ends, and the queued one gets its slot
    for run in (first, queued):
        final = await supervisor.wait(run.run_id, timeout=WAIT)
        assert final.status == "failed" and final.error is not None
        assert final.error["code"] == NODE_LOST
        stored = await store.get_run(run.run_id)
        assert stored is not None and stored.status == "failed"
    # Its `agent_started` was refused, so its agent never ran.
    assert _stored_types(coordinator, queued.run_id) == ["run_queued", AGENT_ERROR]
    assert supervisor.running_count == 0 and supervisor.queued_count == 0


async def test_a_cancel_that_loses_the_race_to_the_workers_end_is_run_finished(
    thread_id: str,
    store: Store,
    coordinator: RecordingCoordinator,
    make_supervisor: SupervisorFactory,
) -> None:
    supervisor = make_supervisor()
    run = await store.create_run(new_run(thread_id, status="running"))
    [ended] = await coordinator.emit([new_event(thread_id, run.run_id, AGENT_COMPLETED)])
    # The worker's end is stored; its status is not yet (the status-second writer's window).
    with pytest.raises(RunFinished) as refused:
        await supervisor.cancel(run.run_id)
    assert refused.value.status == "completed"
    settled = await store.get_run(run.run_id)
    assert settled is not None and settled.status == "completed"
    assert settled.finished_at == ended.ts
    assert _stored_types(coordinator, run.run_id) == [AGENT_COMPLETED]


async def test_recovery_that_loses_the_race_to_the_nodes_own_end_settles_it(
    thread_id: str, store: Store, coordinator: RecordingCoordinator
) -> None:
    run = await store.create_run(new_run(thread_id, status="running", node_id="node-a"))
    real_emit = coordinator.emit

    async def node_ends_it_first(*args: Any, **kw: Any) -> Any:
        # The node, paused rather than dead, stores its own end just before recovery's.
        coordinator.emit = real_emit  # type: ignore[method-assign]
        await real_emit([new_event(thread_id, run.run_id, AGENT_COMPLETED, data={"result": 7})])
        return await real_emit(*args, **kw)

    coordinator.emit = node_ends_it_first  # type: ignore[method-assign]
    recovered = await end_runs_of_node(store, coordinator, "node-a")
    assert recovered.failed == []
    [settled] = recovered.settled
    assert (settled.status, settled.result) == ("completed", 7)
    assert _stored_types(coordinator, run.run_id) == [AGENT_COMPLETED]
