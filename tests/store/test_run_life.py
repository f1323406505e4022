"""Nothing follows a run's terminal event: the append refuses it, in its transaction (0111)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from alembic import command
from sqlalchemy import Connection, insert, select
from tests.store.helpers import new_event, new_run

from threadwire.events import AGENT_COMPLETED, AGENT_ERROR, RUN_CANCELLED, Event, utcnow
from threadwire.store import RunEnded, Store, create_store
from threadwire.store.engine import create_engine
from threadwire.store.schema import alembic_config
from threadwire.store.sql import SqlStore
from threadwire.store.tables import events, runs, threads

T = "t"


@pytest.fixture
async def run_id(store: Store) -> str:
    """A recorded, running run on thread `t`."""
    await store.create_thread(T, "alice")
    run = await store.create_run(new_run(T, status="running"))
    return run.run_id


async def _run_events(store: Store, run_id: str) -> list[Event]:
    return [e for e in await store.read_events(T, limit=1000) if e.run_id == run_id]


@pytest.mark.parametrize("terminal", [AGENT_COMPLETED, AGENT_ERROR, RUN_CANCELLED])
async def test_an_append_after_the_stored_terminal_event_is_refused(
    store: Store, run_id: str, terminal: str
) -> None:
    [ended] = await store.append([new_event(T, run_id, terminal)])
    # The status still says running: the supervisor records it after the event (0066).
    for late in ("agent_message", terminal):
        with pytest.raises(RunEnded) as refused:
            await store.append([new_event(T, run_id, late)])
        assert (refused.value.run_id, refused.value.index) == (run_id, 0)
        assert refused.value.terminal == ended
        assert refused.value.code == "run_finished"
    assert await store.head_seq(T) == 1


async def test_the_refused_event_is_named_by_its_index_and_nothing_is_stored(
    store: Store, run_id: str
) -> None:
    other = (await store.create_run(new_run(T, status="running"))).run_id
    await store.append([new_event(T, run_id, AGENT_COMPLETED)])
    with pytest.raises(RunEnded) as refused:
        await store.append([new_event(T, other), new_event(T, other), new_event(T, run_id)])
    assert (refused.value.run_id, refused.value.index) == (run_id, 2)
    assert await store.head_seq(T) == 1


async def test_one_append_may_not_go_on_after_the_end_it_writes(store: Store, run_id: str) -> None:
    batch = [
        new_event(T, run_id, "agent_started"),
        new_event(T, run_id, AGENT_ERROR),
        new_event(T, run_id, AGENT_COMPLETED),
    ]
    with pytest.raises(RunEnded) as refused:
        await store.append(batch)
    assert (refused.value.index, refused.value.terminal) == (2, None)
    assert await store.head_seq(T) == 0
    # Refused whole: the run has not ended.
    assert len(await store.append(batch[:2])) == 2


async def test_an_append_that_ends_one_run_and_goes_on_with_another_is_stored(
    store: Store, run_id: str
) -> None:
    other = (await store.create_run(new_run(T, status="running"))).run_id
    stored = await store.append([new_event(T, run_id, AGENT_COMPLETED), new_event(T, other)])
    assert [e.seq for e in stored] == [1, 2]


async def test_a_retried_key_is_answered_before_the_rule(store: Store, run_id: str) -> None:
    first = await store.append([new_event(T, run_id, AGENT_COMPLETED)], idempotency_key="end")
    again = await store.append([new_event(T, run_id, AGENT_COMPLETED)], idempotency_key="end")
    assert again == first
    assert await store.head_seq(T) == 1


async def test_a_refused_append_leaves_its_key_unused(store: Store, run_id: str) -> None:
    await store.append([new_event(T, run_id, AGENT_COMPLETED)])
    with pytest.raises(RunEnded):
        await store.append([new_event(T, run_id)], idempotency_key="late")
    assert await store.idempotent_events(T, "late") is None
    other = (await store.create_run(new_run(T, status="running"))).run_id
    [stored] = await store.append([new_event(T, other)], idempotency_key="late")
    assert await store.idempotent_events(T, "late") == [stored]


async def test_runs_the_store_has_no_record_of_are_not_held_to_it(store: Store) -> None:
    # The runtime records every run before its first event; the store judges only those.
    await store.create_thread(T, "alice")
    await store.append([new_event(T, "unrecorded", AGENT_COMPLETED)])
    assert len(await store.append([new_event(T, "unrecorded", AGENT_COMPLETED)])) == 1


async def test_concurrent_appends_never_store_an_event_after_the_end(
    store: Store, run_id: str
) -> None:
    # Queued before the end, stored; queued after it (in the same group-commit batch,
    # on SQL backends), refused alone: the other callers of that batch are stored.
    other = (await store.create_run(new_run(T, status="running"))).run_id
    before = [store.append([new_event(T, run_id)]) for _ in range(20)]
    end = store.append([new_event(T, run_id, AGENT_COMPLETED)])
    after = [store.append([new_event(T, run_id if i % 2 else other)]) for i in range(20)]
    outcomes = await asyncio.gather(*before, end, *after, return_exceptions=True)
    assert all(isinstance(o, list) for o in outcomes[:21])
    refused = [o for o in outcomes[21:] if isinstance(o, RunEnded)]
    assert len(refused) == 10 and all(r.run_id == run_id for r in refused)
    assert all(isinstance(o, list) for o in outcomes[21::2])  # the other run goes on
    [ended] = outcomes[20]  # type: ignore[misc]
    assert all(r.terminal == ended for r in refused)
    stored = await _run_events(store, run_id)
    assert stored[-1] == ended and len(stored) == 21
    assert await store.head_seq(T) == 21 + 10


async def test_of_two_concurrent_ends_exactly_one_is_stored(store: Store, run_id: str) -> None:
    outcomes = await asyncio.gather(
        *(store.append([new_event(T, run_id, t)]) for t in (AGENT_COMPLETED, RUN_CANCELLED)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], list) and isinstance(outcomes[1], RunEnded)
    assert [e.type for e in await _run_events(store, run_id)] == [AGENT_COMPLETED]


async def test_status_changes_do_not_reopen_an_ended_run(store: Store, run_id: str) -> None:
    await store.append([new_event(T, run_id, AGENT_COMPLETED)])
    await store.update_run(run_id, status="running", finished_at=None)
    with pytest.raises(RunEnded):
        await store.append([new_event(T, run_id)])


@pytest.fixture
async def second_store(sql_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two nodes (or processes) have."""
    first, second = create_store(sql_url), create_store(sql_url)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_two_writers_on_one_database_never_store_after_the_end(
    second_store: tuple[Store, Store],
) -> None:
    a, b = second_store
    await a.create_thread(T, "alice")
    run_id = (await a.create_run(new_run(T, status="running"))).run_id

    async def messages(store: Store) -> list[Event | BaseException]:
        outcomes: list[Event | BaseException] = []
        for _ in range(30):
            try:
                outcomes.extend(await store.append([new_event(T, run_id)]))
            except RunEnded as exc:
                outcomes.append(exc)
        return outcomes

    async def end() -> Event:
        await asyncio.sleep(0)  # let the message writers start first
        [ended] = await a.append([new_event(T, run_id, AGENT_COMPLETED)])
        return ended

    from_a, from_b, ended = await asyncio.gather(messages(a), messages(b), end())
    stored = await _run_events(a, run_id)
    assert stored[-1] == ended
    for outcomes in (from_a, from_b):
        kinds = [isinstance(o, RunEnded) for o in outcomes]
        assert kinds == sorted(kinds), "once refused, every later append is refused"
        assert all(o.seq < ended.seq for o in outcomes if isinstance(o, Event))


async def _upgrade_to(
    url: str, revision: str, rows: Sequence[tuple[str, dict[str, object]]]
) -> None:
    """Bring `url` to `revision` and insert `rows` (table name, values) in that schema."""
    config = alembic_config()
    tables = {"threads": threads, "runs": runs, "events": events}

    def run(sync_conn: Connection) -> None:
        config.attributes["connection"] = sync_conn
        command.upgrade(config, revision)
        for table, values in rows:
            sync_conn.execute(insert(tables[table]), values)

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def test_upgrading_marks_the_runs_that_ended_before(sql_url: str) -> None:
    now = utcnow()
    run_row = {"thread_id": T, "agent": "echo", "input": {}, "created_at": now, "status": "running"}
    event_row = {"thread_id": T, "ts": now, "data": {}}
    await _upgrade_to(
        sql_url,
        "0001",
        [
            (
                "threads",
                {
                    "thread_id": T,
                    "owner": "alice",
                    "created_at": now,
                    "metadata": {},
                    "last_seq": 3,
                    "low_seq": 0,
                    "pos": 1,
                },
            ),
            ("runs", {**run_row, "run_id": "ended", "pos": 1}),
            ("runs", {**run_row, "run_id": "pruned", "pos": 2, "status": "completed"}),
            ("runs", {**run_row, "run_id": "open", "pos": 3}),
            (
                "events",
                {
                    **event_row,
                    "seq": 1,
                    "event_id": "e1",
                    "run_id": "ended",
                    "type": "agent_message",
                },
            ),
            (
                "events",
                {**event_row, "seq": 2, "event_id": "e2", "run_id": "ended", "type": AGENT_ERROR},
            ),
            (
                "events",
                {
                    **event_row,
                    "seq": 3,
                    "event_id": "e3",
                    "run_id": "open",
                    "type": "agent_message",
                },
            ),
        ],
    )
    store = SqlStore(sql_url, migrate=True)
    await store.open()
    try:
        async with store.engine.connect() as conn:
            marks: dict[str, int | None] = dict(
                (row.run_id, row.ended_seq)
                for row in await conn.execute(select(runs.c.run_id, runs.c.ended_seq))
            )
        assert marks == {"ended": 2, "pruned": 0, "open": None}
        for ended in ("ended", "pruned"):
            with pytest.raises(RunEnded):
                await store.append([new_event(T, ended)])
        assert len(await store.append([new_event(T, "open", AGENT_COMPLETED)])) == 1
    finally:
        await store.close()
