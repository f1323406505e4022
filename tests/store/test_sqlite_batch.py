"""SQLite's append statements on the driver's connection write what SQLAlchemy Core would."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from tests.store.helpers import new_event

from threadwire.events import dumps
from threadwire.store.sql import SqlStore
from threadwire.store.sqlite_batch import ts_text
from threadwire.store.tables import events

EVENT_TIMES = [
    datetime(2026, 11, 24, 22, 1, 52, 123456, tzinfo=UTC),
    datetime(2026, 11, 24, 23, 1, 52, tzinfo=timezone(timedelta(hours=1))),  # same UTC day
    datetime(2026, 11, 24, 20, 31, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(999, 1, 1, tzinfo=UTC),  # a year of three digits: zero-padded
]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> SqlStore:
    store = SqlStore(f"sqlite:///{tmp_path / 'batch.db'}")
    await store.open()
    return store


@pytest.mark.parametrize("ts", EVENT_TIMES)
async def test_rows_are_the_text_core_writes_and_read_back_equal(
    sqlite_store: SqlStore, ts: datetime
) -> None:
    store = sqlite_store
    try:
        await store.create_thread("fast", "alice")
        await store.create_thread("core", "alice")
        data = {"ü": "✓", "nested": [1, 2.5, None, {"a": True}], "quote": 'say "hi"'}
        checked = replace(new_event("fast", "r", ts=ts, data=data), data_json=dumps(data))
        [stored, _] = await store.append([new_event("fast", "r", ts=ts, data=data), checked])
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(events).values(
                    thread_id="core",
                    seq=1,
                    event_id="core-1",
                    run_id="r",
                    type="t",
                    ts=ts,
                    data=data,
                )
            )
            rows = {
                (r.thread_id, r.seq): (r.ts, r.data)
                for r in await conn.execute(text("SELECT thread_id, seq, ts, data FROM events"))
            }
        # The producer's own JSON text (data_json, from its check) is the one stored.
        assert rows["fast", 1] == rows["fast", 2] == rows["core", 1]
        assert rows["fast", 1][0] == ts_text(ts)
        [read, read_checked] = await store.read_events("fast")
        assert read == stored
        assert read.ts == ts and read.data == data == read_checked.data
        async with store.engine.connect() as conn:
            last = await conn.scalar(text("SELECT last_seq FROM threads WHERE thread_id = 'fast'"))
            assert last == 2
            stored_ts = select(events.c.ts).where(events.c.thread_id == "fast", events.c.seq == 1)
            assert await conn.scalar(stored_ts) == ts
    finally:
        await store.close()
