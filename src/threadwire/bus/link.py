"""The link signal: how a bus tells its users that announcements may have been missed.

Pub/sub keeps nothing for a disconnected subscriber, so every event published while a
node's link to Redis was down is never announced to it. The store still has them. A
bus that can lose its link implements `SupportsLink`; its users (the gateway's hub)
react to the transitions:

- `connected=False`: announcements may be missed from now on. Deliver what arrives,
  but expect a back-fill.
- `connected=True` with a new `generation`: every channel that has listeners is
  subscribed again. Back-fill each subscribed thread from the store, from the last seq
  delivered, then keep going with live events (a duplicate seq is dropped, a jump is
  back-filled, as always).

Listeners run on the event loop, in the bus's reader task, and must not block.
The in-memory bus never loses its link and does not implement this Protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class LinkState:
    """Whether the subscriber link is up; `generation` counts the times it came up."""

    connected: bool
    generation: int


LinkListener = Callable[[LinkState], None]
"""Called on every transition of the link; must not block."""


@runtime_checkable
class SupportsLink(Protocol):
    """A bus whose subscriber link can drop (and therefore miss announcements)."""

    @property
    def link(self) -> LinkState:
        """The current state of the subscriber link."""
        ...

    def add_link_listener(self, listener: LinkListener) -> None:
        """Call `listener` on each later transition of the link."""

    def remove_link_listener(self, listener: LinkListener) -> None:
        """Stop calling `listener` (unknown listeners are ignored)."""
