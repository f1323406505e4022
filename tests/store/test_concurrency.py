"""Seq under concurrent writers: no gap, no duplicate, nothing acknowledged ever lost."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from tests.store.helpers import new_event

from threadwire.events import Event
from threadwire.store import NotFound, Store
from threadwire.store.base import EventExists
from threadwire.store.sql import SqlStore

WRITER = Path(__file__).with_name("writer.py")


async def _all_events(store: Store, thread_id: str) -> list[Event]:
    out: list[Event] = []
    while page := await store.read_events(
        thread_id, after_seq=out[-1].seq if out else 0, limit=1000
    ):
        out += page
    return out


def _assert_gap_free(events: Sequence[Event], head: int) -> None:
    assert [e.seq for e in events] == list(range(1, head + 1))
    assert len({e.event_id for e in events}) == len(events)


async def test_many_writers_on_one_thread_leave_no_gap_and_no_duplicate(store: Store) -> None:
    await store.create_thread("t", "alice")

    async def writer(w: int) -> list[list[Event]]:
        done = []
        for i in range(10):
            size = 1 + (w + i) % 3
            done.append(await store.append([new_event("t", f"r{w}") for _ in range(size)]))
        return done

    results = await asyncio.gather(*(writer(w) for w in range(40)))

    calls = [call for per_writer in results for call in per_writer]
    total = sum(len(call) for call in calls)
    stored = await _all_events(store, "t")
    _assert_gap_free(stored, total)
    assert await store.head_seq("t") == total
    for call in calls:  # each caller's events are contiguous and in its order
        assert [e.seq for e in call] == list(range(call[0].seq, call[0].seq + len(call)))
    assert {e.event_id: e.seq for c in calls for e in c} == {e.event_id: e.seq for e in stored}


@pytest.fixture
async def sql_store(sql_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(sql_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class _Commits:
    """Counts the transactions the store's append engine commits."""

    def __init__(self, store: SqlStore) -> None:
        self.count = 0
        self._engine = store.write_engine
        event.listen(self._engine, "commit", self._on_commit)

    def _on_commit(self, _conn: Any) -> None:
        self.count += 1

    def stop(self) -> None:
        event.remove(self._engine, "commit", self._on_commit)


async def test_group_commit_puts_concurrent_appends_in_few_transactions(
    sql_store: SqlStore,
) -> None:
    await sql_store.create_thread("t", "alice")
    commits = _Commits(sql_store)
    try:
        stored = await asyncio.gather(
            *(sql_store.append([new_event("t", "r")]) for _ in range(200))
        )
    finally:
        commits.stop()
    assert sorted(e.seq for [e] in stored) == list(range(1, 201))
    assert commits.count <= 10, f"{commits.count} transactions for 200 appends"


async def test_without_group_commit_each_append_is_its_own_transaction(sql_url: str) -> None:
    store = SqlStore(sql_url, group_commit=False)
    await store.open()
    try:
        await store.create_thread("t", "alice")
        commits = _Commits(store)
        await asyncio.gather(*(store.append([new_event("t", "r")]) for _ in range(20)))
        commits.stop()
        assert commits.count == 20
        _assert_gap_free(await _all_events(store, "t"), 20)
    finally:
        await store.close()


async def test_a_bad_caller_in_a_batch_fails_alone(sql_store: SqlStore) -> None:
    await sql_store.create_thread("t", "alice")
    [taken] = await sql_store.append([new_event("t", "r")])
    reused = replace(new_event("t", "r"), event_id=taken.event_id)
    commits = _Commits(sql_store)
    try:
        outcomes = await asyncio.gather(
            *(sql_store.append([new_event("t", "r"), new_event("t", "r")]) for _ in range(10)),
            sql_store.append([new_event("t", "r"), new_event("missing", "r")]),
            sql_store.append([new_event("t", "r"), reused]),  # refused by the database
            *(sql_store.append([new_event("t", "r")]) for _ in range(10)),
            return_exceptions=True,
        )
    finally:
        commits.stop()
    assert isinstance(outcomes[10], NotFound)
    assert isinstance(outcomes[11], EventExists)
    good = [o for i, o in enumerate(outcomes) if i not in (10, 11)]
    assert all(isinstance(o, list) for o in good)
    _assert_gap_free(await _all_events(sql_store, "t"), 1 + 20 + 10)
    assert commits.count <= 4


async def test_retries_of_one_key_in_one_batch_store_once(sql_store: SqlStore) -> None:
    await sql_store.create_thread("t", "alice")
    answers = await asyncio.gather(
        *(sql_store.append([new_event("t", "r")], idempotency_key="same") for _ in range(5))
    )
    assert all(a == answers[0] for a in answers)
    assert await sql_store.head_seq("t") == 1


async def test_closing_commits_what_was_queued(sql_url: str) -> None:
    store = SqlStore(sql_url)
    await store.open()
    await store.create_thread("t", "alice")
    # gather starts the appends first: all 50 are queued when close() begins.
    appends = [asyncio.ensure_future(store.append([new_event("t", "r")])) for _ in range(50)]
    await asyncio.gather(*appends, store.close())
    assert sorted(e.seq for call in appends for e in call.result()) == list(range(1, 51))


async def _spawn_writer(
    url: str, thread_id: str, count: int, tasks: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        url,
        thread_id,
        str(count),
        str(tasks),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _acks(lines: list[bytes]) -> dict[str, int]:
    acks = {}
    for line in lines:
        fields = line.decode().split()
        if len(fields) == 3 and fields[0] == "ack":  # a line cut by SIGKILL was never read
            acks[fields[1]] = int(fields[2])
    return acks


@pytest.mark.postgres
async def test_writer_processes_on_one_thread_leave_no_gap_and_no_duplicate(
    postgres_url: str,
) -> None:
    store = SqlStore(postgres_url)
    await store.open()
    try:
        await store.create_thread("shared", "alice")
        procs = [await _spawn_writer(postgres_url, "shared", 200, 8) for _ in range(4)]
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outputs]
        acks: dict[str, int] = {}
        for out, _ in outputs:
            acks.update(_acks(out.splitlines()))
        stored = await _all_events(store, "shared")
        _assert_gap_free(stored, 800)
        assert acks == {e.event_id: e.seq for e in stored}
    finally:
        await store.close()


async def test_killed_writer_loses_nothing_it_acknowledged(sql_url: str) -> None:
    store = SqlStore(sql_url)
    await store.open()
    try:
        await store.create_thread("t", "alice")
        proc = await _spawn_writer(sql_url, "t", 0, 16)
        assert proc.stdout is not None
        lines: list[bytes] = []
        while len(lines) < 600:
            line = await proc.stdout.readline()
            assert line, (await proc.stderr.read()).decode() if proc.stderr else "writer died"
            lines.append(line)
        proc.send_signal(signal.SIGKILL)
        lines += (await proc.stdout.read()).splitlines()
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL

        acks = _acks(lines)
        stored = {e.event_id: e.seq for e in await _all_events(store, "t")}
        head = await store.head_seq("t")
        assert acks.items() <= stored.items()
        _assert_gap_free(await _all_events(store, "t"), head)
        assert head >= len(acks)
        assert [e.seq for e in await store.append([new_event("t", "r")])] == [head + 1]
    finally:
        await store.close()
