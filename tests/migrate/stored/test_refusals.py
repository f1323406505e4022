"""What migrate_ids refuses before writing anything: bad arguments, keys that would reject
the rewrite, databases it cannot reach, columns that cannot hold canonical IDs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.migrate.stored import legacy

from threadwire.migrate.stored import MigrationError, migrate_ids, resolve_ids


def _refused(url: str, columns: list[str], **options: object) -> str:
    """The one-line reason, after checking that nothing at all was written."""
    before = legacy.dump(url)
    for dry_run in (True, False):
        with pytest.raises(MigrationError) as caught:
            migrate_ids(url, columns, dry_run=dry_run, **options)  # type: ignore[arg-type]
        assert legacy.dump(url) == before
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_key_neither_deferrable_nor_cascading_is_refused_naming_its_table(db_url: str) -> None:
    legacy.seed(db_url, steps_key="plain")

    message = _refused(db_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)

    assert message.startswith("table run_steps: ")
    assert "neither deferrable nor ON UPDATE CASCADE" in message


def test_a_deferrable_key_between_listed_columns_is_rewritten_in_one_batch(db_url: str) -> None:
    legacy.seed(db_url, steps_key="deferrable")

    summary = migrate_ids(db_url, legacy.COLUMNS, batch_size=1, **legacy.FULL_OPTIONS)

    # No cascade now: the tool rewrites the run_steps rows itself.
    assert summary.columns["run_steps.run_id"] == 6
    new = legacy.aliases(db_url)[legacy.LEGACY][0]
    assert legacy.snapshot(db_url)["run_steps"][1] == (new,)


def test_a_cascading_key_from_an_unlisted_column_lets_the_database_follow(
    legacy_url: str,
) -> None:
    columns = [c for c in legacy.COLUMNS if c != "run_steps.run_id"]

    summary = migrate_ids(legacy_url, columns, **legacy.FULL_OPTIONS)

    assert "run_steps.run_id" not in summary.columns
    new = legacy.aliases(legacy_url)[legacy.LEGACY][0]
    assert legacy.snapshot(legacy_url)["run_steps"][1] == (new,)


def test_an_unlisted_column_whose_key_would_break_is_refused(legacy_url: str) -> None:
    # messages.run_id has a deferrable key to runs, but nothing would rewrite it.
    columns = [c for c in legacy.COLUMNS if c != "messages.run_id"]

    message = _refused(legacy_url, columns, **legacy.FULL_OPTIONS)

    assert message.startswith("table messages: ")
    assert "--column messages.run_id" in message


def test_a_listed_column_whose_parent_is_not_listed_is_refused(legacy_url: str) -> None:
    message = _refused(legacy_url, ["audit.run_ref", "messages.run_id"])

    assert message.startswith("table messages: ")
    assert "--column runs.run_id" in message


def test_a_key_between_columns_with_nothing_to_rewrite_is_no_reason_to_refuse(
    db_url: str,
) -> None:
    legacy.seed(db_url, steps_key="plain")
    with legacy.connection(db_url) as conn:
        conn.exec_driver_sql("DELETE FROM run_steps WHERE id > 0")  # keeps the canonical one
        conn.exec_driver_sql("DELETE FROM messages")
        conn.exec_driver_sql(f"DELETE FROM runs WHERE run_id <> '{legacy.CANONICAL}'")

    summary = migrate_ids(db_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)

    assert summary.migrated == 3  # only audit.run_ref had legacy IDs
    assert summary.columns["audit.run_ref"] == 4


@pytest.mark.parametrize(
    ("columns", "options", "expected"),
    [
        # missing table, named with the option at fault
        (["nope.run_id"], {}, "--column nope.run_id: no table 'nope'"),
        # missing column, named with its table
        (["runs.nope"], {}, "--column runs.nope: table 'runs' has no column 'nope'"),
        (["runs"], {}, "--column 'runs': expected TABLE.COLUMN"),
        ([], {}, "--column: give at least one"),
        (["runs.run_id", "RUNS.run_id"], {}, "--column RUNS.run_id: listed twice"),
        (["runs.n"], {}, "--column runs.n: its type is INTEGER"),
        (
            ["runs.run_id"],
            {"thread_column": "messages.body"},
            "--thread-column messages.body: must be a column of the primary table 'runs'",
        ),
        (["runs.run_id"], {"created_at_column": "runs.when"}, "--created-at-column runs.when: "),
        (["runs.run_id"], {"threads": "threads.id"}, "--threads threads.id: table 'threads'"),
        (["runs.run_id"], {"enable_formats": ["nope"]}, "--enable-format 'nope': no such format"),
        (["runs.run_id"], {"batch_size": 0}, "--batch-size 0: must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(
    legacy_url: str, columns: list[str], options: dict[str, object], expected: str
) -> None:
    assert _refused(legacy_url, columns, **options).startswith(expected)


def test_an_unreadable_creation_time_is_refused_naming_the_column(db_url: str) -> None:
    with legacy.connection(db_url) as conn:
        conn.exec_driver_sql("CREATE TABLE jobs (run_id VARCHAR(256), created TEXT)")
        conn.exec_driver_sql("INSERT INTO jobs VALUES ('run_t_0badf00d', 'last tuesday')")

    message = _refused(db_url, ["jobs.run_id"], created_at_column="jobs.created")

    assert message.startswith("--created-at-column jobs.created of 'run_t_0badf00d': ")


@pytest.mark.postgres
def test_a_column_too_short_for_canonical_ids_is_refused(postgres_url: str) -> None:
    with legacy.connection(postgres_url) as conn:
        conn.exec_driver_sql("CREATE TABLE jobs (run_id VARCHAR(36))")
        conn.exec_driver_sql("INSERT INTO jobs VALUES ('run_some_thread_0badf00d')")

    message = _refused(postgres_url, ["jobs.run_id"])

    assert message.startswith("--column jobs.run_id: holds at most 36 characters")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u@h/db", "--database-url: unsupported database 'mysql'"),
        ("not a url", "--database-url: 'not a url' is not a database URL"),
        ("sqlite://", "--database-url: give a SQLite file path"),
        ("postgresql://nobody:secret@127.0.0.1:1/x", "cannot reach database"),
    ],
)
def test_unreachable_or_unsupported_databases_are_refused(url: str, expected: str) -> None:
    with pytest.raises(MigrationError) as caught:
        migrate_ids(url, ["runs.run_id"])

    assert str(caught.value).startswith(expected)
    assert "secret" not in str(caught.value)


def test_a_missing_sqlite_file_is_unreachable_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"

    with pytest.raises(MigrationError, match=r"cannot reach database .*missing\.db: no such file"):
        migrate_ids(f"sqlite:///{path}", ["runs.run_id"])

    assert not path.exists()


def test_a_dry_run_after_a_killed_sqlite_writer_reads_the_recovered_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crashed.db"
    sqlite3.connect(path).close()
    url = f"sqlite:///{path}"
    legacy.seed(url)
    clean = migrate_ids(url, legacy.COLUMNS, dry_run=True, **legacy.FULL_OPTIONS)
    # A writer killed mid-transaction after spilling pages: a hot journal stays behind.
    crash = (
        "import os, signal, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('CREATE TABLE filler (x TEXT)')\n"
        "c.executemany('INSERT INTO filler VALUES (?)', [('a' * 200,)] * 5000)\n"
        "c.execute('PRAGMA cache_size = 1')\n"
        "c.execute('BEGIN')\n"
        "c.execute(\"UPDATE audit SET run_ref = 'half'\")\n"
        "c.execute(\"UPDATE filler SET x = 'b'\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(path)], check=False)
    assert (tmp_path / "crashed.db-journal").stat().st_size > 0

    dry = migrate_ids(url, legacy.COLUMNS, dry_run=True, **legacy.FULL_OPTIONS)

    assert dry.to_json() == clean.to_json()
    assert [r.thread_id for r in resolve_ids(url, [legacy.LEGACY])] == ["user_42"]
