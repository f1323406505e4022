"""The store contract: records, errors and the repository Protocol every backend meets.

The store is the system's memory: every event is written here (and given its seq)
before anyone sees it, and resuming clients read from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, runtime_checkable

from threadwire.events import (
    AGENT_COMPLETED,
    AGENT_ERROR,
    RUN_CANCELLED,
    Event,
    NewEvent,
    format_ts,
)

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
RUN_STATUSES: Final[tuple[RunStatus, ...]] = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
)
FINISHED_STATUSES: Final = frozenset({"completed", "failed", "cancelled"})
STATUS_OF_TERMINAL: Final[dict[str, RunStatus]] = {
    AGENT_COMPLETED: "completed",
    AGENT_ERROR: "failed",
    RUN_CANCELLED: "cancelled",
}
"""The final status each terminal event type implies."""

MAX_PAGE: Final = 1000

T = TypeVar("T")


class StoreError(Exception):
    """Base of the store's refusals; `code` is the machine-readable reason."""

    code = "store_error"


class ThreadExists(StoreError):
    """The thread ID is taken (whoever owns it)."""

    code = "thread_exists"


class NotFound(StoreError):
    """No such thread or run."""

    code = "not_found"


class RunExists(StoreError, ValueError):
    """A run with this canonical ID is already recorded."""

    code = "run_exists"


class EventExists(StoreError):
    """An event with this event_id is already stored (event IDs are unique)."""

    code = "event_exists"


class RunEnded(StoreError):
    """An append names a recorded run after its terminal event: stored already, or earlier
    in the same append. Nothing follows a run's terminal event (decision 0111).

    `index` is the position of the first refused event in the append; `terminal` is the
    run's stored terminal event when there is one to show (None when it came earlier in
    the same append, or was pruned).
    """

    code = "run_finished"

    def __init__(self, run_id: str, index: int, terminal: Event | None = None) -> None:
        super().__init__(
            f"run {run_id!r} already ended: event {index} of the append comes after its "
            "terminal event"
        )
        self.run_id = run_id
        self.index = index
        self.terminal = terminal


class InvalidCursor(StoreError, ValueError):
    """A `before` cursor this store did not hand out."""

    code = "invalid_cursor"


class SchemaOutdated(StoreError):
    """The database's schema is not the one this code needs (`threadwire db upgrade`)."""

    code = "schema_outdated"

    def __init__(
        self, current: str, head: str, url: str, *, database_is_newer: bool = False
    ) -> None:
        if database_is_newer:
            detail = "is newer than this threadwire knows: upgrade threadwire itself"
        else:
            detail = f"({url}) is behind: run `threadwire db upgrade --database-url URL`"
        super().__init__(
            f"database schema at revision {current!r}, this threadwire needs {head!r}; "
            f"the database {detail}"
        )
        self.current = current
        self.head = head


class EventsGone(StoreError):
    """A resume from before the thread's low-water mark: those events were pruned."""

    code = "gone"

    def __init__(self, thread_id: str, first_seq: int) -> None:
        super().__init__(f"events of thread {thread_id!r} before seq {first_seq} were pruned")
        self.thread_id = thread_id
        self.first_seq = first_seq


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """A thread: owned by the user who created it; `head_seq` is its last stored seq."""

    thread_id: str
    owner: str
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    head_seq: int = 0
    low_seq: int = 0
    """Highest pruned seq: events with seq <= low_seq are gone (0 when none were)."""

    def to_dict(self) -> dict[str, Any]:
        """The thread body of the HTTP API."""
        return {
            "thread_id": self.thread_id,
            "owner": self.owner,
            "created_at": format_ts(self.created_at),
            "metadata": self.metadata,
            "head_seq": self.head_seq,
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run of an agent on a thread; `run_id` is always canonical."""

    run_id: str
    thread_id: str
    agent: str
    status: RunStatus
    created_at: datetime
    input: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    node_id: str | None = None
    """The gateway node executing the run (cluster mode), None for external workers."""

    @property
    def finished(self) -> bool:
        """True once the run reached a final status."""
        return self.status in FINISHED_STATUSES

    def evolve(self, **changes: Any) -> RunRecord:
        """A copy with `changes` applied."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The run body of the HTTP API."""
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "agent": self.agent,
            "status": self.status,
            "created_at": format_ts(self.created_at),
            "started_at": format_ts(self.started_at) if self.started_at else None,
            "finished_at": format_ts(self.finished_at) if self.finished_at else None,
            "result": self.result,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a newest-first listing; `next_before` is the cursor of the next page."""

    items: list[T]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one retention pass removed."""

    events: int = 0
    threads: int = 0
    """Threads whose low-water mark moved."""
    idempotency_keys: int = 0


@runtime_checkable
class Store(Protocol):
    """What the runtime and gateway need from any backend (memory, SQLite, PostgreSQL)."""

    url: str

    async def open(self) -> None:
        """Connect and bring the schema up to date (embedded) or check it (production)."""

    async def close(self) -> None:
        """Flush pending appends and release connections."""

    async def ping(self) -> None:
        """Raise when the backend cannot answer (readiness)."""

    # threads
    async def create_thread(
        self, thread_id: str, owner: str, metadata: dict[str, Any] | None = None
    ) -> ThreadRecord:
        """Create a thread; raises ThreadExists when the ID is taken."""
        ...

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        """The thread, or None."""
        ...

    async def list_threads(
        self, owner: str, *, limit: int = 50, before: str | None = None
    ) -> Page[ThreadRecord]:
        """The owner's threads, newest first; raises InvalidCursor for a bad `before`."""
        ...

    # runs
    async def create_run(self, run: RunRecord) -> RunRecord:
        """Record a new run; raises NotFound (no such thread) or RunExists."""
        ...

    async def ensure_run(self, run: RunRecord, *, legacy_id: str | None = None) -> RunRecord:
        """Record `run` unless a run with its ID exists; alias `legacy_id` to it. Returns
        the stored run (external workers' runs are recorded on first sight)."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """A run by any accepted ID format: canonical, alias, registered legacy, bare UUID."""
        ...

    async def list_runs(
        self, thread_id: str, *, limit: int = 50, before: str | None = None
    ) -> Page[RunRecord]:
        """The thread's runs, newest first; raises InvalidCursor for a bad `before`."""
        ...

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Apply `changes` (status, started_at, finished_at, result, error, node_id) to a
        run named by its canonical ID; raises NotFound."""
        ...

    async def list_unfinished_runs(self, *, node_id: str | None = None) -> list[RunRecord]:
        """Runs that are queued or running (optionally only those of one node)."""
        ...

    # events
    async def append(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        """Store `events` atomically, giving each the next seq of its thread, in order.

        With `idempotency_key`, a retry (same key, same thread) stores nothing and
        returns the events stored the first time, before any rule below is applied.
        All or nothing: raises NotFound (a thread does not exist), EventExists (an
        event_id is taken) or RunEnded (an event of a recorded run comes after that
        run's terminal event, stored or earlier in `events`) and stores none. An event
        of a type in `events.TERMINAL_TYPES` ends its run, atomically with its append.
        """
        ...

    async def idempotent_events(self, thread_id: str, key: str) -> list[Event] | None:
        """The events a request with idempotency `key` stored on `thread_id`, or None
        when no request used that key (a retry is answered with these)."""
        ...

    async def read_events(
        self, thread_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[Event]:
        """Events with seq > after_seq, ascending, at most `limit`; raises EventsGone when
        events after `after_seq` were pruned."""
        ...

    async def head_seq(self, thread_id: str) -> int:
        """The thread's highest stored seq (0 when none or unknown)."""
        ...

    async def prune(self, older_than: timedelta, *, batch_size: int = 1000) -> PruneResult:
        """Remove events older than `older_than` of finished runs, in batches.

        Only a thread's oldest events go (a prefix, so seq stays gap-free for
        resumers) and never its last one; the thread's `low_seq` moves past them.
        """
        ...

    # ids
    async def resolve_thread(self, run_id: str) -> str:
        """The thread of any accepted run ID (ids spec 2.2); raises InvalidIdError."""
        ...

    async def canonical_run_id(self, run_id: str) -> str | None:
        """The canonical ID of a known run named in any accepted format, else None."""
        ...

    async def add_alias(self, legacy_id: str, run_id: str, thread_id: str) -> None:
        """Record that `legacy_id` names canonical `run_id` (idempotent)."""
        ...
