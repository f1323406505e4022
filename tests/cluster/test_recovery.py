"""Ending a dead node's runs: one terminal `agent_error` `node_lost` each, never a second."""

from __future__ import annotations

import pytest
from tests.bus.helpers import Collector
from tests.cluster.helpers import emit, start_run, terminal_events_of

from threadwire.bus.memory import MemoryBus
from threadwire.cluster.recovery import NODE_LOST, end_runs_of_node, terminal_events
from threadwire.events import AGENT_COMPLETED, AGENT_ERROR, AGENT_MESSAGE, RUN_CANCELLED
from threadwire.runtime.coordinator import Coordinator
from threadwire.store.memory import MemoryStore


@pytest.fixture
async def path() -> Coordinator:
    """The one event path over an in-memory store and bus."""
    return Coordinator(MemoryStore(), MemoryBus())


async def test_every_unfinished_run_of_the_node_fails_with_node_lost(path: Coordinator) -> None:
    store = path.store
    running = await start_run(store, path, "node-a")
    queued = await start_run(store, path, "node-a", status="queued")
    recovered = await end_runs_of_node(store, path, "node-a")
    assert {r.run_id for r in recovered.failed} == {running.run_id, queued.run_id}
    assert recovered.settled == []
    for run in (running, queued):
        [terminal] = await terminal_events_of(store, run)
        assert terminal.type == AGENT_ERROR
        assert terminal.data["code"] == NODE_LOST
        record = await store.get_run(run.run_id)
        assert record is not None
        assert record.status == "failed"
        assert record.error is not None and record.error["code"] == NODE_LOST
        assert record.finished_at == terminal.ts


async def test_runs_of_other_nodes_and_finished_runs_are_left_alone(path: Coordinator) -> None:
    store = path.store
    other = await start_run(store, path, "node-b")
    worker = await start_run(store, path, None)  # an external worker's run
    done = await start_run(store, path, "node-a")
    await emit(path, done, AGENT_COMPLETED, data={"result": "ok"})
    await store.update_run(done.run_id, status="completed")
    recovered = await end_runs_of_node(store, path, "node-a")
    assert recovered.failed == recovered.settled == []
    for run in (other, worker):
        assert await terminal_events_of(store, run) == []
    assert len(await terminal_events_of(store, done)) == 1


@pytest.mark.parametrize(
    ("terminal", "data", "status"),
    [
        (AGENT_COMPLETED, {"result": {"answer": 42}}, "completed"),
        (AGENT_ERROR, {"code": "timeout", "message": "too slow"}, "failed"),
        (RUN_CANCELLED, {"reason": "cancelled"}, "cancelled"),
    ],
)
async def test_a_run_whose_terminal_event_is_stored_gets_no_second_one(
    path: Coordinator, terminal: str, data: dict[str, object], status: str
) -> None:
    # The node wrote the terminal event, then died before recording the final status.
    store = path.store
    run = await start_run(store, path, "node-a")
    await emit(path, run, AGENT_MESSAGE, data={"text": "hi"})
    [event] = await emit(path, run, terminal, data=data)
    recovered = await end_runs_of_node(store, path, "node-a")
    assert recovered.failed == []
    [settled] = recovered.settled
    assert settled.status == status
    assert settled.finished_at == event.ts
    if status == "completed":
        assert settled.result == {"answer": 42}
    if status == "failed":
        assert settled.error == data
    assert await terminal_events_of(store, run) == [event]


async def test_running_it_again_changes_nothing(path: Coordinator) -> None:
    store = path.store
    run = await start_run(store, path, "node-a")
    await end_runs_of_node(store, path, "node-a")
    again = await end_runs_of_node(store, path, "node-a")
    assert again.failed == again.settled == []
    assert len(await terminal_events_of(store, run)) == 1


async def test_subscribers_see_the_terminal_event(path: Coordinator) -> None:
    store = path.store
    run = await start_run(store, path, "node-a")
    got = Collector()
    await path.bus.subscribe(run.thread_id, got)
    await end_runs_of_node(store, path, "node-a")
    [event] = got.events
    assert (event.run_id, event.type, event.data["code"]) == (run.run_id, AGENT_ERROR, NODE_LOST)


async def test_several_runs_of_one_thread_each_get_one(path: Coordinator) -> None:
    store = path.store
    first = await start_run(store, path, "node-a")
    second = await start_run(store, path, "node-a", thread_id=first.thread_id)
    await emit(path, first, AGENT_COMPLETED)  # first ended; second did not
    recovered = await end_runs_of_node(store, path, "node-a")
    assert [r.run_id for r in recovered.failed] == [second.run_id]
    assert [r.run_id for r in recovered.settled] == [first.run_id]
    assert len(await terminal_events_of(store, first)) == 1
    assert len(await terminal_events_of(store, second)) == 1


async def test_terminal_events_are_found_beyond_the_first_page(path: Coordinator) -> None:
    store = path.store
    run = await start_run(store, path, "node-a")
    for _ in range(5):
        await emit(path, run, *[AGENT_MESSAGE] * 500)
    [ended] = await emit(path, run, AGENT_COMPLETED)
    assert ended.seq > 2500
    assert await terminal_events(store, run.thread_id, [run.run_id]) == {run.run_id: ended}
    assert await terminal_events(store, run.thread_id, []) == {}
    assert await terminal_events(store, "no-such-thread", [run.run_id]) == {}
