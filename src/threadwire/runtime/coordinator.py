"""The one event path: persist (the store assigns seq), then publish. Nothing bypasses it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from threadwire.bus.base import Bus
from threadwire.events import Event, NewEvent
from threadwire.store.base import Store

Observer = Callable[[Sequence[Event]], None]
"""Sees every stored batch after publish (trace export); must not block or raise."""

logger = logging.getLogger("threadwire.runtime")


class Coordinator:
    """Owns the order of the two steps: a subscriber never sees an unstored event."""

    def __init__(self, store: Store, bus: Bus, *, observers: Sequence[Observer] = ()) -> None:
        self.store = store
        self.bus = bus
        self.observers = list(observers)

    async def emit(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        """Store `events` atomically, then announce them; returns the stored events."""
        stored = await self.store.append(events, idempotency_key=idempotency_key)
        if stored:
            try:
                await self.bus.publish(stored)
            finally:
                self._observe(stored)
        return stored

    def _observe(self, stored: Sequence[Event]) -> None:
        # An observer's fault must never cost the producer its acknowledgement.
        for observer in self.observers:
            try:
                observer(stored)
            except Exception:
                logger.exception("event observer %r failed", observer)
