"""In-memory store: the reference backend for tests and `threadwire.testing`.

Same contract as the SQL backends (one asyncio lock stands in for the transaction),
nothing survives the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from threadwire.events import TERMINAL_TYPES, Event, NewEvent, dumps, utcnow
from threadwire.store import resolve
from threadwire.store.base import (
    MAX_PAGE,
    EventExists,
    EventsGone,
    InvalidCursor,
    NotFound,
    Page,
    PruneResult,
    RunEnded,
    RunExists,
    RunRecord,
    ThreadExists,
    ThreadRecord,
)

_T = TypeVar("_T")


class MemoryStore:
    """A dict-backed Store; `memory://` URLs pick it."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._threads: dict[str, ThreadRecord] = {}
        self._thread_order: list[str] = []
        self._runs: dict[str, RunRecord] = {}
        self._run_order: dict[str, list[str]] = {}
        self._events: dict[str, list[Event]] = {}
        self._aliases: dict[str, tuple[str, str]] = {}
        self._idempotency: dict[tuple[str, str], list[Event]] = {}
        self._event_ids: set[str] = set()
        self._ended: dict[str, Event] = {}
        """Recorded runs whose terminal event is stored -> that event."""
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def ping(self) -> None:
        """Always ready."""

    async def create_thread(
        self, thread_id: str, owner: str, metadata: dict[str, Any] | None = None
    ) -> ThreadRecord:
        async with self._lock:
            if thread_id in self._threads:
                raise ThreadExists(thread_id)
            record = ThreadRecord(thread_id, owner, utcnow(), dict(metadata or {}))
            self._threads[thread_id] = record
            self._thread_order.append(thread_id)
            self._events[thread_id] = []
            return record

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        return self._threads.get(thread_id)

    async def list_threads(
        self, owner: str, *, limit: int = 50, before: str | None = None
    ) -> Page[ThreadRecord]:
        ids = [t for t in reversed(self._thread_order) if self._threads[t].owner == owner]
        return _page(ids, [self._threads[t] for t in ids], limit, before)

    async def create_run(self, run: RunRecord) -> RunRecord:
        async with self._lock:
            return self._insert_run(run)

    def _insert_run(self, run: RunRecord) -> RunRecord:
        if run.thread_id not in self._threads:
            raise NotFound(run.thread_id)
        if run.run_id in self._runs:
            raise RunExists(f"run {run.run_id!r} exists")
        self._runs[run.run_id] = run
        self._run_order.setdefault(run.thread_id, []).append(run.run_id)
        return run

    async def ensure_run(self, run: RunRecord, *, legacy_id: str | None = None) -> RunRecord:
        async with self._lock:
            stored = self._runs.get(run.run_id) or self._insert_run(run)
            if legacy_id is not None and legacy_id != run.run_id:
                self._aliases.setdefault(legacy_id, (stored.run_id, stored.thread_id))
            return stored

    async def get_run(self, run_id: str) -> RunRecord | None:
        if run_id in self._runs:
            return self._runs[run_id]
        alias = self._aliases.get(run_id)
        return self._runs.get(alias[0]) if alias else None

    async def list_runs(
        self, thread_id: str, *, limit: int = 50, before: str | None = None
    ) -> Page[RunRecord]:
        ids = list(reversed(self._run_order.get(thread_id, [])))
        return _page(ids, [self._runs[r] for r in ids], limit, before)

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        async with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise NotFound(run_id)
            updated = replace(run, **changes)
            self._runs[run_id] = updated
            return updated

    async def list_unfinished_runs(self, *, node_id: str | None = None) -> list[RunRecord]:
        return [
            r
            for r in self._runs.values()
            if not r.finished and (node_id is None or r.node_id == node_id)
        ]

    async def append(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        if not events:
            return []
        async with self._lock:
            key = (events[0].thread_id, idempotency_key) if idempotency_key else None
            if key is not None and key in self._idempotency:
                return list(self._idempotency[key])
            seen: set[str] = set()
            for new in events:
                if new.thread_id not in self._threads:
                    raise NotFound(new.thread_id)
                if new.event_id in self._event_ids or new.event_id in seen:
                    raise EventExists(new.event_id)
                seen.add(new.event_id)
                _check_event(new)
            self._check_run_life(events)
            self._event_ids |= seen
            stored: list[Event] = []
            for new in events:
                thread = self._threads[new.thread_id]
                event = Event.stored(new, thread.head_seq + 1)
                self._threads[new.thread_id] = replace(thread, head_seq=event.seq)
                self._events[new.thread_id].append(event)
                stored.append(event)
                if event.is_terminal and event.run_id in self._runs:
                    self._ended[event.run_id] = event
            if key is not None:
                self._idempotency[key] = stored
            return stored

    def _check_run_life(self, events: Sequence[NewEvent]) -> None:
        """Raise RunEnded for the first event of a recorded run after the run's end."""
        ending: set[str] = set()
        for index, new in enumerate(events):
            if new.run_id not in self._runs:
                continue
            if new.run_id in ending:
                raise RunEnded(new.run_id, index)
            terminal = self._ended.get(new.run_id)
            if terminal is not None:
                raise RunEnded(new.run_id, index, terminal)
            if new.type in TERMINAL_TYPES:
                ending.add(new.run_id)

    async def idempotent_events(self, thread_id: str, key: str) -> list[Event] | None:
        stored = self._idempotency.get((thread_id, key))
        return list(stored) if stored is not None else None

    async def read_events(
        self, thread_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[Event]:
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        if after_seq < thread.low_seq:
            raise EventsGone(thread_id, thread.low_seq + 1)
        events = self._events[thread_id]
        start = next((i for i, e in enumerate(events) if e.seq > after_seq), len(events))
        return events[start : start + max(0, min(limit, MAX_PAGE))]

    async def head_seq(self, thread_id: str) -> int:
        thread = self._threads.get(thread_id)
        return thread.head_seq if thread else 0

    async def prune(self, older_than: timedelta, *, batch_size: int = 1000) -> PruneResult:
        cutoff = utcnow() - older_than
        deleted = moved = 0
        async with self._lock:
            for thread_id, events in self._events.items():
                keep = next(
                    (
                        i
                        for i, e in enumerate(events)
                        if e.ts >= cutoff or not self._run_finished(e.run_id)
                    ),
                    len(events) - 1,
                )
                keep = min(keep, len(events) - 1)
                if keep <= 0:
                    continue
                thread = self._threads[thread_id]
                self._threads[thread_id] = replace(thread, low_seq=events[keep - 1].seq)
                self._events[thread_id] = events[keep:]
                deleted += keep
                moved += 1
            stale = [k for k, v in self._idempotency.items() if all(e.ts < cutoff for e in v)]
            for key in stale:
                del self._idempotency[key]
        return PruneResult(events=deleted, threads=moved, idempotency_keys=len(stale))

    def _run_finished(self, run_id: str) -> bool:
        run = self._runs.get(run_id)
        return run is not None and run.finished

    async def resolve_thread(self, run_id: str) -> str:
        return await resolve.resolve_thread(
            run_id,
            alias=self._alias,
            existing_threads=self._existing,
            run_thread=self._run_thread,
        )

    async def canonical_run_id(self, run_id: str) -> str | None:
        run = await self.get_run(run_id)
        return run.run_id if run else None

    async def add_alias(self, legacy_id: str, run_id: str, thread_id: str) -> None:
        self._aliases.setdefault(legacy_id, (run_id, thread_id))

    async def _alias(self, legacy_id: str) -> tuple[str, str] | None:
        return self._aliases.get(legacy_id)

    async def _existing(self, candidates: Sequence[str]) -> set[str]:
        return {t for t in candidates if t in self._threads}

    async def _run_thread(self, run_id: str) -> str | None:
        run = self._runs.get(run_id)
        return run.thread_id if run else None


def _check_event(new: NewEvent) -> None:
    """What the SQL backends refuse too: a naive ts, data that is not JSON."""
    if new.ts.tzinfo is None:
        raise ValueError(f"event {new.event_id!r}: ts must be an aware datetime")
    try:
        dumps(new.data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {new.event_id!r}: data is not JSON: {exc}") from exc


def _page(ids: list[str], items: list[_T], limit: int, before: str | None) -> Page[_T]:
    if before is not None and before not in ids:
        raise InvalidCursor(f"unknown cursor {before[:80]!r}")
    start = ids.index(before) + 1 if before is not None else 0
    limit = max(1, min(limit, MAX_PAGE))
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return Page(chunk, ids[start + limit - 1] if more else None)
