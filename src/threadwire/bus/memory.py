"""In-process bus: the single-node default; publish calls local listeners directly."""

from __future__ import annotations

from collections.abc import Sequence

from threadwire.bus.base import Listener
from threadwire.events import Event


class MemoryBus:
    """Listeners by thread, called synchronously in publish order."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._listeners: dict[str, list[Listener]] = {}

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        self._listeners.clear()

    async def ping(self) -> None:
        """Always ready."""

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            for listener in tuple(self._listeners.get(event.thread_id, ())):
                listener(event)

    async def subscribe(self, thread_id: str, listener: Listener) -> None:
        self._listeners.setdefault(thread_id, []).append(listener)

    async def unsubscribe(self, thread_id: str, listener: Listener) -> None:
        listeners = self._listeners.get(thread_id)
        if listeners and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[thread_id]
