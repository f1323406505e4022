"""The supervisor's rarer paths: store failures, runs it does not own, odd agents."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadwire.events import utcnow
from threadwire.ids import new_run_id
from threadwire.runtime import (
    AgentRegistry,
    RunContext,
    RunElsewhere,
    RunFinished,
    ShuttingDown,
    Supervisor,
)
from threadwire.store import Store
from threadwire.store.base import NotFound, RunRecord

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT, Gate, assert_run_life


async def _external(store: Store, thread_id: str, node_id: str | None) -> RunRecord:
    run = RunRecord(
        run_id=new_run_id(thread_id),
        thread_id=thread_id,
        agent="external",
        status="running",
        created_at=utcnow(),
        node_id=node_id,
    )
    return await store.create_run(run)


def test_limits_must_be_sensible(
    store: Store, coordinator: RecordingCoordinator, registry: AgentRegistry
) -> None:
    bad: list[dict[str, Any]] = [
        {"max_concurrent_runs": 0},
        {"max_runs_per_user": 0},
        {"run_timeout": 0},
        {"cancel_grace": -1},
    ]
    for options in bad:
        with pytest.raises(ValueError):
            Supervisor(store, coordinator, registry, **options)


async def test_cancel_of_an_external_run_writes_run_cancelled_for_it(
    make_supervisor: SupervisorFactory,
    store: Store,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    external = await _external(store, thread_id, None)
    supervisor = make_supervisor()
    cancelled = await supervisor.cancel(external.run_id)
    assert cancelled.status == "cancelled"
    assert coordinator.types(external.run_id) == ["run_cancelled"]
    with pytest.raises(RunFinished):
        await supervisor.cancel(external.run_id)
    assert (await supervisor.wait(external.run_id, timeout=WAIT)).status == "cancelled"


async def test_cancel_of_another_nodes_run_is_refused(
    make_supervisor: SupervisorFactory, store: Store, thread_id: str
) -> None:
    theirs = await _external(store, thread_id, "node-b")
    with pytest.raises(RunElsewhere) as raised:
        await make_supervisor(node_id="node-a").cancel(theirs.run_id)
    assert raised.value.code == "run_elsewhere"


async def test_wait_for_an_unknown_run_is_not_found_and_a_timeout_is_a_timeout(
    make_supervisor: SupervisorFactory, store: Store, thread_id: str
) -> None:
    supervisor = make_supervisor()
    with pytest.raises(NotFound):
        await supervisor.wait(new_run_id(thread_id), timeout=WAIT)
    external = await _external(store, thread_id, None)
    with pytest.raises(TimeoutError):
        await supervisor.wait(external.run_id, timeout=0.01)


async def test_sync_agents_and_agents_that_cancel_themselves(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    def plain(ctx: RunContext, input: dict[str, Any]) -> str:
        return "sync result"

    async def self_cancel(ctx: RunContext, input: dict[str, Any]) -> None:
        raise asyncio.CancelledError

    registry.register("plain", plain)
    registry.register("self_cancel", self_cancel)
    supervisor = make_supervisor()
    a = await supervisor.submit(user_id="u", thread_id=thread_id, agent="plain", input={})
    b = await supervisor.submit(user_id="u", thread_id=thread_id, agent="self_cancel", input={})
    assert (await supervisor.wait(a.run_id, timeout=WAIT)).result == "sync result"
    failed = await supervisor.wait(b.run_id, timeout=WAIT)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error == {
        "code": "agent_exception",
        "message": "the agent failed (CancelledError)",
    }
    assert_run_life(coordinator.of_run(b.run_id))


async def test_a_store_that_refuses_the_run_leaves_nothing_behind(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    store: Store,
    coordinator: RecordingCoordinator,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register("gate", Gate().agent)

    async def refuse(run: RunRecord) -> RunRecord:
        raise OSError("disk full")

    monkeypatch.setattr(store, "create_run", refuse)
    supervisor = make_supervisor()
    with pytest.raises(OSError):
        await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    assert coordinator.emitted == []
    assert supervisor.queued_count == 0 and supervisor.running_count == 0


async def test_a_run_whose_run_queued_cannot_be_stored_is_failed(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    store: Store,
    coordinator: RecordingCoordinator,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register("gate", Gate().agent)
    real_emit = coordinator.emit
    calls = 0

    async def flaky_emit(events: Any, *, idempotency_key: str | None = None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("store hiccup")
        return await real_emit(events, idempotency_key=idempotency_key)

    monkeypatch.setattr(coordinator, "emit", flaky_emit)
    supervisor = make_supervisor()
    with pytest.raises(OSError):
        await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    runs = (await store.list_runs(thread_id)).items
    assert [r.status for r in runs] == ["failed"]
    assert runs[0].error == {"code": "internal", "message": "the run could not be queued"}
    assert coordinator.types(runs[0].run_id) == ["agent_error"]


async def test_a_store_failure_while_starting_fails_the_run_and_frees_its_slot(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    store: Store,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register("gate", Gate().agent)
    real_update = store.update_run
    failures = 1

    async def flaky_update(run_id: str, **changes: Any) -> RunRecord:
        nonlocal failures
        if changes.get("status") == "running" and failures:
            failures -= 1
            raise OSError("lost the connection")
        return await real_update(run_id, **changes)

    monkeypatch.setattr(store, "update_run", flaky_update)
    supervisor = make_supervisor(max_concurrent_runs=1)
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    final = await supervisor.wait(run.run_id, timeout=WAIT)
    assert final.status == "failed" and final.error is not None
    assert final.error["code"] == "internal"
    assert supervisor.running_count == 0


async def test_a_submit_that_races_shutdown_is_cancelled_not_left_queued(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    store: Store,
    coordinator: RecordingCoordinator,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register("gate", Gate().agent)
    supervisor = make_supervisor()
    entered = asyncio.Event()
    proceed = asyncio.Event()
    real_create = store.create_run

    async def slow_create(run: RunRecord) -> RunRecord:
        entered.set()
        await proceed.wait()
        return await real_create(run)

    monkeypatch.setattr(store, "create_run", slow_create)
    submit = asyncio.create_task(
        supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
    )
    await asyncio.wait_for(entered.wait(), WAIT)
    stopping = asyncio.create_task(supervisor.shutdown(grace=WAIT))
    await supervisor.stopping.wait()
    proceed.set()
    run = await submit
    await asyncio.wait_for(stopping, WAIT)
    assert coordinator.types(run.run_id) == ["run_queued", "run_cancelled"]
    with pytest.raises(ShuttingDown):
        await supervisor.submit(user_id="u", thread_id=thread_id, agent="gate", input={})
