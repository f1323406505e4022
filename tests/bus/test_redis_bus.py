"""What only the Redis bus does: reference-counted channels, the link signal, reconnection.

Failure tests run against a throwaway redis-server (`redis_server`), never the shared one.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from tests.bus.fixtures import FAST, MakeBus, open_pair
from tests.bus.helpers import Collector, make_events, sample, thread, wait_until
from tests.bus.redis_server import RedisServer, free_port

from threadwire.bus import create_bus, keys
from threadwire.bus import metrics as m
from threadwire.bus.link import LinkState, SupportsLink
from threadwire.bus.redis import BusUnavailable, RedisBus, redact, split_namespace
from threadwire.bus.wire import encode
from threadwire.events import Event

pytestmark = pytest.mark.redis


async def numsub(url: str, channel: str) -> int:
    """How many connections are subscribed to `channel`, as Redis sees it."""
    client = Redis.from_url(url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


class LinkLog:
    """A link listener that records every transition."""

    def __init__(self) -> None:
        self.states: list[LinkState] = []

    def __call__(self, state: LinkState) -> None:
        self.states.append(state)


# channels follow local listeners


async def test_a_thread_channel_is_subscribed_only_while_it_has_local_listeners(
    redis_url: str, make_bus: MakeBus, namespace: str
) -> None:
    bus = make_bus(redis_url)
    await bus.open()
    thread_id = thread()
    channel = keys.thread_channel(namespace, thread_id)
    first, second = Collector(), Collector()
    assert await numsub(redis_url, channel) == 0
    await bus.subscribe(thread_id, first)
    assert await numsub(redis_url, channel) == 1  # confirmed before subscribe returned
    await bus.subscribe(thread_id, second)
    assert await numsub(redis_url, channel) == 1  # one channel per node, not per listener
    await bus.unsubscribe(thread_id, first)
    assert await numsub(redis_url, channel) == 1
    await bus.unsubscribe(thread_id, second)
    for _ in range(500):
        if await numsub(redis_url, channel) == 0:
            break
    assert await numsub(redis_url, channel) == 0


async def test_an_event_published_right_after_subscribe_returns_is_delivered(
    redis_url: str, make_bus: MakeBus
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    for _ in range(20):  # the seam the hub relies on: subscribe, then read the store
        thread_id, got = thread(), Collector()
        await subscriber.subscribe(thread_id, got)
        await publisher.publish(make_events(thread_id, [1]))
        await got.wait_for(1)


async def test_resubscribing_in_quick_succession_ends_subscribed(
    redis_url: str, make_bus: MakeBus, namespace: str
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    thread_id, got = thread(), Collector()
    for _ in range(10):
        await subscriber.subscribe(thread_id, got)
        await subscriber.unsubscribe(thread_id, got)
    await subscriber.subscribe(thread_id, got)
    assert await numsub(redis_url, keys.thread_channel(namespace, thread_id)) == 1
    await publisher.publish(make_events(thread_id, [1]))
    assert [e.seq for e in await got.wait_for(1)] == [1]


# local delivery and origin


async def test_a_node_delivers_its_own_events_once_not_again_from_redis(
    redis_url: str, make_bus: MakeBus
) -> None:
    node, other = make_bus(redis_url), make_bus(redis_url)
    await node.open()
    await other.open()
    thread_id, got = thread(), Collector()
    await node.subscribe(thread_id, got)
    [first, second] = make_events(thread_id, [1, 2])
    await node.publish([first])
    assert got.seqs == [1]  # delivered locally, synchronously
    await node.flush()  # our PUBLISH reached Redis before the other node's
    await other.publish([second])
    await got.wait_for(2)
    assert got.seqs == [1, 2]  # the echo of seq 1 was skipped


# the link signal and reconnection


async def test_the_link_is_up_after_open_and_reports_generation_one(
    redis_url: str, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_url)
    assert bus.link == LinkState(connected=False, generation=0)
    await bus.open()
    assert bus.link == LinkState(connected=True, generation=1)
    assert isinstance(bus, SupportsLink)


async def test_after_a_redis_restart_the_link_comes_back_subscribed_and_says_so(
    redis_server: RedisServer, make_bus: MakeBus, namespace: str
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_server.url, **FAST)
    links = LinkLog()
    subscriber.add_link_listener(links)
    threads = [thread() for _ in range(3)]
    collectors = [Collector() for _ in threads]
    for thread_id, got in zip(threads, collectors, strict=True):
        await subscriber.subscribe(thread_id, got)
    reconnects = sample(m.BUS_RECONNECTS_TOTAL)

    await redis_server.restart()
    await wait_until(lambda: subscriber.link.generation == 2, what="the link to come back")

    assert links.states == [LinkState(False, 1), LinkState(True, 2)]
    # Both nodes reconnect, each on its own schedule: the publisher may trail the signal.
    await wait_until(
        lambda: sample(m.BUS_RECONNECTS_TOTAL) == reconnects + 2, what="both nodes to reconnect"
    )
    for thread_id in threads:  # every channel was subscribed again before the signal
        assert await numsub(redis_server.url, keys.thread_channel(namespace, thread_id)) == 1
    for thread_id, got in zip(threads, collectors, strict=True):
        await publisher.publish(make_events(thread_id, [99]))
        [event] = await got.wait_for(1)
        assert event.seq == 99


async def test_an_event_published_from_the_link_signal_is_delivered(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_server.url, **FAST)
    thread_id, got = thread(), Collector()
    await subscriber.subscribe(thread_id, got)
    tasks: list[asyncio.Task[None]] = []

    def on_link(state: LinkState) -> None:
        # What the hub does on reconnect is read the store; the channel must already be
        # subscribed then, so an event stored and published now is not lost.
        if state.connected:
            tasks.append(asyncio.create_task(publisher.publish(make_events(thread_id, [5]))))

    subscriber.add_link_listener(on_link)
    await redis_server.restart()
    await wait_until(lambda: bool(tasks), what="the link signal")
    await asyncio.gather(*tasks)
    await wait_until(lambda: 5 in got.seqs, within=15, what="the event sent on reconnect")


async def test_a_frozen_redis_is_detected_by_the_health_check_and_recovered(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_server.url, **FAST)
    await bus.open()
    links = LinkLog()
    bus.add_link_listener(links)
    redis_server.freeze()  # the TCP connection stays open; nothing answers
    try:
        await wait_until(lambda: not bus.link.connected, what="the link to be declared dead")
    finally:
        redis_server.thaw()
    await wait_until(lambda: bus.link.connected, what="the link to come back")
    assert [s.connected for s in links.states] == [False, True]
    assert bus.link.generation == 2


async def test_ping_fails_while_redis_is_down_and_recovers(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_server.url, **FAST)
    await bus.open()
    await bus.ping()
    await asyncio.to_thread(redis_server.stop)
    with pytest.raises(BusUnavailable):
        await bus.ping()
    await wait_until(lambda: not bus.link.connected, what="the link to drop")
    await asyncio.to_thread(redis_server.start)
    await wait_until(lambda: bus.link.connected, what="the link to come back")
    await bus.ping()


async def test_events_published_while_redis_is_down_are_sent_when_it_is_back(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_server.url, **FAST)
    thread_id, got = thread(), Collector()
    await subscriber.subscribe(thread_id, got)
    await asyncio.to_thread(redis_server.stop)
    await publisher.publish(make_events(thread_id, [1, 2]))  # does not raise
    await asyncio.to_thread(redis_server.start)
    await wait_until(lambda: subscriber.link.connected, what="the subscriber to reconnect")
    await publisher.flush()
    # They may or may not beat the subscriber's resubscription (that is what back-fill
    # is for), but the writer neither lost nor reordered them: a later event follows.
    await publisher.publish(make_events(thread_id, [3]))
    await wait_until(lambda: 3 in got.seqs, what="the event after the outage")
    assert got.seqs == sorted(got.seqs)


async def test_a_full_outbox_drops_the_oldest_announcements(
    redis_server: RedisServer, make_bus: MakeBus
) -> None:
    bus = make_bus(redis_server.url, max_outbox=3, **FAST)
    await bus.open()
    dropped = sample(m.BUS_MESSAGES_DROPPED_TOTAL, {"reason": "outbox_full"})
    await asyncio.to_thread(redis_server.stop)
    await bus.publish(make_events(thread(), range(1, 6)))
    assert sample(m.BUS_MESSAGES_DROPPED_TOTAL, {"reason": "outbox_full"}) >= dropped + 2


async def test_many_channels_are_subscribed_again_after_a_restart(
    redis_server: RedisServer, make_bus: MakeBus, namespace: str
) -> None:
    bus = make_bus(redis_server.url, **FAST)
    await bus.open()
    threads = [thread() for _ in range(2500)]  # more than one SUBSCRIBE command holds
    got = Collector()
    for thread_id in threads:
        await bus.subscribe(thread_id, got)
    await redis_server.restart()
    await wait_until(lambda: bus.link.generation == 2, within=20, what="the link to come back")
    client = Redis.from_url(redis_server.url)
    try:
        channels = await client.pubsub_channels(f"{namespace}:thread:*")
    finally:
        await client.aclose()
    assert len(channels) == len(threads)


async def test_open_fails_clearly_when_nothing_listens(make_bus: MakeBus) -> None:
    bus = make_bus(f"redis://:hunter2@127.0.0.1:{free_port()}/0", **FAST)
    with pytest.raises(BusUnavailable, match="cannot reach Redis") as caught:
        await bus.open()
    assert "hunter2" not in str(caught.value)


# the reader survives what it cannot control


async def test_the_reader_survives_undecodable_messages(
    redis_url: str, make_bus: MakeBus, namespace: str
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    thread_id, got = thread(), Collector()
    await subscriber.subscribe(thread_id, got)
    dropped = sample(m.BUS_MESSAGES_DROPPED_TOTAL, {"reason": "undecodable"})
    channel = keys.thread_channel(namespace, thread_id)
    for garbage in (b"not json", b"[1]", b'{"o":"x","t":1,"e":{"seq":1}}', b"\xff\xfe"):
        await publisher.publish_now(channel, garbage)
    await publisher.publish(make_events(thread_id, [1]))
    await got.wait_for(1)
    assert sample(m.BUS_MESSAGES_DROPPED_TOTAL, {"reason": "undecodable"}) == dropped + 4


async def test_an_event_on_the_wrong_channel_is_dropped(
    redis_url: str, make_bus: MakeBus, namespace: str
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    mine, got = thread(), Collector()
    await subscriber.subscribe(mine, got)
    [stray] = make_events(thread(), [1])
    message = encode(stray.to_json(), origin="elsewhere", sent_at=0.0)
    await publisher.publish_now(keys.thread_channel(namespace, mine), message)
    await publisher.publish(make_events(mine, [1]))
    events = await got.wait_for(1)
    assert [e.thread_id for e in events] == [mine]


async def test_a_raising_listener_does_not_stop_delivery(
    redis_url: str, make_bus: MakeBus
) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    thread_id, got = thread(), Collector()

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    await subscriber.subscribe(thread_id, broken)
    await subscriber.subscribe(thread_id, got)
    errors = sample(m.BUS_LISTENER_ERRORS_TOTAL)
    await publisher.publish(make_events(thread_id, [1, 2]))
    await got.wait_for(2)
    assert sample(m.BUS_LISTENER_ERRORS_TOTAL) == errors + 2
    assert subscriber.link.connected


# metrics


async def test_traffic_and_lag_are_counted(redis_url: str, make_bus: MakeBus) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    thread_id, got = thread(), Collector()
    await subscriber.subscribe(thread_id, got)
    published = sample(m.BUS_MESSAGES_PUBLISHED_TOTAL)
    received = sample(m.BUS_MESSAGES_RECEIVED_TOTAL)
    lags = sample(m.BUS_LAG_SECONDS + "_count")
    await publisher.publish(make_events(thread_id, [1, 2, 3]))
    await got.wait_for(3)
    await publisher.flush()
    assert sample(m.BUS_MESSAGES_PUBLISHED_TOTAL) >= published + 3
    assert sample(m.BUS_MESSAGES_RECEIVED_TOTAL) >= received + 3
    assert sample(m.BUS_LAG_SECONDS + "_count") >= lags + 3


# raw channels, close, URLs


async def test_raw_channels_carry_payloads_and_count_receivers(
    redis_url: str, make_bus: MakeBus, namespace: str
) -> None:
    sender, receiver = make_bus(redis_url), make_bus(redis_url)
    await sender.open()
    await receiver.open()
    channel = keys.control_channel(namespace, "node-b")
    payloads: list[bytes] = []
    await receiver.subscribe_channel(channel, payloads.append)
    assert await sender.publish_now(channel, b"hello") == 1
    await wait_until(lambda: payloads == [b"hello"], what="the raw payload")
    await receiver.unsubscribe_channel(channel, payloads.append)
    await receiver.unsubscribe_channel(channel, payloads.append)  # unknown: ignored
    for _ in range(500):
        if await sender.publish_now(channel, b"again") == 0:
            break
    assert await sender.publish_now(channel, b"again") == 0


async def test_close_sends_what_was_queued(redis_url: str, make_bus: MakeBus) -> None:
    publisher, subscriber = await open_pair(make_bus, redis_url)
    thread_id, got = thread(), Collector()
    await subscriber.subscribe(thread_id, got)
    await publisher.publish(make_events(thread_id, range(1, 51)))
    await publisher.close()
    await got.wait_for(50)
    with pytest.raises(BusUnavailable):
        await publisher.ping()
    await publisher.close()  # twice is fine
    await publisher.publish(make_events(thread_id, [51]))  # after close: nothing, no error
    assert sample(m.BUS_OUTBOX) >= 0


async def test_namespaces_keep_clusters_apart(redis_url: str, make_bus: MakeBus) -> None:
    blue, green = make_bus(redis_url, namespace="tw-blue-x"), make_bus(redis_url)
    await blue.open()
    await green.open()
    thread_id, got_blue, got_green = thread(), Collector(), Collector()
    await blue.subscribe(thread_id, got_blue)
    await green.subscribe(thread_id, got_green)
    await green.publish(make_events(thread_id, [1]))
    await blue.publish(make_events(thread_id, [2]))
    await got_blue.wait_for(1)
    await got_green.wait_for(1)
    assert got_blue.seqs == [2]
    assert got_green.seqs == [1]


@pytest.mark.parametrize(
    ("url", "redis_url", "namespace"),
    [
        ("redis://h:6379/0", "redis://h:6379/0", None),  # nothing to remove
        ("redis://h:6379/0?namespace=blue", "redis://h:6379/0", "blue"),
        ("redis://h/1?namespace=b&ssl_cert_reqs=none", "redis://h/1?ssl_cert_reqs=none", "b"),
        ("redis://h/0?namespace=", "redis://h/0", None),  # empty means the default
        ("unix:///tmp/r.sock?namespace=n", "unix:///tmp/r.sock", "n"),
    ],
)
def test_the_namespace_comes_from_the_url_query(
    url: str, redis_url: str, namespace: str | None
) -> None:
    assert split_namespace(url) == (redis_url, namespace)


def test_create_bus_picks_redis_for_redis_urls_with_their_namespace() -> None:
    bus = create_bus("redis://127.0.0.1:1/0?namespace=green")
    assert isinstance(bus, RedisBus)
    assert bus.namespace == "green"
    assert create_bus("redis://127.0.0.1:1/0").namespace == keys.DEFAULT_NAMESPACE  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:pw@h:1/0", "redis://u:***@h:1/0"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),  # password only
        ("redis://h:1/0", "redis://h:1/0"),  # nothing to hide
    ],
)
def test_urls_in_messages_hide_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown
