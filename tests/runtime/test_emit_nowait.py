"""`ctx.emit_nowait`: emits that do not wait for the store keep the run's order, reach
the store before the terminal event, and never lose a failure silently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadwire.cluster.recovery import end_runs_of_node
from threadwire.events import Event
from threadwire.ids import new_run_id
from threadwire.runtime import AgentRegistry, RunContext, RunFinished
from threadwire.runtime.context import MAX_IN_FLIGHT
from threadwire.store import Store
from threadwire.store.base import NotFound, RunEnded

from .conftest import RecordingCoordinator, RunAgent, SupervisorFactory
from .helpers import WAIT, assert_run_life


async def test_nowait_and_awaited_emits_are_stored_in_call_order_before_the_end(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    async def streamer(ctx: RunContext, input: dict[str, Any]) -> str:
        for n in range(20):
            ctx.emit_nowait("token", {"n": n})
        await ctx.emit("token", {"n": 20})  # waits behind the twenty in flight
        last = ctx.emit_nowait("token", {"n": 21})
        stored = await last
        assert stored.data == {"n": 21}
        for n in range(22, 30):
            ctx.emit_nowait("token", {"n": n})
        return "done"  # eight still in flight: the terminal event must come after them

    registry.register("streamer", streamer)
    supervisor = make_supervisor()
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="streamer", input={})
    await supervisor.wait(run.run_id, timeout=WAIT)
    page = await store.read_events(thread_id, after_seq=0, limit=100)
    events: list[Event] = [e for e in page if e.run_id == run.run_id]
    assert_run_life(events)
    tokens = [e.data["n"] for e in events if e.type == "token"]
    assert tokens == list(range(30))
    assert events[-1].type == "agent_completed"
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    # Announced in store order too: what the bus carried is what the store holds.
    assert [e.seq for e in coordinator.of_run(run.run_id)] == [e.seq for e in events]


async def test_a_closed_context_refuses_nowait_emits(
    make_supervisor: SupervisorFactory, registry: AgentRegistry, thread_id: str
) -> None:
    kept: list[RunContext] = []

    async def agent(ctx: RunContext, input: dict[str, Any]) -> str:
        kept.append(ctx)
        with pytest.raises(ValueError):
            ctx.emit_nowait("agent_completed", {})
        return "ok"

    registry.register("a", agent)
    supervisor = make_supervisor()
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="a", input={})
    await supervisor.wait(run.run_id, timeout=WAIT)
    with pytest.raises(RunFinished):
        kept[0].emit_nowait("token", {})


async def test_more_than_the_bound_in_flight_is_refused_until_flushed(
    run_agent: RunAgent,
) -> None:
    refused: list[int] = []

    async def flood(ctx: RunContext, input: dict[str, Any]) -> int:
        sent = 0
        try:
            for n in range(MAX_IN_FLIGHT + 10):
                ctx.emit_nowait("token", {"n": n})
                sent += 1
        except asyncio.QueueFull:
            refused.append(sent)
        await ctx.flush()
        ctx.emit_nowait("token", {"n": sent})  # room again
        await ctx.flush()
        return sent + 1

    final = await run_agent(flood)
    assert refused == [MAX_IN_FLIGHT]
    assert final.status == "completed" and final.result == MAX_IN_FLIGHT + 1


async def test_an_event_that_was_not_stored_fails_the_next_emit(
    coordinator: RecordingCoordinator,
) -> None:
    # No such thread in the store: it refuses the append.
    run_id = new_run_id("thread_gone")
    ctx = RunContext(coordinator, user_id="u", thread_id="thread_gone", run_id=run_id, agent="a")
    task = ctx.emit_nowait("token", {"n": 1})
    with pytest.raises(NotFound):
        await task
    with pytest.raises(NotFound):
        ctx.emit_nowait("token", {"n": 2})
    with pytest.raises(NotFound):
        await ctx.emit("token", {"n": 3})
    with pytest.raises(NotFound):
        await ctx.flush()
    assert coordinator.emitted == []


async def test_a_run_whose_unawaited_event_was_not_stored_fails(
    run_agent: RunAgent,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    async def careless(ctx: RunContext, input: dict[str, Any]) -> str:
        ctx.thread_id = "thread_gone"  # the next event names a thread the store lacks
        ctx.emit_nowait("token", {"n": 1})
        ctx.thread_id = thread_id
        return "done"  # never awaited what it emitted

    final = await run_agent(careless)
    assert final.status == "failed"
    assert coordinator.types(final.run_id)[-1] == "agent_error"
    assert "token" not in coordinator.types(final.run_id)


async def test_events_emitted_in_one_pass_are_stored_as_one_append(
    run_agent: RunAgent,
    coordinator: RecordingCoordinator,
) -> None:
    appends: list[list[str]] = []
    emit = coordinator.emit

    async def counting(events: Any, **kwargs: Any) -> list[Event]:
        appends.append([e.type for e in events])
        return await emit(events, **kwargs)

    coordinator.emit = counting  # type: ignore[method-assign]

    async def burst(ctx: RunContext, input: dict[str, Any]) -> None:
        first = [ctx.emit_nowait("token", {"n": n}) for n in range(5)]
        await asyncio.sleep(0)  # the next pass: a new batch
        second = [ctx.emit_nowait("token", {"n": n}) for n in range(5, 8)]
        stored = await asyncio.gather(*first, *second)
        assert [e.data["n"] for e in stored] == list(range(8))

    final = await run_agent(burst)
    assert final.status == "completed"
    assert ["token"] * 5 in appends and ["token"] * 3 in appends


async def test_events_after_the_cluster_ended_the_run_fail_as_run_finished(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    started, go_on = asyncio.Event(), asyncio.Event()
    refusals: list[BaseException] = []

    async def streamer(ctx: RunContext, input: dict[str, Any]) -> str:
        await ctx.emit("token", {"n": 0})
        started.set()
        await go_on.wait()
        late = ctx.emit_nowait("token", {"n": 1})
        try:
            await late
        except RunFinished as exc:
            refusals.append(exc)
        with pytest.raises(RunFinished):  # the context is closed now
            ctx.emit_nowait("token", {"n": 2})
        return "done"

    registry.register("streamer", streamer)
    supervisor = make_supervisor(node_id="node-a")
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="streamer", input={})
    await asyncio.wait_for(started.wait(), WAIT)
    await end_runs_of_node(store, coordinator, "node-a")  # another node took node-a for dead
    go_on.set()
    final = await supervisor.wait(run.run_id, timeout=WAIT)
    assert len(refusals) == 1 and isinstance(refusals[0].__cause__, RunEnded)
    assert final.status == "failed"
    assert [e.data.get("n") for e in coordinator.of_run(run.run_id) if e.type == "token"] == [0]
