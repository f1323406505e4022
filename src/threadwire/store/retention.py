"""Retention: drop old events of finished runs, a thread's oldest first, in batches.

Only a prefix of a thread goes (its low-water mark `low_seq` moves up), never its last
event, so seq stays gap-free for everyone who resumes after the mark and the next
append still knows its seq. Each batch is its own short transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from threadwire.events import utcnow
from threadwire.store.base import FINISHED_STATUSES, PruneResult
from threadwire.store.engine import read_transaction, write_transaction
from threadwire.store.tables import events, idempotency_keys, runs, threads

_CANDIDATES_PER_QUERY = 200


async def prune(
    engine: AsyncEngine, older_than: timedelta, *, batch_size: int = 1000
) -> PruneResult:
    """Remove events older than `older_than` of finished runs (see the module doc)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cutoff = utcnow() - older_than
    deleted = 0
    moved: set[str] = set()
    after = ""
    while True:
        async with read_transaction(engine) as conn:
            candidates = await _candidates(conn, cutoff, after)
        for thread_id in candidates:
            while (n := await _prune_batch(engine, thread_id, cutoff, batch_size)) > 0:
                deleted += n
                moved.add(thread_id)
        if len(candidates) < _CANDIDATES_PER_QUERY:
            break
        after = candidates[-1]
    keys = await _prune_keys(engine, cutoff, batch_size)
    return PruneResult(events=deleted, threads=len(moved), idempotency_keys=keys)


async def _candidates(conn: AsyncConnection, cutoff: datetime, after: str) -> list[str]:
    """Threads whose oldest remaining event is older than `cutoff` and not their last."""
    first = events.alias("first")
    rows = await conn.execute(
        select(threads.c.thread_id)
        .join(
            first,
            and_(first.c.thread_id == threads.c.thread_id, first.c.seq == threads.c.low_seq + 1),
        )
        .where(
            threads.c.thread_id > after,
            threads.c.last_seq > threads.c.low_seq + 1,
            first.c.ts < cutoff,
        )
        .order_by(threads.c.thread_id)
        .limit(_CANDIDATES_PER_QUERY)
    )
    return list(rows.scalars())


async def _prune_batch(
    engine: AsyncEngine, thread_id: str, cutoff: datetime, batch_size: int
) -> int:
    """Delete up to `batch_size` of the thread's oldest prunable events; returns how many."""
    async with write_transaction(engine) as conn:
        row = (
            await conn.execute(
                select(threads.c.low_seq, threads.c.last_seq)
                .where(threads.c.thread_id == thread_id)
                .with_for_update()
            )
        ).one()
        low, upper = row.low_seq, min(row.last_seq - 1, row.low_seq + batch_size)
        if upper <= low:
            return 0
        keep_from = (
            await conn.execute(
                select(func.min(events.c.seq))
                .select_from(events.outerjoin(runs, runs.c.run_id == events.c.run_id))
                .where(
                    events.c.thread_id == thread_id,
                    events.c.seq > low,
                    events.c.seq <= upper,
                    or_(
                        events.c.ts >= cutoff,
                        runs.c.status.is_(None),
                        runs.c.status.not_in(sorted(FINISHED_STATUSES)),
                    ),
                )
            )
        ).scalar_one()
        new_low = upper if keep_from is None else keep_from - 1
        if new_low <= low:
            return 0
        await conn.execute(
            delete(events).where(
                events.c.thread_id == thread_id, events.c.seq > low, events.c.seq <= new_low
            )
        )
        await conn.execute(
            update(threads).where(threads.c.thread_id == thread_id).values(low_seq=new_low)
        )
        return int(new_low - low)


async def _prune_keys(engine: AsyncEngine, cutoff: datetime, batch_size: int) -> int:
    """Forget idempotency keys older than the retention window, in batches."""
    total = 0
    while True:
        async with write_transaction(engine) as conn:
            old = (
                select(idempotency_keys.c.thread_id, idempotency_keys.c.key)
                .where(idempotency_keys.c.created_at < cutoff)
                .limit(batch_size)
            )
            result = await conn.execute(
                delete(idempotency_keys).where(
                    tuple_(idempotency_keys.c.thread_id, idempotency_keys.c.key).in_(old)
                )
            )
        total += result.rowcount
        if result.rowcount < batch_size:
            return total
