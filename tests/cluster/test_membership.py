"""Heartbeats: a node's key lives while it beats, goes when it stops, and a fenced node knows."""

from __future__ import annotations

import asyncio

import pytest
from tests.bus.fixtures import FAST, MakeBus
from tests.bus.helpers import sample
from tests.bus.redis_server import RedisServer
from tests.cluster.helpers import eventually

from threadwire.bus import keys
from threadwire.cluster import metrics
from threadwire.cluster.membership import Membership

pytestmark = pytest.mark.redis


async def test_a_joined_node_is_known_and_alive(redis_url: str, make_bus: MakeBus) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    node = Membership(bus, "node-a", interval=0.1, ttl=0.5)
    await node.join()
    try:
        assert await node.live_nodes() == {"node-a"}
        assert set(await node.known_nodes()) == {"node-a"}
        ttl_ms = await bus.client.pttl(keys.node_key(bus.namespace, "node-a"))
        assert 0 < ttl_ms <= 500
    finally:
        await node.leave()


async def test_heartbeats_keep_the_key_alive_beyond_its_ttl(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    node = Membership(bus, "node-a", interval=0.05, ttl=0.5)
    await node.join()
    key = keys.node_key(bus.namespace, "node-a")
    loop = asyncio.get_running_loop()
    try:
        until = loop.time() + 3 * node.ttl  # this test is about time passing
        while loop.time() < until:
            assert await bus.client.exists(key)
            await asyncio.sleep(0.02)
    finally:
        await node.leave()


async def test_a_node_that_leaves_is_gone_at_once(redis_url: str, make_bus: MakeBus) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    node = Membership(bus, "node-a", interval=0.1, ttl=0.5)
    await node.join()
    await node.leave()
    assert await node.live_nodes() == set()
    assert await node.known_nodes() == {}


async def test_a_node_that_stops_beating_expires_but_stays_known(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    node = Membership(bus, "node-a", interval=0.05, ttl=0.15)
    await node.join()
    await node.stop()  # a crash, as far as Redis can tell
    await eventually(lambda: _none_alive(node), what="the key to expire")
    assert set(await node.known_nodes()) == {"node-a"}  # the detector's candidate


async def _none_alive(node: Membership) -> bool:
    return not await node.live_nodes()


async def test_a_fenced_node_is_told_once_and_stops_beating(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    calls: list[str] = []
    node = Membership(bus, "node-a", interval=0.05, ttl=1.0, on_fenced=lambda: calls.append("x"))
    await node.join()
    fenced = sample(metrics.CLUSTER_FENCED_TOTAL)
    await bus.client.set(keys.node_tombstone(bus.namespace, "node-a"), "someone")
    await eventually(lambda: _is(node.fenced), what="the node to learn it is fenced")
    assert calls == ["x"]
    assert not await node.beat()
    assert calls == ["x"]  # told once
    assert sample(metrics.CLUSTER_FENCED_TOTAL) == fenced + 1
    await node.leave()


async def _is(value: bool) -> bool:
    return value


async def test_a_new_incarnation_clears_the_tombstone(redis_url: str, make_bus: MakeBus) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    await bus.client.set(keys.node_tombstone(bus.namespace, "node-a"), "someone")
    node = Membership(bus, "node-a", interval=0.1, ttl=0.5)
    await node.join()
    try:
        assert await node.beat()
        assert not node.fenced
    finally:
        await node.leave()


async def test_a_lost_key_without_tombstone_is_registered_again(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    node = Membership(bus, "node-a", interval=10, ttl=30)
    await node.join()
    await bus.client.delete(keys.node_key(bus.namespace, "node-a"), keys.nodes_key(bus.namespace))
    assert await node.beat()  # what a Redis restart looks like: no tombstone, no key
    assert await node.live_nodes() == {"node-a"}
    await node.leave()


async def test_heartbeats_resume_after_a_redis_restart(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_server.url, **FAST)
    await bus.open()
    node = Membership(bus, "node-a", interval=0.05, ttl=1.0)
    await node.join()
    await redis_server.restart()
    await eventually(lambda: _alive(node), what="the heartbeat to come back")
    await node.leave()


async def _alive(node: Membership) -> bool:
    try:
        return "node-a" in await node.live_nodes()
    except Exception:
        return False


@pytest.mark.parametrize(("interval", "ttl"), [(1.0, 1.5), (0.0, 5.0), (2.0, 1.0)])
async def test_a_ttl_shorter_than_two_intervals_is_refused(
    redis_url: str, make_bus: MakeBus, interval: float, ttl: float
) -> None:
    with pytest.raises(ValueError, match="twice its interval"):
        Membership(make_bus(redis_url), "node-a", interval=interval, ttl=ttl)


async def test_stopping_twice_is_fine(redis_url: str, make_bus: MakeBus) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    node = Membership(bus, "node-a", interval=0.1, ttl=0.5)
    await node.stop()
    await node.join()
    await node.stop()
    await node.stop()
    await asyncio.sleep(0)
    await node.leave()
