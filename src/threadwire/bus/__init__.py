"""Fan-out between nodes: `memory://` (single node, default) or `redis://` (cluster)."""

from __future__ import annotations

from threadwire.bus.base import Bus, Listener

__all__ = ["Bus", "Listener", "create_bus"]


def create_bus(url: str | None) -> Bus:
    """The bus for `url`; None or `memory://` is the in-process one."""
    if url is None or url.startswith("memory:"):
        from threadwire.bus.memory import MemoryBus

        return MemoryBus(url or "memory://")
    if url.startswith(("redis://", "rediss://", "unix://")):
        from threadwire.bus.redis import RedisBus

        return RedisBus(url)
    raise ValueError(f"unsupported bus URL scheme: {url.split(':', 1)[0]!r}")
