"""`threadwire traces backfill`: copy what the SQL store holds into the trace tables.

Threads are read in `thread_id` order, a chunk at a time, each thread's events in seq
order, through the same RunTracker as the live sink (so both write identical rows).
After each chunk a checkpoint row (the last thread done) goes to the target's
`backfill_checkpoints` table, keyed by the store URL; a later run resumes after it.
A chunk cut short is redone whole: the ReplacingMergeTree tables collapse the copies.

Reads use SQLAlchemy on the store's own tables (`threadwire.store.tables`), in pages,
so a large store is never held in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from threadwire.events import Event, utcnow
from threadwire.store.base import RunRecord
from threadwire.store.engine import create_engine
from threadwire.store.tables import events, runs, threads
from threadwire.traces.rows import RunTracker, TraceRows
from threadwire.traces.schema import CHECKPOINTS
from threadwire.traces.target import TraceTarget, mask_url


class BackfillError(Exception):
    """The backfill cannot start (e.g. a store URL it cannot read from)."""


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    """What a backfill run found before it began (for a progress bar)."""

    source: str
    resumed_after: str | None
    total_events: int
    done_events: int
    """Events of threads a previous run already finished."""


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What a backfill run did."""

    source: str
    resumed_after: str | None
    threads: int
    events: int
    runs: int
    tool_calls: int
    last_thread_id: str | None


Progress = Callable[[int], None]
"""Called with the number of events just written."""


async def read_checkpoint(target: TraceTarget, source: str) -> tuple[str, int, int] | None:
    """(last thread done, threads, events) of the newest checkpoint for `source`."""
    rows = await target.query(
        f"SELECT thread_id, threads, events FROM `{target.database}`.`{CHECKPOINTS.name}` "
        "FINAL WHERE source = {source:String} ORDER BY updated_at DESC LIMIT 1",
        {"source": source},
    )
    if not rows:
        return None
    return str(rows[0]["thread_id"]), int(rows[0]["threads"]), int(rows[0]["events"])


async def _write_checkpoint(
    target: TraceTarget, source: str, thread_id: str, threads_done: int, events_done: int
) -> None:
    row = (source, thread_id, threads_done, events_done, utcnow())
    await target.insert(CHECKPOINTS.name, CHECKPOINTS.column_names, CHECKPOINTS.column_types, [row])


def _run_record(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        thread_id=row.thread_id,
        agent=row.agent,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class Backfill:
    """One backfill from a SQL store URL into an open target."""

    def __init__(
        self,
        database_url: str,
        target: TraceTarget,
        *,
        restart: bool = False,
        threads_per_chunk: int = 100,
        page_size: int = 5_000,
    ) -> None:
        if database_url.startswith("memory:"):
            raise BackfillError(
                "a memory:// store lives only inside its own process: nothing to backfill"
            )
        self.database_url = database_url
        self.source = mask_url(database_url)
        self.target = target
        self.restart = restart
        self.threads_per_chunk = threads_per_chunk
        self.page_size = page_size
        self._checkpoint: tuple[str, int, int] | None = None

    async def plan(self) -> BackfillPlan:
        """Read the checkpoint and count the events, before `run()`."""
        self._checkpoint = None if self.restart else await read_checkpoint(self.target, self.source)
        after = self._checkpoint[0] if self._checkpoint else None
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                count = select(func.count()).select_from(events)
                total = await conn.scalar(count)
                done = 0 if after is None else await conn.scalar(
                    count.where(events.c.thread_id <= after)
                )
        finally:
            await engine.dispose()
        return BackfillPlan(self.source, after, int(total or 0), int(done or 0))

    async def run(self, progress: Progress | None = None) -> BackfillResult:
        """Backfill every thread after the checkpoint; returns what was written."""
        checkpoint = self._checkpoint
        after = checkpoint[0] if checkpoint else None
        threads_done, events_done = (checkpoint[1], checkpoint[2]) if checkpoint else (0, 0)
        counts = {"threads": 0, "events": 0, "runs": 0, "tool_calls": 0}
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                while True:
                    chunk = await self._next_threads(conn, after)
                    if not chunk:
                        break
                    written = await self._chunk(conn, chunk, progress)
                    after = chunk[-1]
                    for key in ("events", "runs", "tool_calls"):
                        counts[key] += written[key]
                    counts["threads"] += len(chunk)
                    threads_done += len(chunk)
                    events_done += written["events"]
                    await _write_checkpoint(
                        self.target, self.source, after, threads_done, events_done
                    )
                    await conn.rollback()  # end the read snapshot between chunks
        finally:
            await engine.dispose()
        return BackfillResult(
            self.source,
            checkpoint[0] if checkpoint else None,
            counts["threads"],
            counts["events"],
            counts["runs"],
            counts["tool_calls"],
            after,
        )

    async def _next_threads(self, conn: AsyncConnection, after: str | None) -> list[str]:
        query = select(threads.c.thread_id).order_by(threads.c.thread_id)
        if after is not None:
            query = query.where(threads.c.thread_id > after)
        result = await conn.execute(query.limit(self.threads_per_chunk))
        return [row.thread_id for row in result]

    async def _chunk(
        self, conn: AsyncConnection, chunk: list[str], progress: Progress | None
    ) -> dict[str, int]:
        tracker = RunTracker(max_open_runs=10**9, max_known_runs=10**9)
        run_rows = await conn.execute(
            select(
                runs.c.run_id,
                runs.c.thread_id,
                runs.c.agent,
                runs.c.status,
                runs.c.created_at,
                runs.c.started_at,
                runs.c.finished_at,
            ).where(runs.c.thread_id.in_(chunk))
        )
        for row in run_rows:
            tracker.note_run(_run_record(row))
        written = {"events": 0, "runs": 0, "tool_calls": 0}
        position = (chunk[0], 0)
        while True:
            page = await conn.execute(
                select(
                    events.c.event_id,
                    events.c.thread_id,
                    events.c.run_id,
                    events.c.seq,
                    events.c.type,
                    events.c.ts,
                    events.c.data,
                )
                .where(
                    events.c.thread_id.between(chunk[0], chunk[-1]),
                    tuple_(events.c.thread_id, events.c.seq) > tuple_(*position),
                )
                .order_by(events.c.thread_id, events.c.seq)
                .limit(self.page_size)
            )
            batch = [
                Event(r.event_id, r.thread_id, r.run_id, r.seq, r.type, r.ts, dict(r.data or {}))
                for r in page
            ]
            if not batch:
                return written
            rows = tracker.rows(batch)
            await self._insert(rows)
            written["events"] += len(rows.events)
            written["runs"] += len(rows.runs)
            written["tool_calls"] += len(rows.tool_calls)
            if progress is not None:
                progress(len(batch))
            position = (batch[-1].thread_id, batch[-1].seq)

    async def _insert(self, rows: TraceRows) -> None:
        for table, columns, types, table_rows in rows.by_table():
            await self.target.insert(table, columns, types, table_rows)
