"""The bus contract, one suite for every backend.

Each test gets a publisher and a subscriber: the same MemoryBus; one RedisBus that
publishes to itself (local delivery); and two RedisBus nodes on one Redis (the
cluster case, where events travel through Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from tests.bus.helpers import Collector, make_events, thread

from threadwire.bus import Bus
from threadwire.bus.memory import MemoryBus
from threadwire.bus.redis import RedisBus


@dataclass
class Nodes:
    """Who publishes and who subscribes; the same object for a single node."""

    publisher: Bus
    subscriber: Bus


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis-one-node", marks=pytest.mark.redis),
        pytest.param("redis-two-nodes", marks=pytest.mark.redis),
    ]
)
async def nodes(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Nodes]:
    """A publisher and a subscriber over each backend."""
    if request.param == "memory":
        bus = MemoryBus()
        await bus.open()
        yield Nodes(bus, bus)
        await bus.close()
        return
    redis_url: str = request.getfixturevalue("redis_url")  # skips only the Redis cases
    first = RedisBus(redis_url, namespace=namespace)
    await first.open()
    second = first
    if request.param == "redis-two-nodes":
        second = RedisBus(redis_url, namespace=namespace)
        await second.open()
    try:
        yield Nodes(first, second)
    finally:
        await first.close()
        await second.close()


async def test_a_subscriber_receives_what_is_published(nodes: Nodes) -> None:
    thread_id = thread()
    got = Collector()
    await nodes.subscriber.subscribe(thread_id, got)
    sent = make_events(thread_id, [1])
    await nodes.publisher.publish(sent)
    assert await got.wait_for(1) == sent


async def test_events_keep_their_content_through_the_bus(nodes: Nodes) -> None:
    thread_id = thread()
    got = Collector()
    await nodes.subscriber.subscribe(thread_id, got)
    sent = make_events(thread_id, [7], text="héllo ✓", nested={"a": [1, None, True]})
    await nodes.publisher.publish(sent)
    [event] = await got.wait_for(1)
    assert event.to_json() == sent[0].to_json()


async def test_a_subscriber_receives_only_its_threads(nodes: Nodes) -> None:
    mine, other = thread(), thread()
    got = Collector()
    await nodes.subscriber.subscribe(mine, got)
    await nodes.publisher.publish(make_events(other, [1, 2]))
    await nodes.publisher.publish(make_events(mine, [1]))
    events = await got.wait_for(1)
    assert [e.thread_id for e in events] == [mine]


async def test_events_of_a_thread_arrive_in_publish_order(nodes: Nodes) -> None:
    thread_id = thread()
    got = Collector()
    await nodes.subscriber.subscribe(thread_id, got)
    events = make_events(thread_id, range(1, 301))
    for start in range(0, 300, 7):  # batches of varied size, as the coordinator sends them
        await nodes.publisher.publish(events[start : start + 7])
    await got.wait_for(300)
    assert got.seqs == list(range(1, 301))


async def test_every_listener_of_a_thread_receives_each_event(nodes: Nodes) -> None:
    thread_id = thread()
    listeners = [Collector() for _ in range(3)]
    for listener in listeners:
        await nodes.subscriber.subscribe(thread_id, listener)
    await nodes.publisher.publish(make_events(thread_id, [1, 2]))
    for listener in listeners:
        assert [e.seq for e in await listener.wait_for(2)] == [1, 2]


async def test_an_unsubscribed_listener_receives_nothing_more(nodes: Nodes) -> None:
    thread_id = thread()
    gone, stays = Collector(), Collector()
    await nodes.subscriber.subscribe(thread_id, gone)
    await nodes.subscriber.subscribe(thread_id, stays)
    await nodes.publisher.publish(make_events(thread_id, [1]))
    await gone.wait_for(1)
    await stays.wait_for(1)
    await nodes.subscriber.unsubscribe(thread_id, gone)
    await nodes.publisher.publish(make_events(thread_id, [2]))
    await stays.wait_for(2)  # delivered to both listeners in one dispatch, had `gone` stayed
    assert gone.seqs == [1]


async def test_a_thread_can_be_subscribed_again_after_its_last_listener_left(
    nodes: Nodes,
) -> None:
    thread_id = thread()
    first, second = Collector(), Collector()
    await nodes.subscriber.subscribe(thread_id, first)
    await nodes.subscriber.unsubscribe(thread_id, first)
    await nodes.subscriber.subscribe(thread_id, second)
    await nodes.publisher.publish(make_events(thread_id, [1]))
    assert [e.seq for e in await second.wait_for(1)] == [1]
    assert first.events == []


async def test_unsubscribing_an_unknown_listener_is_ignored(nodes: Nodes) -> None:
    await nodes.subscriber.unsubscribe(thread(), Collector())
    thread_id = thread()
    await nodes.subscriber.subscribe(thread_id, Collector())
    await nodes.subscriber.unsubscribe(thread_id, Collector())


async def test_publishing_without_subscribers_or_events_is_fine(nodes: Nodes) -> None:
    await nodes.publisher.publish([])
    await nodes.publisher.publish(make_events(thread(), [1]))
    await nodes.publisher.ping()
