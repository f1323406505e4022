"""The hub's seam logic in isolation: a bus that loses, repeats and reorders messages
still leaves every subscriber with each event exactly once, in order (the store fills
in), which is what cluster mode relies on."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from threadwire.bus.base import Listener
from threadwire.bus.link import LinkListener, LinkState
from threadwire.events import Event, NewEvent, utcnow
from threadwire.gateway.hub import Hub, Subscription, Wire
from threadwire.ids import new_event_id, new_run_id
from threadwire.runtime.coordinator import Coordinator
from threadwire.store.memory import MemoryStore


class UnreliableBus:
    """Delivers each event to local listeners maybe not at all, maybe twice, maybe late."""

    def __init__(self, rng: random.Random) -> None:
        self.url = "memory://unreliable"
        self.rng = rng
        self.listeners: dict[str, list[Listener]] = {}
        self.late: list[Event] = []

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            roll = self.rng.random()
            if roll < 0.2:
                continue  # lost
            if roll < 0.35:
                self.late.append(event)  # delivered after a later one
                continue
            self._deliver(event)
            if roll < 0.5:
                self._deliver(event)  # duplicated
            if self.late and self.rng.random() < 0.5:
                self._deliver(self.late.pop(0))

    def _deliver(self, event: Event) -> None:
        for listener in tuple(self.listeners.get(event.thread_id, ())):
            listener(event)

    async def subscribe(self, thread_id: str, listener: Listener) -> None:
        self.listeners.setdefault(thread_id, []).append(listener)

    async def unsubscribe(self, thread_id: str, listener: Listener) -> None:
        self.listeners.get(thread_id, []).remove(listener)


class CollectingSink:
    """A sink with room for everything."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.changed = asyncio.Event()

    def offer(self, wire: Wire) -> bool:
        self.seqs.append(wire.seq)
        self.changed.set()
        return True

    async def put(self, wire: Wire) -> bool:
        return self.offer(wire)

    def subscription_failed(self, subscription: Subscription, exc: Exception) -> None:
        raise AssertionError(f"unexpected failure: {exc!r}")

    async def wait_for(self, seq: int) -> None:
        while not self.seqs or self.seqs[-1] < seq:
            self.changed.clear()
            await self.changed.wait()


async def _emit(coordinator: Coordinator, thread_id: str, count: int) -> None:
    run_id = new_run_id(thread_id)
    for i in range(count):
        new = NewEvent(new_event_id(), thread_id, run_id, "agent_message", utcnow(), {"i": i})
        await coordinator.emit([new])


@pytest.mark.parametrize("seed", range(5))
async def test_lost_repeated_and_reordered_bus_messages_are_repaired_from_the_store(
    seed: int,
) -> None:
    store = MemoryStore()
    bus = UnreliableBus(random.Random(seed))
    await store.create_thread("t1", "alice")
    coordinator = Coordinator(store, bus)
    hub = Hub(store, bus)
    await _emit(coordinator, "t1", 20)
    sinks = [CollectingSink() for _ in range(3)]
    for sink, after in zip(sinks, (0, 7, None), strict=True):
        sub = await hub.subscribe("t1", sink, after)
        sub.start()
    await _emit(coordinator, "t1", 200)
    # A final event that does arrive makes every subscriber notice what it missed.
    bus.rng = random.Random(0)
    bus.rng.random = lambda: 0.9  # type: ignore[method-assign]
    await _emit(coordinator, "t1", 1)
    for sink in sinks:
        await asyncio.wait_for(sink.wait_for(221), 10)
    assert sinks[0].seqs == list(range(1, 222))
    assert sinks[1].seqs == list(range(8, 222))
    assert sinks[2].seqs == list(range(21, 222))
    await hub.close()


async def test_releasing_the_last_subscriber_unsubscribes_from_the_bus() -> None:
    store = MemoryStore()
    bus = UnreliableBus(random.Random(0))
    await store.create_thread("t1", "alice")
    hub = Hub(store, bus)
    first = await hub.subscribe("t1", CollectingSink(), None)
    second = await hub.subscribe("t1", CollectingSink(), None)
    assert len(bus.listeners["t1"]) == 1  # one bus listener per thread, not per subscriber
    hub.release(first)
    assert hub.thread_count == 1
    hub.release(second)
    assert hub.thread_count == 0
    await hub.close()
    assert bus.listeners["t1"] == []


class FlakyLinkBus(UnreliableBus):
    """A bus whose link drops: nothing is announced while down (SupportsLink)."""

    def __init__(self) -> None:
        super().__init__(random.Random(0))
        self.rng.random = lambda: 0.9  # type: ignore[method-assign]
        self.link = LinkState(True, 1)
        self.link_listeners: list[LinkListener] = []

    def add_link_listener(self, listener: LinkListener) -> None:
        self.link_listeners.append(listener)

    def remove_link_listener(self, listener: LinkListener) -> None:
        self.link_listeners.remove(listener)

    def set_link(self, connected: bool) -> None:
        self.link = LinkState(connected, self.link.generation + int(connected))
        for listener in tuple(self.link_listeners):
            listener(self.link)

    async def publish(self, events: Sequence[Event]) -> None:
        if self.link.connected:
            await super().publish(events)


async def test_events_missed_while_the_bus_link_was_down_are_back_filled_on_reconnect() -> None:
    store = MemoryStore()
    bus = FlakyLinkBus()
    await store.create_thread("t1", "alice")
    coordinator = Coordinator(store, bus)
    hub = Hub(store, bus)
    sink = CollectingSink()
    (await hub.subscribe("t1", sink, 0)).start()
    await _emit(coordinator, "t1", 3)
    await sink.wait_for(3)
    bus.set_link(False)
    await _emit(coordinator, "t1", 4)  # the run's tail, announced to nobody
    assert sink.seqs == [1, 2, 3]
    bus.set_link(True)  # no later event will come: the hub must look by itself
    await asyncio.wait_for(sink.wait_for(7), 10)
    assert sink.seqs == list(range(1, 8))
    await hub.close()
    assert bus.link_listeners == []


async def test_a_link_flap_before_start_is_caught_up_too() -> None:
    store = MemoryStore()
    bus = FlakyLinkBus()
    await store.create_thread("t1", "alice")
    coordinator = Coordinator(store, bus)
    hub = Hub(store, bus)
    sink = CollectingSink()
    pending = await hub.subscribe("t1", sink, None)
    bus.set_link(False)
    await _emit(coordinator, "t1", 2)
    bus.set_link(True)
    pending.start()
    await asyncio.wait_for(sink.wait_for(2), 10)
    await _emit(coordinator, "t1", 1)
    await asyncio.wait_for(sink.wait_for(3), 10)
    assert sink.seqs == [1, 2, 3] and pending.live
    await hub.close()


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_repairs_are_counted_by_reason_with_the_events_they_delivered() -> None:
    store = MemoryStore()
    bus = FlakyLinkBus()
    await store.create_thread("t1", "alice")
    coordinator = Coordinator(store, bus)
    hub = Hub(store, bus)
    sink = CollectingSink()
    (await hub.subscribe("t1", sink, 0)).start()
    await _emit(coordinator, "t1", 2)
    await sink.wait_for(2)
    link = _sample("threadwire_backfills_total", reason="link")
    jump = _sample("threadwire_backfills_total", reason="seq_jump")
    repaired = _sample("threadwire_backfilled_events_total")

    bus.set_link(False)
    await _emit(coordinator, "t1", 3)  # seqs 3-5, announced to nobody
    bus.set_link(True)
    await asyncio.wait_for(sink.wait_for(5), 10)
    assert _sample("threadwire_backfills_total", reason="link") == link + 1
    assert _sample("threadwire_backfilled_events_total") == repaired + 3

    bus.set_link(False)
    await _emit(coordinator, "t1", 2)  # seqs 6-7 missed...
    bus.link = LinkState(True, bus.link.generation)  # ...and no link signal
    await _emit(coordinator, "t1", 1)  # seq 8 arrives: a jump
    await asyncio.wait_for(sink.wait_for(8), 10)
    assert sink.seqs == list(range(1, 9))
    assert _sample("threadwire_backfills_total", reason="seq_jump") == jump + 1
    # The repair read 6-8 from the store: 8 is stored too by the time it is read.
    assert _sample("threadwire_backfilled_events_total") == repaired + 6
    await hub.close()
