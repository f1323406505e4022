"""migrate-ids on threadwire's own store: the store then answers the old IDs itself."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from threadwire import ids
from threadwire.events import NewEvent
from threadwire.migrate.stored import migrate_ids
from threadwire.store import RunRecord
from threadwire.store.sql import SqlStore

CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
LEGACY = "run_team_7_0badf00d"
BARE = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"


async def test_the_store_resolves_ids_migrated_in_its_own_tables(db_url: str) -> None:
    store = SqlStore(db_url, migrate=True)
    await store.open()
    try:
        await store.create_thread("team_7", "alice")
        for legacy_id in (LEGACY, BARE):
            placeholder = ids.new_run_id("team_7")
            await store.create_run(
                RunRecord(placeholder, "team_7", "echo", "completed", CREATED, owner="alice")
            )
            event = NewEvent(
                ids.new_event_id(), "team_7", placeholder, "agent_message", CREATED, {}
            )
            await store.append([event])
            # What a legacy producer left behind: its own run IDs in runs and events.
            async with store.engine.begin() as conn:
                for table in ("runs", "events"):
                    await conn.execute(
                        text(f"UPDATE {table} SET run_id = :old WHERE run_id = :new"),
                        {"old": legacy_id, "new": placeholder},
                    )
    finally:
        await store.close()

    summary = migrate_ids(
        db_url,
        ["runs.run_id", "events.run_id"],
        thread_column="runs.thread_id",
        created_at_column="runs.created_at",
    )

    assert (summary.migrated, summary.unresolvable) == (2, [])
    assert summary.columns == {"runs.run_id": 2, "events.run_id": 2}
    store = SqlStore(db_url, migrate=True)
    await store.open()
    try:
        canonical = set()
        for legacy_id in (LEGACY, BARE):
            run = await store.get_run(legacy_id)
            assert run is not None
            assert run.run_id.startswith("thread_team_7_run_1714564800123_")
            assert await store.resolve_thread(legacy_id) == "team_7"
            canonical.add(run.run_id)
        assert {r.run_id for r in (await store.list_runs("team_7")).items} == canonical
        events = await store.read_events("team_7")
        assert {e.run_id for e in events} == canonical
    finally:
        await store.close()
