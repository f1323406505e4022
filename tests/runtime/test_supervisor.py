"""The supervisor: a run's life under success, failure, timeout, cancel and shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadwire.config import Settings
from threadwire.events import utcnow
from threadwire.ids import new_run_id
from threadwire.runtime import (
    AgentError,
    AgentRegistry,
    InvalidInput,
    RunContext,
    RunFinished,
    ShuttingDown,
    Supervisor,
    UnknownAgent,
)
from threadwire.runtime.agents.demo import demo
from threadwire.runtime.context import new_event
from threadwire.store import Store
from threadwire.store.base import NotFound, RunRecord

from .conftest import RecordingCoordinator, RunAgent, SupervisorFactory
from .helpers import WAIT, Gate, assert_run_life


async def test_demo_run_events_come_out_in_order_with_one_terminal_event(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    registry.register("demo", demo)
    supervisor = make_supervisor()
    queued = await supervisor.submit(
        user_id="alice", thread_id=thread_id, agent="demo", input={"prompt": "hi", "delay_ms": 0}
    )
    assert queued.status == "queued" and queued.agent == "demo" and queued.owner == "alice"
    final = await supervisor.wait(queued.run_id, timeout=WAIT)

    events = coordinator.of_run(queued.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == (
        ["run_queued", "agent_started"]
        + ["agent_thinking", "tool_executing", "tool_completed"] * 3
        + ["agent_message", "agent_completed"]
    )
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert final.status == "completed" and final.result == "Demo answer to: hi"
    assert events[-1].data == {"result": "Demo answer to: hi"}
    assert final.started_at is not None and final.finished_at is not None
    assert final.started_at <= final.finished_at
    assert await store.get_run(queued.run_id) == final


async def test_agent_exception_becomes_agent_error_with_a_safe_message(
    run_agent: RunAgent,
    coordinator: RecordingCoordinator,
) -> None:
    async def crash(ctx: RunContext, input: dict[str, Any]) -> None:
        await ctx.thinking("about to fail")
        raise KeyError("password=hunter2 at /srv/secret.py")

    final = await run_agent(crash)

    events = coordinator.of_run(final.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == [
        "run_queued",
        "agent_started",
        "agent_thinking",
        "agent_error",
    ]
    error = events[-1].data
    assert error["code"] == "agent_exception"
    assert "hunter2" not in error["message"] and "secret" not in error["message"]
    assert "Traceback" not in error["message"]
    assert final.status == "failed" and final.error == error and final.result is None


async def test_agent_error_passes_its_own_code_and_message(
    run_agent: RunAgent,
) -> None:
    async def refuse(ctx: RunContext, input: dict[str, Any]) -> None:
        raise AgentError("the quota is used up", code="quota")

    final = await run_agent(refuse)
    assert final.error == {"code": "quota", "message": "the quota is used up"}


async def test_a_crashing_agent_leaves_other_runs_and_the_supervisor_alive(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    thread_id: str,
) -> None:
    async def crash(ctx: RunContext, input: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    registry.register("crash", crash)
    registry.register("demo", demo)
    supervisor = make_supervisor()
    bad = await supervisor.submit(user_id="u", thread_id=thread_id, agent="crash", input={})
    good = await supervisor.submit(
        user_id="u", thread_id=thread_id, agent="demo", input={"prompt": "x", "delay_ms": 0}
    )
    assert (await supervisor.wait(bad.run_id, timeout=WAIT)).status == "failed"
    assert (await supervisor.wait(good.run_id, timeout=WAIT)).status == "completed"
    again = await supervisor.submit(user_id="u", thread_id=thread_id, agent="crash", input={})
    assert (await supervisor.wait(again.run_id, timeout=WAIT)).status == "failed"


async def test_a_result_that_is_not_json_fails_the_run(
    run_agent: RunAgent,
) -> None:
    async def odd(ctx: RunContext, input: dict[str, Any]) -> object:
        return object()

    final = await run_agent(odd)
    assert final.status == "failed" and final.error is not None
    assert final.error["code"] == "invalid_result"


async def test_run_timeout_ends_the_run_with_agent_error_timeout(
    run_agent: RunAgent,
    coordinator: RecordingCoordinator,
) -> None:
    saw_cancel = asyncio.Event()

    async def stuck(ctx: RunContext, input: dict[str, Any]) -> None:
        async with ctx.tool("forever", {}):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                saw_cancel.set()
                raise

    final = await run_agent(stuck, run_timeout=0.2)

    events = coordinator.of_run(final.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == [
        "run_queued",
        "agent_started",
        "tool_executing",
        "tool_completed",
        "agent_error",
    ]
    assert events[3].data["error"] == "cancelled"
    assert events[-1].data["code"] == "timeout"
    assert final.status == "failed" and final.error is not None
    assert final.error["code"] == "timeout"
    assert saw_cancel.is_set()


async def test_cancel_while_running_ends_with_run_cancelled(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    gate = Gate()
    registry.register("gate", gate.agent)
    supervisor = make_supervisor()
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    await gate.wait_started(run.run_id)

    cancelled = await supervisor.cancel(run.run_id)

    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert run.run_id in gate.cancelled
    events = coordinator.of_run(run.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == ["run_queued", "agent_started", "run_cancelled"]
    assert events[-1].data == {"reason": "cancelled"}
    assert supervisor.running_count == 0
    with pytest.raises(RunFinished) as finished:
        await supervisor.cancel(run.run_id)
    assert finished.value.code == "run_finished"


async def test_cancel_while_queued_never_starts_the_agent(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    gate = Gate()
    registry.register("gate", gate.agent)
    supervisor = make_supervisor(max_concurrent_runs=1)
    first = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    second = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    await gate.wait_started(first.run_id)
    assert supervisor.queued_count == 1 and supervisor.running_count == 1

    cancelled = await supervisor.cancel(second.run_id)

    assert cancelled.status == "cancelled" and cancelled.started_at is None
    assert coordinator.types(second.run_id) == ["run_queued", "run_cancelled"]
    assert supervisor.queued_count == 0
    gate.let_go(first.run_id)
    assert (await supervisor.wait(first.run_id, timeout=WAIT)).status == "completed"
    assert second.run_id not in gate.order


async def test_cancel_of_a_finished_or_unknown_run_is_refused(
    make_supervisor: SupervisorFactory, registry: AgentRegistry, thread_id: str
) -> None:
    registry.register("demo", demo)
    supervisor = make_supervisor()
    run = await supervisor.submit(
        user_id="u", thread_id=thread_id, agent="demo", input={"prompt": "", "steps": 0}
    )
    await supervisor.wait(run.run_id, timeout=WAIT)
    with pytest.raises(RunFinished):
        await supervisor.cancel(run.run_id)
    with pytest.raises(NotFound):
        await supervisor.cancel(f"{run.run_id}0")


async def test_unknown_agent_and_invalid_input_create_nothing(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    registry.register("demo", demo)
    supervisor = make_supervisor()
    with pytest.raises(UnknownAgent) as unknown:
        await supervisor.submit(user_id="u", thread_id=thread_id, agent="nope", input={})
    assert unknown.value.code == "unknown_agent"
    for bad in ({}, {"prompt": 3}, {"prompt": "x", "steps": 1001}, {"prompt": "x", "steps": True}):
        with pytest.raises(InvalidInput) as invalid:
            await supervisor.submit(user_id="u", thread_id=thread_id, agent="demo", input=bad)
        assert invalid.value.code == "invalid_input"
    with pytest.raises(InvalidInput):
        await supervisor.submit(
            user_id="u",
            thread_id=thread_id,
            agent="demo",
            input=["not", "a", "dict"],  # type: ignore[arg-type]
        )
    assert coordinator.emitted == []
    assert (await store.list_runs(thread_id)).items == []


async def test_submit_to_a_missing_thread_is_not_found(
    make_supervisor: SupervisorFactory, registry: AgentRegistry
) -> None:
    registry.register("demo", demo)
    with pytest.raises(NotFound):
        await make_supervisor().submit(
            user_id="u", thread_id="nowhere", agent="demo", input={"prompt": "x"}
        )


async def test_context_refuses_lifecycle_types_and_events_after_the_end(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    kept: list[RunContext] = []
    refusals: list[str] = []

    async def sneaky(ctx: RunContext, input: dict[str, Any]) -> str:
        kept.append(ctx)
        for reserved in ("agent_completed", "run_queued", "agent_started", "Bad Type"):
            try:
                await ctx.emit(reserved, {})
            except ValueError:
                refusals.append(reserved)
        await ctx.emit("custom.progress", {"pct": 50})
        return "ok"

    registry.register("sneaky", sneaky)
    supervisor = make_supervisor()
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="sneaky", input={})
    await supervisor.wait(run.run_id, timeout=WAIT)
    assert refusals == ["agent_completed", "run_queued", "agent_started", "Bad Type"]
    with pytest.raises(RunFinished):
        await kept[0].message("too late")
    assert kept[0].closed
    types = coordinator.types(run.run_id)
    assert types == ["run_queued", "agent_started", "custom.progress", "agent_completed"]


async def test_tool_failure_is_reported_in_tool_completed_and_propagates(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    async def tools(ctx: RunContext, input: dict[str, Any]) -> str:
        async with ctx.tool("soft", {"a": 1}) as call:
            call.set_error("no such city")
        try:
            async with ctx.tool("hard", {}):
                raise OSError("disk /dev/sda1 on fire")
        except OSError:
            pass
        async with ctx.tool("fine", {}) as call:
            call.set_result({"ok": True})
        return "done"

    registry.register("tools", tools)
    supervisor = make_supervisor()
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="tools", input={})
    assert (await supervisor.wait(run.run_id, timeout=WAIT)).status == "completed"
    completed = [e.data for e in coordinator.of_run(run.run_id) if e.type == "tool_completed"]
    assert [d["tool"] for d in completed] == ["soft", "hard", "fine"]
    assert completed[0]["error"] == "no such city" and "result" not in completed[0]
    assert completed[1]["error"] == "tool failed (OSError)"
    assert completed[2]["result"] == {"ok": True} and "error" not in completed[2]
    assert all(isinstance(d["duration_ms"], int) for d in completed)
    executing = [e.data for e in coordinator.of_run(run.run_id) if e.type == "tool_executing"]
    assert executing[0] == {"tool": "soft", "call": 1, "args": {"a": 1}}


async def test_shutdown_lets_runs_finish_within_grace_then_cancels_the_rest(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    gate = Gate()
    registry.register("gate", gate.agent)
    supervisor = make_supervisor(max_concurrent_runs=2)
    finishing = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    stubborn = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    waiting = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    await gate.wait_started(finishing.run_id)
    await gate.wait_started(stubborn.run_id)

    async def finish_one_during_grace() -> None:
        await supervisor.stopping.wait()
        gate.let_go(finishing.run_id)

    helper = asyncio.create_task(finish_one_during_grace())
    # The grace is long enough for the released run, and the stubborn run is cancelled
    # once it runs out; what matters is the outcome of each, not the timing.
    await asyncio.wait_for(supervisor.shutdown(grace=2.0), WAIT)
    await helper

    assert (await store.get_run(finishing.run_id)).status == "completed"  # type: ignore[union-attr]
    assert (await store.get_run(stubborn.run_id)).status == "cancelled"  # type: ignore[union-attr]
    assert (await store.get_run(waiting.run_id)).status == "cancelled"  # type: ignore[union-attr]
    for run in (finishing, stubborn, waiting):
        assert_run_life(coordinator.of_run(run.run_id))
    assert coordinator.types(waiting.run_id) == ["run_queued", "run_cancelled"]
    assert coordinator.of_run(stubborn.run_id)[-1].data == {"reason": "shutdown"}
    assert supervisor.running_count == 0 and supervisor.queued_count == 0
    with pytest.raises(ShuttingDown) as refused:
        await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    assert refused.value.code == "shutting_down"


async def test_an_agent_that_ignores_cancellation_still_gets_one_terminal_event(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    started = asyncio.Event()
    leave = asyncio.Event()
    late = asyncio.Event()

    async def deaf(ctx: RunContext, input: dict[str, Any]) -> None:
        started.set()
        while not leave.is_set():
            try:
                await leave.wait()
            except asyncio.CancelledError:
                continue  # rude: swallows every cancellation
        try:
            await ctx.message("after the end")
        except RunFinished:
            late.set()

    registry.register("deaf", deaf)
    supervisor = make_supervisor(cancel_grace=0.05)
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="deaf", input={})
    await asyncio.wait_for(started.wait(), WAIT)
    assert (await supervisor.cancel(run.run_id)).status == "cancelled"
    leave.set()
    await asyncio.wait_for(late.wait(), WAIT)
    assert coordinator.types(run.run_id) == ["run_queued", "agent_started", "run_cancelled"]


async def test_start_ends_runs_a_previous_process_left_unfinished(
    make_supervisor: SupervisorFactory,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    # What a process of node n1 that died mid-run leaves behind.
    left = RunRecord(
        run_id=new_run_id(thread_id),
        thread_id=thread_id,
        agent="demo",
        status="running",
        created_at=utcnow(),
        owner="u",
        started_at=utcnow(),
        node_id="n1",
    )
    await store.create_run(left)
    await coordinator.emit([new_event(left.run_id, thread_id, "run_queued", {})])
    await coordinator.emit([new_event(left.run_id, thread_id, "agent_started", {})])

    assert await make_supervisor(node_id="n2").start() == []
    recovered = await make_supervisor(node_id="n1").start()

    assert [r.run_id for r in recovered] == [left.run_id]
    assert recovered[0].status == "failed" and recovered[0].error is not None
    assert recovered[0].error["code"] == "interrupted"
    assert_run_life(coordinator.of_run(left.run_id))
    assert await make_supervisor(node_id="n1").start() == []


async def test_from_settings_takes_the_limits_and_node_id(
    store: Store, coordinator: RecordingCoordinator, registry: AgentRegistry
) -> None:
    settings = Settings(
        max_concurrent_runs=3, max_runs_per_user=2, run_timeout=9.5, node_id="node-7"
    )
    supervisor = Supervisor.from_settings(store, coordinator, registry, settings)
    assert (supervisor.max_concurrent_runs, supervisor.max_runs_per_user) == (3, 2)
    assert (supervisor.run_timeout, supervisor.node_id) == (9.5, "node-7")
    assert Supervisor(store, coordinator, registry).node_id == "local"
    await supervisor.shutdown(grace=0)
