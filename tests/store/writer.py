"""A writer process for the multi-process and crash tests (not a test module).

    python tests/store/writer.py URL THREAD_ID COUNT TASKS

Appends COUNT events (pairs of two per append, from TASKS concurrent tasks) to
THREAD_ID and prints `ack <event_id> <seq>` for every event once append() returned,
flushed line by line, so the parent knows exactly what was acknowledged. COUNT 0
appends until killed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

from threadwire import ids
from threadwire.events import NewEvent, utcnow
from threadwire.store.sql import SqlStore


async def _task(store: SqlStore, thread_id: str, budget: itertools.count[int], count: int) -> None:
    run_id = ids.new_run_id(thread_id)
    while count == 0 or next(budget) < count // 2:
        pair = [
            NewEvent(ids.new_event_id(), thread_id, run_id, "agent_message", utcnow(), {"n": i})
            for i in range(2)
        ]
        stored = await store.append(pair)
        sys.stdout.write("".join(f"ack {e.event_id} {e.seq}\n" for e in stored))
        sys.stdout.flush()


async def main(url: str, thread_id: str, count: int, tasks: int) -> None:
    """Append as told, then close the store cleanly."""
    store = SqlStore(url, migrate=False)
    await store.open()
    try:
        budget = itertools.count()
        await asyncio.gather(*(_task(store, thread_id, budget, count) for _ in range(tasks)))
    finally:
        await store.close()


if __name__ == "__main__":
    url, thread_id, count, tasks = sys.argv[1:5]
    asyncio.run(main(url, thread_id, int(count), int(tasks)))
