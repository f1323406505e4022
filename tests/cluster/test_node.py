"""ClusterNode end to end, several nodes in one process over one Redis and one store:
cancel from another node, a dead node's runs ended exactly once, restarts under one ID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import pytest
from tests.bus.fixtures import MakeBus
from tests.bus.helpers import Collector
from tests.cluster.helpers import eventually, start_run, terminal_events_of

from threadwire.bus import keys
from threadwire.cluster import (
    NODE_LOST,
    ClusterNode,
    ClusterSettings,
    CommandRefused,
    NodeUnreachable,
)
from threadwire.events import AGENT_ERROR
from threadwire.runtime.coordinator import Coordinator
from threadwire.store.base import RunRecord
from threadwire.store.memory import MemoryStore

pytestmark = pytest.mark.redis

QUICK = ClusterSettings(
    heartbeat_interval=0.1,
    heartbeat_ttl=1.0,  # generous: a loaded CI machine must not make live nodes look dead
    detect_interval=0.1,
    grace=0.3,
    sweep_interval=0.2,
    control_timeout=5,
    start_timeout=5,
)
"""Death detected in about 1.5 s instead of 7."""

Start = Callable[..., Any]


class Cancels:
    """A node's `cancel_run`: records the runs and answers like the supervisor would."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.runs: list[str] = []

    async def __call__(self, run_id: str) -> dict[str, Any]:
        if run_id == "finished-run":
            raise CommandRefusal(run_id)
        self.runs.append(run_id)
        return {"run_id": run_id, "status": "cancelled", "by": self.node_id}


class CommandRefusal(Exception):
    code = "run_finished"


@pytest.fixture
async def cluster(
    redis_url: str, make_bus: MakeBus
) -> AsyncIterator[Callable[[str], Any]]:
    """Start nodes by ID on one store (shared, as PostgreSQL would be); all stop at the end."""
    store = MemoryStore()
    async with AsyncExitStack() as stack:

        async def start(
            node_id: str,
            *,
            settings: ClusterSettings = QUICK,
            on_fenced: Callable[[], None] | None = None,
            before_join: Callable[[], Awaitable[object]] | None = None,
        ) -> ClusterNode:
            bus = make_bus(redis_url)
            await bus.open()
            node = ClusterNode(
                bus,
                node_id,
                store,
                Coordinator(store, bus),
                cancel_run=Cancels(node_id),
                settings=settings,
                on_fenced=on_fenced,
            )
            await node.start(before_join)
            stack.push_async_callback(kill, node)
            return node

        yield start


async def kill(node: ClusterNode) -> None:
    """What a SIGKILL looks like to the others: no more heartbeats, no answers."""
    await node.detector.stop()
    await node.control.stop()
    await node.membership.stop()


async def test_started_nodes_see_each_other_and_a_stopped_one_leaves(cluster: Start) -> None:
    a = await cluster("node-a")
    b = await cluster("node-b")
    assert await a.membership.live_nodes() == {"node-a", "node-b"}
    await b.stop()
    assert await a.membership.live_nodes() == {"node-a"}


async def test_cancel_reaches_the_node_that_runs_the_run(cluster: Start) -> None:
    a = await cluster("node-a")
    await cluster("node-b")
    body = await a.cancel_run("run-1", "node-b")
    assert body == {"run_id": "run-1", "status": "cancelled", "by": "node-b"}
    with pytest.raises(CommandRefused) as caught:
        await a.cancel_run("finished-run", "node-b")
    assert caught.value.code == "run_finished"
    with pytest.raises(NodeUnreachable):
        await a.cancel_run("run-2", "node-gone")


async def test_a_dead_nodes_runs_get_exactly_one_node_lost_each(cluster: Start) -> None:
    a = await cluster("node-a")
    b = await cluster("node-b")
    c = await cluster("node-c")
    runs = [await start_run(a.store, a.coordinator, "node-a") for _ in range(3)]
    await a.bus.flush()  # their first events are out: the watcher comes later
    watcher = Collector()
    await b.bus.subscribe(runs[0].thread_id, watcher)  # a client of node B
    await kill(a)

    await eventually(lambda: _all_finished(a.store, runs), what="the dead node's runs to end")
    for run in runs:
        [terminal] = await terminal_events_of(a.store, run)
        assert (terminal.type, terminal.data["code"]) == (AGENT_ERROR, NODE_LOST)
    await watcher.wait_for(1)
    assert [e.type for e in watcher.events] == [AGENT_ERROR]
    await eventually(lambda: _forgotten(b, "node-a"), what="node-a to be removed")
    done_by = [n.node_id for n in (b, c) if n.recovered]
    assert len(done_by) == 1  # one survivor did it


async def _forgotten(node: ClusterNode, node_id: str) -> bool:
    return node_id not in await node.membership.known_nodes()


async def _all_finished(store: Any, runs: list[RunRecord]) -> bool:
    for run in runs:
        record = await store.get_run(run.run_id)
        if record is None or not record.finished:
            return False
    return True


async def test_a_node_that_was_only_paused_learns_it_was_fenced(cluster: Start) -> None:
    fenced = asyncio.Event()
    a = await cluster("node-a", on_fenced=fenced.set)
    await cluster("node-b")
    await start_run(a.store, a.coordinator, "node-a")
    await a.membership.stop()  # a long GC pause: the others give up on it
    await eventually(lambda: _tombstoned(a), what="node-a to be declared dead")
    assert not await a.membership.beat()  # it wakes up
    async with asyncio.timeout(5):
        await fenced.wait()


async def _tombstoned(node: ClusterNode) -> bool:
    return bool(await node.bus.client.exists(keys.node_tombstone(node.bus.namespace, "node-a")))


async def test_a_restart_under_the_same_id_recovers_first_then_joins(cluster: Start) -> None:
    first = await cluster("node-a")
    run = await start_run(first.store, first.coordinator, "node-a")
    await kill(first)
    locked: list[bool] = []

    async def before_join() -> None:
        # The supervisor's own start-up recovery runs here, under the node's lock, so no
        # other node ends the same runs at the same time.
        lock = keys.node_recovery_lock(first.bus.namespace, "node-a")
        locked.append(bool(await first.bus.client.exists(lock)))
        await first.end_runs_of("node-a")

    again = await cluster("node-a", before_join=before_join)
    assert locked == [True]
    assert await again.membership.live_nodes() == {"node-a"}
    assert len(await terminal_events_of(first.store, run)) == 1


async def test_a_restart_waits_while_another_node_recovers_its_id(cluster: Start) -> None:
    b = await cluster("node-b")
    lock = keys.node_recovery_lock(b.bus.namespace, "node-a")
    await b.bus.client.set(lock, "someone-else", px=300)  # node-b is ending node-a's runs
    loop = asyncio.get_running_loop()
    started = loop.time()
    await cluster("node-a")
    assert loop.time() - started >= 0.2
    assert not await b.bus.client.exists(lock)


async def test_a_restart_gives_up_when_the_recovery_never_ends(cluster: Start) -> None:
    b = await cluster("node-b")
    await b.bus.client.set(keys.node_recovery_lock(b.bus.namespace, "node-a"), "stuck", px=60_000)
    with pytest.raises(RuntimeError, match="still being recovered"):
        await cluster("node-a", settings=replace(QUICK, start_timeout=0.3))


async def test_a_restart_after_the_others_recovered_its_id_starts_at_once(
    cluster: Start,
) -> None:
    a = await cluster("node-a")
    b = await cluster("node-b")
    await kill(a)
    await eventually(lambda: _has_recovered(b), what="node-b to end node-a's runs")
    lock = keys.node_recovery_lock(b.bus.namespace, "node-a")
    assert await b.bus.client.get(lock) == b"done"  # kept a while against late detectors
    again = await cluster("node-a", settings=replace(QUICK, start_timeout=0.5))
    assert "node-a" in await again.membership.live_nodes()


async def _has_recovered(node: ClusterNode) -> bool:
    return bool(node.recovered)


async def test_orphans_of_a_node_redis_never_knew_are_found_in_the_store(cluster: Start) -> None:
    b = await cluster("node-b")
    # A node that died while Redis was being restarted: its runs are in the store only.
    run = await start_run(b.store, b.coordinator, "node-forgotten")
    await eventually(lambda: _all_finished(b.store, [run]), what="the orphan to be ended")
    [terminal] = await terminal_events_of(b.store, run)
    assert terminal.data["code"] == NODE_LOST


async def test_a_cancel_command_without_a_run_id_is_refused(cluster: Start) -> None:
    a = await cluster("node-a")
    await cluster("node-b")
    with pytest.raises(CommandRefused) as caught:
        await a.control.request("node-b", "cancel_run", {"run_id": 7})
    assert caught.value.code == "bad_request"
