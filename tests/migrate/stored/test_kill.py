"""A real `threadwire db migrate-ids` process, SIGKILLed mid-way, then run again.

Each kill must leave every row with its old ID or its new one, every new ID in use
recorded in the aliases, and every legacy ID whole (all old or all new, across tables).
The rerun must end exactly where an uninterrupted run on the same data ends.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.migrate.stored import legacy

from threadwire.migrate.stored import migrate_ids

RUNS = 1200
THREADS = 40
COLUMNS = ["runs.run_id", "run_steps.run_id", "messages.run_id", "messages.parent_run_id"]
COLUMNS += ["audit.run_ref"]
OPTIONS = ["--thread-column", "runs.thread_id", "--created-at-column", "runs.created_at"]
POLL = 0.002
"""Seconds between looks at the aliases table while the migration runs."""


def _run_id(i: int) -> str:
    if i % 10 == 9:
        return f"thread_t{i % THREADS}_run_{1700000000000 + i}_{i:08x}"
    if i % 3 == 0:
        return f"run_t{i % THREADS}_{i:08x}"
    as_uuid = uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15 % (1 << 128))
    return str(as_uuid) if i % 3 == 1 else as_uuid.hex


def seed_large(url: str) -> None:
    """RUNS runs, two cascading steps, one deferrably keyed message and one audit row each."""
    metadata = sa.MetaData()
    legacy.build_schema(metadata, created_type=sa.BigInteger())
    t = metadata.tables
    ids = [_run_id(i) for i in range(RUNS)]
    path = sa.make_url(url).database
    if url.startswith("sqlite") and path:
        # A WAL database, as many applications keep theirs: one fsync per commit.
        with closing(sqlite3.connect(path)) as dbapi:
            dbapi.execute("PRAGMA journal_mode=WAL")
    with legacy.connection(url) as conn:
        metadata.create_all(conn)
        conn.execute(
            t["runs"].insert(),
            [
                {
                    "run_id": r,
                    "thread_id": f"t{i % THREADS}",
                    "created_at": 1714564800000 + i,
                    "n": i,
                }
                for i, r in enumerate(ids)
            ],
        )
        steps = [
            {"id": 2 * i + k, "run_id": r, "step": k} for i, r in enumerate(ids) for k in (0, 1)
        ]
        conn.execute(t["run_steps"].insert(), steps)
        conn.execute(
            t["messages"].insert(),
            [
                {"id": i, "run_id": r, "parent_run_id": ids[i - 1], "body": "x"}
                for i, r in enumerate(ids)
            ],
        )
        conn.execute(t["audit"].insert(), [{"id": i, "run_ref": r} for i, r in enumerate(ids)])


def _count_aliases(url: str) -> int:
    with legacy.connection(url) as conn:
        if not sa.inspect(conn).has_table("threadwire_id_aliases"):
            return 0
        count: int = conn.exec_driver_sql("SELECT count(*) FROM threadwire_id_aliases").scalar_one()
        return count


def _start(url: str, batch_size: int = 1) -> subprocess.Popen[bytes]:
    args = ["db", "migrate-ids", "--database-url", url, *legacy.column_args(COLUMNS), *OPTIONS]
    return subprocess.Popen(
        [sys.executable, "-m", "threadwire", *args, "--batch-size", str(batch_size), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _kill_after(url: str, proc: subprocess.Popen[bytes], aliases: int) -> None:
    """SIGKILL `proc` once the aliases table holds `aliases` rows (it must still be running)."""
    while proc.poll() is None and _count_aliases(url) < aliases:
        time.sleep(POLL)
    assert proc.poll() is None, f"it ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _waiting_on_a_lock(url: str) -> bool:
    # A fresh connection each time: pg_stat_activity is a snapshot per transaction.
    with legacy.connection(url) as conn:
        waiting: int = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).scalar_one()
    return waiting > 0


def assert_consistent(url: str, before: legacy.Snapshot) -> int:
    """Every row old or new, new IDs all recorded, each legacy ID whole. Returns #rewritten."""
    now, recorded = legacy.snapshot(url), legacy.aliases(url)
    state: dict[str, set[str]] = {}
    for table, rows in before.items():
        for key, olds in rows.items():
            for old, value in zip(olds, now[table][key], strict=True):
                if value == old:
                    state.setdefault(str(old), set()).add("old")
                else:
                    assert old in recorded, f"{table}[{key}]: {old!r} rewritten without alias"
                    assert value == recorded[old][0], f"{table}[{key}]: half-written {value!r}"
                    state.setdefault(str(old), set()).add("new")
    split = {old for old, seen in state.items() if len(seen) > 1}
    assert not split, f"legacy IDs both old and new: {sorted(split)[:5]}"
    return sum(1 for seen in state.values() if seen == {"new"})


def _reference(tmp_path: Path) -> tuple[legacy.Snapshot, dict[str, tuple[str, str]]]:
    """What one uninterrupted run makes of the same data (every choice is deterministic)."""
    path = tmp_path / "reference.db"
    sqlite3.connect(path).close()
    url = f"sqlite:///{path}"
    seed_large(url)
    migrate_ids(url, COLUMNS, thread_column="runs.thread_id", created_at_column="runs.created_at")
    return legacy.snapshot(url), legacy.aliases(url)


@pytest.mark.slow
def test_killed_at_random_moments_then_rerun_finishes_consistently(
    db_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    seed_large(db_url)
    before = legacy.snapshot(db_url)
    rng = random.Random(20240501)
    done = 0
    for _ in range(3):
        proc = _start(db_url)
        processes.append(proc)
        _kill_after(db_url, proc, _count_aliases(db_url) + rng.randint(5, 60))
        rewritten = assert_consistent(db_url, before)
        assert rewritten > done  # progress was kept across the kill
        done = rewritten

    proc = _start(db_url, batch_size=1000)
    processes.append(proc)
    _, err = proc.communicate(timeout=60)

    assert (proc.returncode, err) == (0, b"")
    assert assert_consistent(db_url, before) == RUNS - RUNS // 10
    assert (legacy.snapshot(db_url), legacy.aliases(db_url)) == _reference(tmp_path)
    summary = migrate_ids(db_url, COLUMNS, thread_column="runs.thread_id")
    assert (summary.migrated, sum(summary.columns.values())) == (0, 0)


@pytest.mark.postgres
@pytest.mark.slow
def test_killed_while_its_transaction_waits_on_a_lock_nothing_of_that_batch_lands(
    postgres_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    seed_large(postgres_url)
    before = legacy.snapshot(postgres_url)
    legacy_ids = sorted(r for r in map(_run_id, range(RUNS)) if not r.startswith("thread_"))
    victim = legacy_ids[100]
    engine = legacy.engine_for(postgres_url)
    try:
        with engine.connect() as blocker:
            # Hold the victim's audit row: its batch has rewritten runs, run_steps and
            # messages and recorded its alias when its UPDATE of audit has to wait.
            blocker.exec_driver_sql(
                "SELECT id FROM audit WHERE run_ref = %(v)s FOR UPDATE", {"v": victim}
            )
            proc = _start(postgres_url)
            processes.append(proc)
            while proc.poll() is None and not _waiting_on_a_lock(postgres_url):
                time.sleep(POLL)
            assert proc.poll() is None, f"it ended instead of waiting: {proc.communicate()}"
            # Exactly the batches before the victim's are committed.
            assert _count_aliases(postgres_url) == 100
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            blocker.rollback()
    finally:
        engine.dispose()

    assert assert_consistent(postgres_url, before) == 100
    assert victim not in legacy.aliases(postgres_url)
    summary = migrate_ids(
        postgres_url, COLUMNS, thread_column="runs.thread_id", created_at_column="runs.created_at"
    )
    assert summary.migrated == len(legacy_ids) - 100
    assert assert_consistent(postgres_url, before) == len(legacy_ids)
