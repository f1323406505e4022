"""The bus contract: how stored events reach every node's subscribers.

The store is the truth and the bus only a doorbell: a listener that sees a seq jump
back-fills from the store (the gateway's hub does), so a bus may lose messages
without any subscriber losing events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from threadwire.events import Event

Listener = Callable[[Event], None]
"""Called once per event of a subscribed thread; must not block (enqueue and return)."""


@runtime_checkable
class Bus(Protocol):
    """Publish stored events; deliver them to this node's listeners by thread."""

    url: str

    async def open(self) -> None:
        """Connect."""

    async def close(self) -> None:
        """Disconnect; listeners get nothing more."""

    async def ping(self) -> None:
        """Raise when the bus cannot answer (readiness)."""

    async def publish(self, events: Sequence[Event]) -> None:
        """Announce stored events (of any threads) to every node."""

    async def subscribe(self, thread_id: str, listener: Listener) -> None:
        """Call `listener` for each later event of `thread_id` published on any node."""

    async def unsubscribe(self, thread_id: str, listener: Listener) -> None:
        """Stop calling `listener` for `thread_id` (unknown pairs are ignored)."""
