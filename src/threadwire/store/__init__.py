"""The store: threads, runs, events with gap-free per-thread seq, legacy-ID aliases.

Backends are chosen by URL scheme and imported lazily: `memory://`,
`sqlite:///path` (embedded default, SQLite with WAL), `postgresql://...`; plain URLs
map to the async drivers (aiosqlite, asyncpg).
"""

from __future__ import annotations

from threadwire.store.base import (
    FINISHED_STATUSES,
    RUN_STATUSES,
    EventExists,
    EventsGone,
    InvalidCursor,
    NotFound,
    Page,
    PruneResult,
    RunEnded,
    RunExists,
    RunRecord,
    RunStatus,
    SchemaOutdated,
    Store,
    StoreError,
    ThreadExists,
    ThreadRecord,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./threadwire.db"

__all__ = [
    "DEFAULT_DATABASE_URL",
    "FINISHED_STATUSES",
    "RUN_STATUSES",
    "EventExists",
    "EventsGone",
    "InvalidCursor",
    "NotFound",
    "Page",
    "PruneResult",
    "RunEnded",
    "RunExists",
    "RunRecord",
    "RunStatus",
    "SchemaOutdated",
    "Store",
    "StoreError",
    "ThreadExists",
    "ThreadRecord",
    "create_store",
]


def create_store(url: str = DEFAULT_DATABASE_URL) -> Store:
    """A store for `url` (not yet opened: call `await store.open()`)."""
    if url.startswith("memory:"):
        from threadwire.store.memory import MemoryStore

        return MemoryStore(url)
    from threadwire.store.sql import SqlStore

    return SqlStore(url)
