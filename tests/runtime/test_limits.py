"""Concurrency limits: global and per user, measured with real agents and their events."""

from __future__ import annotations

from threadwire.events import TERMINAL_TYPES, Event
from threadwire.runtime import AgentRegistry
from threadwire.store import Store

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT, Gate, assert_run_life


def max_overlap(events: list[Event], runs: set[str] | None = None) -> int:
    """Most runs between `agent_started` and their terminal event at once, read from the
    events in the order they were stored."""
    live: set[str] = set()
    most = 0
    for event in events:
        if runs is not None and event.run_id not in runs:
            continue
        if event.type == "agent_started":
            live.add(event.run_id)
            most = max(most, len(live))
        elif event.type in TERMINAL_TYPES:
            live.discard(event.run_id)
    return most


def started_order(events: list[Event], runs: set[str] | None = None) -> list[str]:
    """Runs in the order of their `agent_started` events."""
    return [
        e.run_id for e in events if e.type == "agent_started" and (runs is None or e.run_id in runs)
    ]


async def test_global_limit_holds_and_queued_runs_start_in_fifo_order(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    gate = Gate()
    registry.register("gate", gate.agent)
    supervisor = make_supervisor(max_concurrent_runs=2, max_runs_per_user=100)
    runs = []
    for i in range(7):
        run = await supervisor.submit(
            user_id=f"user{i}", thread_id=thread_id, agent="gate", input={}
        )
        # Every run is announced as queued by the time submit returns.
        assert coordinator.types(run.run_id)[:1] == ["run_queued"]
        runs.append(run)
    submitted = [r.run_id for r in runs]

    finished = 0
    while finished < len(runs):
        await gate.wait_active(min(2, len(runs) - finished))
        assert supervisor.running_count == min(2, len(runs) - finished)
        assert supervisor.queued_count == max(0, len(runs) - finished - 2)
        oldest = next(r for r in gate.order if r in gate.active)
        gate.let_go(oldest)
        await supervisor.wait(oldest, timeout=WAIT)
        finished += 1

    assert gate.max_active == 2
    assert max_overlap(coordinator.emitted) == 2
    assert gate.order == submitted  # FIFO: started in the order submitted
    assert started_order(coordinator.emitted) == submitted
    for run_id in submitted:
        assert_run_life(coordinator.of_run(run_id))


async def test_per_user_limit_holds_without_holding_up_other_users(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
    thread_id: str,
) -> None:
    gate = Gate()
    registry.register("gate", gate.agent)
    await store.create_thread("bobs", "bob")
    supervisor = make_supervisor(max_concurrent_runs=10, max_runs_per_user=2)
    alice = [
        await supervisor.submit(user_id="alice", thread_id=thread_id, agent="gate", input={})
        for _ in range(5)
    ]
    bob = await supervisor.submit(user_id="bob", thread_id="bobs", agent="gate", input={})

    # Bob's run starts although three of Alice's, submitted before it, are still queued.
    await gate.wait_started(bob.run_id)
    await gate.wait_active(3)
    assert supervisor.queued_count == 3
    assert sorted(gate.active.values()) == ["alice", "alice", "bob"]

    for run in alice:
        await gate.wait_started(run.run_id)
        gate.let_go(run.run_id)
        await supervisor.wait(run.run_id, timeout=WAIT)
    gate.let_go(bob.run_id)
    await supervisor.wait(bob.run_id, timeout=WAIT)

    assert gate.max_active_by_user == {"alice": 2, "bob": 1}
    alice_ids = {r.run_id for r in alice}
    assert max_overlap(coordinator.emitted, alice_ids) == 2
    assert [r for r in gate.order if r in alice_ids] == [r.run_id for r in alice]
    assert started_order(coordinator.emitted, alice_ids) == [r.run_id for r in alice]
    assert supervisor.running_count == 0 and supervisor.queued_count == 0


async def test_many_concurrent_real_runs_never_exceed_the_limits(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    store: Store,
) -> None:
    from threadwire.runtime.agents.demo import demo

    registry.register("demo", demo)
    users = ["u0", "u1", "u2"]
    for user in users:
        await store.create_thread(f"t-{user}", user)
    supervisor = make_supervisor(max_concurrent_runs=4, max_runs_per_user=2)
    runs = [
        await supervisor.submit(
            user_id=user,
            thread_id=f"t-{user}",
            agent="demo",
            input={"prompt": f"p{i}", "steps": 2, "delay_ms": 1},
        )
        for i in range(8)
        for user in users
    ]
    for run in runs:
        assert (await supervisor.wait(run.run_id, timeout=WAIT)).status == "completed"
        assert_run_life(coordinator.of_run(run.run_id))
    assert max_overlap(coordinator.emitted) <= 4
    for user in users:
        mine = {r.run_id for r in runs if r.owner == user}
        assert max_overlap(coordinator.emitted, mine) <= 2
    # Each thread's seq is gap-free across its interleaved runs.
    for user in users:
        seqs = [e.seq for e in coordinator.emitted if e.thread_id == f"t-{user}"]
        assert seqs == list(range(1, len(seqs) + 1))
