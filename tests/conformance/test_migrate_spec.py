"""Conformance: migrate.md sections 1-2, driven through the command line on a database of our own.

The schema is not tests/migrate/stored's: `conversations` holds the known thread IDs,
`agent_runs` is the primary table (creation time as epoch ms, ISO text and a naive
timestamp), `run_events` refers to it with ON UPDATE CASCADE, `billing` by convention
only. Everything runs `python -m threadwire ...` in a subprocess, as a team would.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from threadwire.ids import extract_thread_id, parse_run_id

C1 = "thread_conv_a_run_1714564800123_aaaaaaaa"
CZ = "thread_conv_z_run_1700000000000_12345678"  # canonical, only in billing
L1 = "run_conv_b_7f3a9c01"
L2 = "run_thread_x_run_1_deadbeef_0badf00d"
A1 = "run_conv_c_12345_1234abcd"  # ambiguous with legacy_run_ts; conv_c is known
A2 = "run_nobody_77_cafebabe"  # ambiguous, neither reading known
A3 = "run_dual_5_abcdef01"  # ambiguous, both readings known
U1 = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"
U2 = "5F0C6A1E9B2D4C3A8E7F60A1B2C3D4E5"
U3 = "11111111-2222-4333-8444-555555555555"  # no thread in its row
U4 = "99999999-aaaa-4bbb-8ccc-dddddddddddd"  # only in billing
G1 = "not a run id"
LONELY = "run_lonely_0000beef"  # only in billing
TOO_LONG = "x" * 300

THREADS = [
    "conv_a",
    "conv_b",
    "conv_c",
    "dual",
    "dual_5",
    "thread_x_run_1_deadbeef",
    "conv_u1",
    "conv.u2:x",
]

# run_key -> (thread_ref, created as epoch ms)
RUNS: dict[str, tuple[str | None, int | None]] = {
    C1: (None, 1714564800123),
    L1: (None, 1714564801999),
    L2: (None, 1714608000000),
    A1: (None, 1719792000000),
    A2: (None, 1719792000001),
    A3: (None, 1719792000002),
    U1: ("conv_u1", 1717200000000),
    U2: ("conv.u2:x", None),
    U3: (None, 1717200000001),
    G1: (None, None),
}
EVENTS: list[str | None] = [L1, L1, L1, L2, A1, A1, A2, U1, U1, C1, None, None]
BILLING: list[str | None] = [L1, L1, U1, C1, A2, LONELY, U4, "", "nope", TOO_LONG, None, CZ]

# What the resolvable legacy IDs become: (thread, timestamp or None for migration time,
# rand8 or None for derived).
EXPECTED: dict[str, tuple[str, int | None, str | None]] = {
    L1: ("conv_b", 1714564801999, "7f3a9c01"),
    L2: ("thread_x_run_1_deadbeef", 1714608000000, "0badf00d"),
    A1: ("conv_c", 1719792000000, "1234abcd"),
    U1: ("conv_u1", 1717200000000, None),
    U2: ("conv.u2:x", None, None),
    LONELY: ("lonely", None, "0000beef"),
}
UNRESOLVABLE = sorted(
    [
        {"id": "", "code": "empty"},
        {"id": U3, "code": "unknown_run"},
        {"id": U4, "code": "unknown_run"},
        {"id": G1, "code": "bad_charset"},
        {"id": "nope", "code": "unknown_format"},
        {"id": A2, "code": "ambiguous"},
        {"id": A3, "code": "ambiguous"},
        {"id": TOO_LONG, "code": "too_long"},
    ],
    key=lambda u: u["id"],
)
COLUMNS = ["agent_runs.run_key", "run_events.run_key", "billing.run_ref"]
FULL = [
    *(a for c in COLUMNS for a in ("--column", c)),
    "--thread-column",
    "agent_runs.thread_ref",
    "--created-at-column",
    "agent_runs.created_ms",
    "--threads",
    "conversations.thread_ref",
    "--enable-format",
    "legacy_run_ts",
]


# -- plumbing ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database, as the plain URL a team would type."""
    if request.param == "sqlite":
        path = tmp_path / "team.db"
        sqlite3.connect(path).close()
        return f"sqlite:///{path}"
    async_url = request.getfixturevalue("postgres_url")
    assert isinstance(async_url, str)
    return async_url.replace("postgresql+asyncpg://", "postgresql://")


def engine_for(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://")
    return sa.create_engine(url, poolclass=NullPool)


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


def seed(url: str, *, extra_ddl: str = "") -> None:
    pg = is_pg(url)
    ddl = [
        "CREATE TABLE conversations "
        "(id INTEGER PRIMARY KEY, thread_ref VARCHAR(128), started TEXT)",
        "CREATE TABLE agent_runs (run_key VARCHAR(400) PRIMARY KEY, conversation_id INTEGER, "
        "thread_ref VARCHAR(128), created_ms BIGINT, created_iso TEXT, created_naive TIMESTAMP)",
        "CREATE TABLE run_events (id INTEGER PRIMARY KEY, "
        "run_key VARCHAR(400) REFERENCES agent_runs(run_key) ON UPDATE CASCADE, payload TEXT)",
        "CREATE TABLE billing (id INTEGER PRIMARY KEY, run_ref TEXT, cents INTEGER)",
    ]
    if extra_ddl:
        ddl.append(extra_ddl)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in ddl:
                conn.exec_driver_sql(statement)
            conn.execute(
                sa.text("INSERT INTO conversations (id, thread_ref, started) VALUES (:i, :t, :s)"),
                [{"i": i, "t": t, "s": "2024-01-01"} for i, t in enumerate(THREADS)],
            )
            rows = []
            for i, (key, (thread, ms)) in enumerate(RUNS.items()):
                naive = (
                    None
                    if ms is None
                    else datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
                )
                rows.append(
                    {
                        "k": key,
                        "c": i,
                        "t": thread,
                        # U1's creation time is stored in epoch seconds
                        "ms": ms // 1000 if key == U1 and ms is not None else ms,
                        "iso": None if naive is None else naive.isoformat() + "+00:00",
                        "naive": naive if pg or naive is None else naive.isoformat(sep=" "),
                    }
                )
            conn.execute(
                sa.text(
                    "INSERT INTO agent_runs (run_key, conversation_id, thread_ref, created_ms, "
                    "created_iso, created_naive) VALUES (:k, :c, :t, :ms, :iso, :naive)"
                ),
                rows,
            )
            conn.execute(
                sa.text("INSERT INTO run_events (id, run_key, payload) VALUES (:i, :k, 'x')"),
                [{"i": i, "k": k} for i, k in enumerate(EVENTS)],
            )
            conn.execute(
                sa.text("INSERT INTO billing (id, run_ref, cents) VALUES (:i, :r, 100)"),
                [{"i": i, "r": r} for i, r in enumerate(BILLING)],
            )
    finally:
        engine.dispose()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the aliases table included, when there is one)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            tables = sorted(sa.inspect(conn).get_table_names())
            return {
                t: sorted(
                    (tuple(map(repr, row)) for row in conn.exec_driver_sql(f'SELECT * FROM "{t}"')),
                )
                for t in tables
            }
    finally:
        engine.dispose()


def column_values(url: str, table: str, column: str) -> list[Any]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql(f"SELECT {column} FROM {table} ORDER BY 1")]
    finally:
        engine.dispose()


def aliases(url: str) -> dict[str, tuple[str, str]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("threadwire_id_aliases"):
                return {}
            rows = conn.exec_driver_sql(
                "SELECT legacy_id, run_id, thread_id FROM threadwire_id_aliases"
            )
            return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        engine.dispose()


def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "threadwire", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    return proc.returncode, proc.stdout, proc.stderr


def inproc(*args: str) -> tuple[int, str, str]:
    """The same entry point as `python -m threadwire`, in this process.

    Starting the CLI costs seconds (it imports the whole server); the tests that are
    about the database's end state, and most refusals, run it here instead. Every kind
    of outcome is also checked at least once through a real subprocess.
    """
    from threadwire.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main() always exits
            code = 0
    return code, out.getvalue(), err.getvalue()


def cli_many(argvs: list[list[str]]) -> list[tuple[int, str, str]]:
    """Run independent commands side by side: one real subprocess, the rest in process."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(cli, *argvs[0], timeout=90)
        rest = [inproc(*argv) for argv in argvs[1:]]
        return [first.result(), *rest]


def migrate(url: str, *args: str, sub: bool = False) -> tuple[int, dict[str, Any], str]:
    run = cli if sub else inproc
    rc, out, err = run("db", "migrate-ids", "--database-url", url, *args, "--json")
    assert rc in (0, 1), (rc, out, err)
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # one JSON object
    return rc, json.loads(lines[0]), err


def refused(rc: int, err: str, *names: str) -> None:
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, lines[0])


def sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def file_hash(url: str) -> str | None:
    path = sqlite_file(url)
    return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()


def sorted_unresolvable(summary: dict[str, Any]) -> list[dict[str, str]]:
    return sorted(summary["unresolvable"], key=lambda u: u["id"])


def check_new_id(old: str, new: str, when: tuple[int, int] | None = None) -> None:
    thread, ts, rand = EXPECTED[old]
    parsed = parse_run_id(new)
    assert parsed.is_canonical and parsed.thread_id == thread, (old, new)
    if ts is not None:
        assert parsed.timestamp_ms == ts, (old, new)
    elif when is not None:
        assert when[0] <= (parsed.timestamp_ms or 0) <= when[1], (old, new, when)
    if rand is not None:
        assert parsed.rand == rand
    else:
        assert parsed.rand is not None and len(parsed.rand) == 8


# -- section 1 --------------------------------------------------------------------------


def test_migrate_then_rerun_then_resolve(url: str) -> None:
    seed(url)
    before = dump(url)
    hashed = file_hash(url)

    # --dry-run: the same counts and status, nothing written (no aliases table either)
    dry_rc, dry, _ = migrate(url, *FULL, "--dry-run", sub=True)
    assert dump(url) == before
    assert file_hash(url) == hashed
    assert "threadwire_id_aliases" not in dump(url)

    start = int(time.time() * 1000)
    rc, summary, err = migrate(url, *FULL, "--batch-size", "2", sub=True)
    end = int(time.time() * 1000)
    assert set(summary) == {"migrated", "already_canonical", "unresolvable", "columns"}
    assert rc == 1  # some values are unresolvable
    assert summary["migrated"] == len(EXPECTED)
    assert summary["already_canonical"] == 2
    assert sorted_unresolvable(summary) == UNRESOLVABLE
    assert summary["columns"] == {
        "agent_runs.run_key": 5,  # L1, L2, A1, U1, U2
        "run_events.run_key": 0,  # changed by the cascade, not by the tool
        "billing.run_ref": 4,  # L1 twice, U1, LONELY
    }
    assert (dry_rc, dry) == (rc, summary)

    recorded = aliases(url)
    assert set(recorded) == set(EXPECTED)
    for old, (new, thread) in recorded.items():
        check_new_id(old, new, (start, end))
        assert thread == EXPECTED[old][0]
    # every listed column rewritten through the same mapping
    runs = column_values(url, "agent_runs", "run_key")
    events = column_values(url, "run_events", "run_key")
    billing = column_values(url, "billing", "run_ref")
    for old, (new, _) in recorded.items():
        assert old not in runs + events + billing
        assert runs.count(new) == (1 if old in RUNS else 0)
        assert events.count(new) == EVENTS.count(old)
        assert billing.count(new) == BILLING.count(old)
    for untouched in (C1, CZ, A2, A3, U3, U4, G1, "", "nope", TOO_LONG):
        assert runs.count(untouched) == (1 if untouched in RUNS else 0)
        assert events.count(untouched) == EVENTS.count(untouched)
        assert billing.count(untouched) == BILLING.count(untouched)
    assert events.count(None) == 2 and billing.count(None) == 1
    # the other columns of the rows are untouched
    after = dump(url)
    assert after["conversations"] == before["conversations"]

    # a further run changes nothing and reports zero migrated
    again_rc, again, _ = migrate(url, *FULL)
    assert again_rc == 1
    assert again["migrated"] == 0
    assert again["columns"] == dict.fromkeys(COLUMNS, 0)
    assert again["already_canonical"] == 2 + len(EXPECTED)
    assert sorted_unresolvable(again) == UNRESOLVABLE
    assert dump(url) == after

    # section 2: every old ID resolves to its new ID and the same thread
    asked = [*EXPECTED, C1, U3, "run_fresh_abcdef12", "run_conv_c_999_feedf00d", A2, "nope"]
    rc, out, err = cli(
        "ids",
        "resolve",
        "--database-url",
        url,
        "--enable-format",
        "legacy_run_ts",
        "--threads",
        "conversations.thread_ref",
        *asked,
    )
    assert rc == 1, err
    answers = [json.loads(line) for line in out.strip().splitlines()]
    assert [a["id"] for a in answers] == asked
    by_id = {a["id"]: a for a in answers}
    for old, (new, thread) in recorded.items():
        assert by_id[old] == {"id": old, "run_id": new, "thread_id": thread}
        assert extract_thread_id(new) == thread
    assert by_id[C1] == {"id": C1, "run_id": C1, "thread_id": "conv_a"}
    assert by_id[U3] == {"id": U3, "error": "unknown_run"}
    assert by_id["run_fresh_abcdef12"] == {
        "id": "run_fresh_abcdef12",
        "run_id": None,
        "thread_id": "fresh",
    }
    # not migrated, ambiguous, settled by the known threads
    assert by_id["run_conv_c_999_feedf00d"] == {
        "id": "run_conv_c_999_feedf00d",
        "run_id": None,
        "thread_id": "conv_c",
    }
    assert by_id[A2] == {"id": A2, "error": "ambiguous"}
    assert by_id["nope"] == {"id": "nope", "error": "unknown_format"}
    # all good: exit 0; resolving reads only
    rc, out, _ = inproc("ids", "resolve", "--database-url", url, L1, C1)
    assert rc == 0
    assert [json.loads(x)["run_id"] for x in out.strip().splitlines()] == [recorded[L1][0], C1]
    assert dump(url) == after


def test_ambiguous_without_a_resolver_is_reported_not_guessed(url: str) -> None:
    seed(url)
    args = [*(a for c in COLUMNS for a in ("--column", c)), "--enable-format", "legacy_run_ts"]
    rc, summary, _ = migrate(url, *args, "--dry-run")
    assert rc == 1
    codes = {u["id"]: u["code"] for u in summary["unresolvable"]}
    assert codes[A1] == codes[A2] == codes[A3] == "ambiguous"
    # bare UUIDs without --thread-column embed no thread: unknown_run
    assert codes[U1] == codes[U2] == codes[U3] == "unknown_run"
    assert summary["migrated"] == 3  # L1, L2, LONELY
    assert "threadwire_id_aliases" not in dump(url)


# created_iso values: ISO 8601 with offsets and without (naive is UTC), micro- and
# sub-millisecond digits truncated; on SQLite also epoch numbers stored as text.
ISO_TIMES: dict[str, tuple[str, int]] = {
    L1: ("2024-05-01T14:00:01.999999+02:00", 1714564801999),
    L2: ("2024-05-02T00:00:00", 1714608000000),
    A1: ("2024-07-01 00:00:00.000999", 1719792000000),
    U1: ("2024-06-01T00:00:00Z", 1717200000000),
}
SQLITE_TEXT_EPOCHS: dict[str, tuple[str, int]] = {
    L1: ("1714564801999", 1714564801999),
    L2: ("1714608000", 1714608000000),
}


def test_creation_times_in_any_stored_form(url: str) -> None:
    """Epoch ms (the main test), epoch seconds, ISO text, naive timestamps, truncated."""
    seed(url)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for key, (text, _) in ISO_TIMES.items():
                conn.execute(
                    sa.text(
                        "UPDATE agent_runs SET created_iso = :t, created_ms = :s WHERE run_key = :k"
                    ),
                    {"t": text, "s": 1714564801, "k": key},  # created_ms in seconds now
                )
    finally:
        engine.dispose()
    iso_args = [*FULL]
    iso_args[iso_args.index("agent_runs.created_ms")] = "agent_runs.created_iso"
    migrate(url, *iso_args)
    recorded = aliases(url)
    for old, (text, ms) in ISO_TIMES.items():
        assert parse_run_id(recorded[old][0]).timestamp_ms == ms, (old, text)


def test_naive_timestamp_column(url: str) -> None:
    seed(url)
    if not is_pg(url):
        engine = engine_for(url)
        try:
            with engine.begin() as conn:
                for key, (text, _) in SQLITE_TEXT_EPOCHS.items():
                    conn.execute(
                        sa.text("UPDATE agent_runs SET created_naive = :t WHERE run_key = :k"),
                        {"t": text, "k": key},
                    )
        finally:
            engine.dispose()
    args = [*FULL]
    args[args.index("agent_runs.created_ms")] = "agent_runs.created_naive"
    migrate(url, *args)
    recorded = aliases(url)
    for old in (L1, L2, A1, U1):
        assert parse_run_id(recorded[old][0]).timestamp_ms == EXPECTED[old][1], old


def test_exit_zero_when_everything_resolves(url: str) -> None:
    seed(url)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM billing")
            conn.exec_driver_sql("DELETE FROM run_events")
            conn.exec_driver_sql(
                f"DELETE FROM agent_runs WHERE run_key NOT IN ('{C1}', '{L1}', '{L2}')"
            )
    finally:
        engine.dispose()
    rc, summary, _ = migrate(url, *FULL)
    assert (rc, summary["migrated"], summary["already_canonical"], summary["unresolvable"]) == (
        0,
        2,
        1,
        [],
    )
    # the text summary (no --json) exits the same way
    rc, out, err = inproc("db", "migrate-ids", "--database-url", url, *FULL)
    assert rc == 0 and out.strip() and "Traceback" not in err


BAD_ARGUMENTS: list[tuple[list[str], list[str]]] = [
    (["--column", "nosuch.run_key"], ["nosuch"]),
    (["--column", "agent_runs.nosuch"], ["nosuch"]),
    (["--column", "agent_runs"], ["agent_runs"]),
    (["--column", "agent_runs.run_key", "--thread-column", "billing.run_ref"], ["--thread-column"]),
    (["--column", "agent_runs.run_key", "--created-at-column", "nosuch.c"], ["nosuch"]),
    (["--column", "agent_runs.run_key", "--threads", "conversations.nosuch"], ["nosuch"]),
    (["--column", "agent_runs.run_key", "--enable-format", "no_such_format"], ["no_such_format"]),
    (["--column", "agent_runs.run_key", "--batch-size", "0"], ["--batch-size"]),
    (["--column", "agent_runs.run_key", "--batch-size", "x"], ["--batch-size"]),
    (["--column", "agent_runs.run_key", "--column", "agent_runs.run_key"], ["agent_runs.run_key"]),
    ([], ["--column"]),
]


def test_bad_arguments_exit_2_with_one_line_and_no_change(url: str) -> None:
    seed(url)
    before = dump(url)
    hashed = file_hash(url)
    cases = BAD_ARGUMENTS if not is_pg(url) else BAD_ARGUMENTS[:2]
    argvs = [
        [
            "db",
            "migrate-ids",
            "--database-url",
            url,
            *args,
            *(["--dry-run"] if i % 2 else []),
            "--json",
        ]
        for i, (args, _) in enumerate(cases)
    ]
    for (rc, _, err), (_, names) in zip(cli_many(argvs), cases, strict=True):
        refused(rc, err, *names)
    assert dump(url) == before
    assert file_hash(url) == hashed


def test_unreachable_databases_exit_2(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}"
    argvs = []
    for target in (missing, "postgresql://nobody:secret@127.0.0.1:1/nope"):
        argvs.append(["db", "migrate-ids", "--database-url", target, "--column", "a.b"])
        argvs.append(["ids", "resolve", "--database-url", target, "run_a_deadbeef"])
    for rc, out, err in cli_many(argvs):
        refused(rc, err)
        assert "secret" not in err
        assert out == ""
    assert not (tmp_path / "missing").exists()


def test_a_foreign_key_that_would_reject_the_rewrite_is_refused_before_any_change(
    url: str,
) -> None:
    seed(
        url,
        extra_ddl="CREATE TABLE refunds (id INTEGER PRIMARY KEY, "
        "run_key VARCHAR(400) REFERENCES agent_runs(run_key))",
    )
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO refunds (id, run_key) VALUES (1, '{L1}')")
    finally:
        engine.dispose()
    before = dump(url)
    hashed = file_hash(url)
    listed = [*FULL, "--column", "refunds.run_key"]
    argvs = [
        ["db", "migrate-ids", "--database-url", url, *args, "--json"]
        for args in (listed, [*listed, "--dry-run"], FULL)
    ]
    for rc, _, err in cli_many(argvs):
        refused(rc, err, "refunds")
    assert dump(url) == before
    assert file_hash(url) == hashed


def test_a_deferrable_key_between_listed_columns_is_fine(url: str) -> None:
    seed(
        url,
        extra_ddl="CREATE TABLE refunds (id INTEGER PRIMARY KEY, run_key VARCHAR(400), "
        "FOREIGN KEY (run_key) REFERENCES agent_runs(run_key) DEFERRABLE INITIALLY IMMEDIATE)",
    )
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO refunds (id, run_key) VALUES (1, '{L1}')")
    finally:
        engine.dispose()
    rc, summary, _ = migrate(url, *FULL, "--column", "refunds.run_key")
    assert rc == 1
    assert summary["columns"]["refunds.run_key"] == 1
    assert column_values(url, "refunds", "run_key") == [aliases(url)[L1][0]]


# -- killed mid-way ---------------------------------------------------------------------

BIG = 1200


def big_legacy(i: int) -> str:
    return f"run_conv{i % 37}_{i:08x}"


def seed_big(url: str) -> None:
    seed(url)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO agent_runs (run_key, conversation_id, created_ms) "
                    "VALUES (:k, :c, :ms)"
                ),
                [{"k": big_legacy(i), "c": 100 + i, "ms": 1714564800000 + i} for i in range(BIG)],
            )
            conn.execute(
                sa.text("INSERT INTO run_events (id, run_key, payload) VALUES (:i, :k, 'y')"),
                [{"i": 1000 + i, "k": big_legacy(i // 2)} for i in range(2 * BIG)],
            )
            conn.execute(
                sa.text("INSERT INTO billing (id, run_ref, cents) VALUES (:i, :r, 1)"),
                [{"i": 1000 + i, "r": big_legacy(i)} for i in range(BIG)],
            )
    finally:
        engine.dispose()


def assert_consistent(url: str, before: dict[str, list[Any]]) -> int:
    """Each row holds its old ID or its recorded new one; returns how many were rewritten."""
    recorded = aliases(url)
    rewritten = 0
    for table, column in (
        ("agent_runs", "run_key"),
        ("run_events", "run_key"),
        ("billing", "run_ref"),
    ):
        pairs = _pairs(url, table, column)
        for key, old in before[table]:
            value = pairs[key]
            if value == old:
                continue
            assert old in recorded, (table, key, old, value)
            assert value == recorded[old][0], (table, key, old, value)
            rewritten += 1
    for old, (new, thread) in recorded.items():
        assert extract_thread_id(new) == thread
        assert thread == (EXPECTED[old][0] if old in EXPECTED else parse_run_id(old).thread_id)
    return rewritten


def _pairs(url: str, table: str, column: str) -> dict[Any, Any]:
    key = "run_key" if table == "agent_runs" else "id"
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            if table == "agent_runs":
                # the primary key is the run ID itself: identify rows by another column
                rows = conn.exec_driver_sql("SELECT conversation_id, run_key FROM agent_runs")
            else:
                rows = conn.exec_driver_sql(f"SELECT {key}, {column} FROM {table}")
            return dict(rows.all())
    finally:
        engine.dispose()


def test_killed_mid_run_then_rerun_finishes_and_a_further_run_changes_nothing(url: str) -> None:
    seed_big(url)
    before = {
        "agent_runs": list(_pairs(url, "agent_runs", "run_key").items()),
        "run_events": list(_pairs(url, "run_events", "run_key").items()),
        "billing": list(_pairs(url, "billing", "run_ref").items()),
    }
    rng = random.Random()
    args = [sys.executable, "-m", "threadwire", "db", "migrate-ids", "--database-url", url, *FULL]
    proc = subprocess.Popen(
        [*args, "--batch-size", "3", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        target = rng.randint(1, BIG // 2)
        while proc.poll() is None and len(aliases(url)) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.random() * 0.05)  # and then at a random moment
        assert proc.poll() is None, "finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert_consistent(url, before)
    assert 0 < len(aliases(url)) < BIG + len(EXPECTED)

    rc, summary, _ = migrate(url, *FULL, "--batch-size", "500", sub=True)
    assert rc == 1
    assert sorted_unresolvable(summary) == UNRESOLVABLE
    recorded = aliases(url)
    assert len(recorded) == BIG + len(EXPECTED)
    assert assert_consistent(url, before) == sum(
        1 for rows in before.values() for _, old in rows if old in recorded
    )
    for i in range(BIG):
        old = big_legacy(i)
        assert recorded[old][0] == f"thread_conv{i % 37}_run_{1714564800000 + i}_{i:08x}"
    # the columns count only this run's own rewrites; the kill's are not counted twice
    rows_left = summary["columns"]["billing.run_ref"]
    assert 0 <= rows_left <= BIG + 4
    settled = dump(url)
    rc, again, _ = migrate(url, *FULL)
    assert again["migrated"] == 0
    assert again["columns"] == dict.fromkeys(COLUMNS, 0)
    assert dump(url) == settled
