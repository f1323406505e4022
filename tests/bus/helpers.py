"""Test helpers shared by the bus and cluster suites: events, a collecting listener, waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

from threadwire.events import AGENT_MESSAGE, Event, utcnow
from threadwire.ids import new_event_id, new_run_id, new_thread_id


def make_events(thread_id: str, seqs: range | list[int], **data: Any) -> list[Event]:
    """Stored-looking events of `thread_id` with the given seqs (one run)."""
    run_id = new_run_id(thread_id)
    return [
        Event(new_event_id(), thread_id, run_id, seq, AGENT_MESSAGE, utcnow(), {"n": seq, **data})
        for seq in seqs
    ]


def thread() -> str:
    """A fresh thread ID."""
    return new_thread_id()


class Collector:
    """A listener that records what it gets and lets a test wait for a count."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    @property
    def seqs(self) -> list[int]:
        """The seqs received, in order of receipt."""
        return [e.seq for e in self.events]

    async def wait_for(self, count: int, within: float = 10.0) -> list[Event]:
        """Wait until at least `count` events arrived; fails the test after `within` s."""
        async with asyncio.timeout(within):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events


async def wait_until(
    condition: Callable[[], object], within: float = 10.0, what: str = "condition"
) -> None:
    """Poll a cheap in-process condition until it holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of a metric sample in the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0
