"""The one event path: persist (the store assigns seq), then publish. Nothing bypasses it."""

from __future__ import annotations

from collections.abc import Sequence

from threadwire.bus.base import Bus
from threadwire.events import Event, NewEvent
from threadwire.store.base import Store


class Coordinator:
    """Owns the order of the two steps: a subscriber never sees an unstored event."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus

    async def emit(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        """Store `events` atomically, then announce them; returns the stored events."""
        stored = await self.store.append(events, idempotency_key=idempotency_key)
        if stored:
            await self.bus.publish(stored)
        return stored
