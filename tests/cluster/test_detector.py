"""The detector: a silent node is found dead after its grace, and exactly one survivor acts."""

from __future__ import annotations

import asyncio

import pytest
from tests.bus.fixtures import FAST, MakeBus
from tests.bus.helpers import sample
from tests.bus.redis_server import RedisServer
from tests.cluster.helpers import eventually

from threadwire.bus import keys
from threadwire.bus.redis import RedisBus
from threadwire.cluster import metrics
from threadwire.cluster.detector import DeadNodeDetector
from threadwire.cluster.membership import Membership

pytestmark = pytest.mark.redis


class Calls:
    """An `on_dead` callback that records the nodes it was called for."""

    def __init__(self, *, fail_first: int = 0, hold: asyncio.Event | None = None) -> None:
        self.nodes: list[str] = []
        self.fail_first = fail_first
        self.hold = hold

    async def __call__(self, node_id: str) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("store unavailable")
        if self.hold is not None:
            await self.hold.wait()
        self.nodes.append(node_id)


async def dead_node(bus: RedisBus, node_id: str = "node-dead") -> Membership:
    """A node that joined, then stopped heartbeating without leaving (its key expires)."""
    node = Membership(bus, node_id, interval=0.05, ttl=0.1)
    await node.join()
    await node.stop()
    return node


async def _gone(bus: RedisBus, node_id: str) -> bool:
    return not await bus.client.exists(keys.node_key(bus.namespace, node_id))


async def test_a_node_whose_heartbeat_expired_is_recovered_once_and_removed(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    dead = await dead_node(bus)
    await eventually(lambda: _gone(bus, "node-dead"), what="the key to expire")
    on_dead = Calls()
    detector = DeadNodeDetector(bus, "node-b", on_dead, grace=0)
    lost = sample(metrics.CLUSTER_NODES_LOST_TOTAL)
    assert await detector.check() == ["node-dead"]
    assert on_dead.nodes == ["node-dead"]
    assert await dead.known_nodes() == {}  # removed: nobody tries again
    assert await detector.check() == []
    late = DeadNodeDetector(bus, "node-c", on_dead, grace=0)
    assert not await late.recover("node-dead")  # read the candidates before it was removed
    assert on_dead.nodes == ["node-dead"]
    assert sample(metrics.CLUSTER_NODES_LOST_TOTAL) == lost + 1
    assert not await dead.beat()  # fenced: the old process cannot heartbeat back in
    assert dead.fenced


async def test_of_several_detectors_exactly_one_recovers_a_dead_node(
    redis_url: str, make_bus: MakeBus
) -> None:
    buses = [make_bus(redis_url) for _ in range(3)]
    for bus in buses:
        await bus.open()
    await dead_node(buses[0])
    await eventually(lambda: _gone(buses[0], "node-dead"), what="the key to expire")
    on_dead = Calls()
    detectors = [
        DeadNodeDetector(bus, f"node-{i}", on_dead, grace=0) for i, bus in enumerate(buses)
    ]
    for _ in range(5):
        await asyncio.gather(*(d.check() for d in detectors))
    assert on_dead.nodes == ["node-dead"]


async def test_a_node_that_beats_is_never_declared_dead(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    live = Membership(bus, "node-live", interval=0.05, ttl=1.0)
    await live.join()
    on_dead = Calls()
    detector = DeadNodeDetector(bus, "node-b", on_dead, grace=0)
    try:
        for _ in range(10):
            assert await detector.check() == []
        assert not await detector.recover("node-live")  # the script re-checks the key
    finally:
        await live.leave()
    assert on_dead.nodes == []


async def test_a_detector_never_declares_its_own_node(redis_url: str, make_bus: MakeBus) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    await dead_node(bus, "node-self")
    await eventually(lambda: _gone(bus, "node-self"), what="the key to expire")
    on_dead = Calls()
    assert await DeadNodeDetector(bus, "node-self", on_dead, grace=0).check() == []


async def test_a_node_missing_for_less_than_the_grace_is_not_declared(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    await dead_node(bus)
    await eventually(lambda: _gone(bus, "node-dead"), what="the key to expire")
    on_dead = Calls()
    detector = DeadNodeDetector(bus, "node-b", on_dead, grace=3600)
    assert await detector.check() == []
    assert on_dead.nodes == []


async def test_a_failed_recovery_releases_the_lock_and_is_retried(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    await dead_node(bus)
    await eventually(lambda: _gone(bus, "node-dead"), what="the key to expire")
    on_dead = Calls(fail_first=1)
    detector = DeadNodeDetector(bus, "node-b", on_dead, grace=0)
    failures = sample(metrics.CLUSTER_RECOVERY_FAILURES_TOTAL)
    assert await detector.check() == []
    assert sample(metrics.CLUSTER_RECOVERY_FAILURES_TOTAL) == failures + 1
    lock = keys.node_recovery_lock(bus.namespace, "node-dead")
    assert not await bus.client.exists(lock)
    other = DeadNodeDetector(bus, "node-c", on_dead, grace=0)  # anyone may retry
    assert await other.check() == ["node-dead"]
    assert on_dead.nodes == ["node-dead"]


async def test_the_lock_is_kept_while_a_slow_recovery_runs(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    await dead_node(bus)
    await eventually(lambda: _gone(bus, "node-dead"), what="the key to expire")
    release = asyncio.Event()
    slow = Calls(hold=release)
    first = DeadNodeDetector(bus, "node-b", slow, grace=0, lock_ttl=0.3)
    recovering = asyncio.create_task(first.check())
    lock = keys.node_recovery_lock(bus.namespace, "node-dead")
    await eventually(lambda: _exists(bus, lock), what="the lock to be taken")
    loop = asyncio.get_running_loop()
    other = Calls()
    second = DeadNodeDetector(bus, "node-c", other, grace=0)
    until = loop.time() + 1.0  # more than three lock TTLs: the lock must be renewed
    while loop.time() < until:
        assert await second.check() == []
        await asyncio.sleep(0.05)
    release.set()
    assert await recovering == ["node-dead"]
    assert other.nodes == []
    assert slow.nodes == ["node-dead"]


async def _exists(bus: RedisBus, key: str) -> bool:
    return bool(await bus.client.exists(key))


async def test_nodes_the_store_knows_but_redis_forgot_are_recovered(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    on_dead = Calls()

    async def from_store() -> set[str]:
        return {"node-forgotten", "node-b"}

    detector = DeadNodeDetector(bus, "node-b", on_dead, grace=0, candidates=from_store)
    assert await detector.check() == ["node-forgotten"]
    assert on_dead.nodes == ["node-forgotten"]


async def test_a_redis_restart_declares_nobody_dead(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    # Every key vanishes with the restart; the nodes write theirs again within one
    # heartbeat, well inside the grace, so the detector must not act.
    bus_a, bus_b = make_bus(redis_server.url, **FAST), make_bus(redis_server.url, **FAST)
    await bus_a.open()
    await bus_b.open()
    node_a = Membership(bus_a, "node-a", interval=0.1, ttl=1.0)
    await node_a.join()
    on_dead = Calls()

    async def from_store() -> set[str]:
        return {"node-a"}  # node-a has unfinished runs in the store

    detector = DeadNodeDetector(
        bus_b, "node-b", on_dead, interval=0.05, grace=1.0, candidates=from_store
    )
    await detector.start()
    try:
        await redis_server.restart()
        await eventually(lambda: _alive(bus_a, "node-a"), what="node-a to beat again")
        await asyncio.sleep(2.0)  # a window of two graces in which nothing may happen
    finally:
        await detector.stop()
        await node_a.leave()
    assert on_dead.nodes == []


async def _alive(bus: RedisBus, node_id: str) -> bool:
    try:
        return bool(await bus.client.exists(keys.node_key(bus.namespace, node_id)))
    except Exception:
        return False


async def test_the_background_loop_recovers_and_survives_redis_outages(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_server.url, **FAST)
    await bus.open()
    on_dead = Calls()
    detector = DeadNodeDetector(bus, "node-b", on_dead, interval=0.05, grace=0.1)
    await detector.start()
    try:
        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(0.2)  # several failing passes while Redis is away
        await asyncio.to_thread(redis_server.start)
        await eventually(lambda: _alive_link(bus), what="the bus to reconnect")
        await dead_node(bus)
        await eventually(lambda: _recovered(on_dead), what="the loop to recover the dead node")
    finally:
        await detector.stop()
        await detector.stop()


async def _alive_link(bus: RedisBus) -> bool:
    return bus.link.connected


async def _recovered(on_dead: Calls) -> bool:
    return on_dead.nodes == ["node-dead"]
