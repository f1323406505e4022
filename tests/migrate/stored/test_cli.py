"""`threadwire db migrate-ids` and `threadwire ids resolve` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.migrate.stored import legacy
from typer.testing import CliRunner

from threadwire.cli import app
from threadwire.cli.migrate import _progress_bar

runner = CliRunner()


def _migrate(url: str, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["db", "migrate-ids", "--database-url", url, *legacy.column_args(), *extra]
    )
    return result.exit_code, result.stdout, result.stderr


def _resolve(url: str, *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = runner.invoke(app, ["ids", "resolve", "--database-url", url, *args])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, lines, result.stderr


def test_json_summary_has_exactly_the_spec_shape(legacy_url: str) -> None:
    code, out, err = _migrate(legacy_url, *legacy.FULL_ARGS, "--json")

    assert (code, err) == (1, "")  # unresolvable values: exit 1
    summary = json.loads(out)
    assert list(summary) == ["migrated", "already_canonical", "unresolvable", "columns"]
    assert summary["migrated"] == 6
    assert summary["unresolvable"] == legacy.UNRESOLVABLE
    assert list(summary["columns"]) == legacy.COLUMNS


def test_dry_run_prints_the_same_summary_and_exit_status(legacy_url: str) -> None:
    before = legacy.dump(legacy_url)

    dry = _migrate(legacy_url, *legacy.FULL_ARGS, "--json", "--dry-run")

    assert legacy.dump(legacy_url) == before
    assert _migrate(legacy_url, *legacy.FULL_ARGS, "--json") == dry


def test_exit_zero_when_everything_resolves_and_a_rerun_migrates_nothing(
    legacy_url: str,
) -> None:
    with legacy.connection(legacy_url) as conn:
        conn.exec_driver_sql("DELETE FROM audit")
        for bad in (legacy.AMBIGUOUS_UNKNOWN, legacy.UUID_NO_THREAD):
            conn.exec_driver_sql(f"DELETE FROM messages WHERE run_id = '{bad}'")
            conn.exec_driver_sql(f"DELETE FROM run_steps WHERE run_id = '{bad}'")
            conn.exec_driver_sql(f"DELETE FROM runs WHERE run_id = '{bad}'")

    first = _migrate(legacy_url, *legacy.FULL_ARGS, "--json")
    second = _migrate(legacy_url, *legacy.FULL_ARGS, "--json")

    assert first[0] == second[0] == 0
    assert json.loads(first[1])["migrated"] == 6
    assert json.loads(second[1]) == {
        "migrated": 0,
        "already_canonical": 7,
        "unresolvable": [],
        "columns": {c: 0 for c in legacy.COLUMNS},
    }


def test_text_summary_names_counts_and_unresolvable_ids(legacy_url: str) -> None:
    code, out, _ = _migrate(legacy_url, *legacy.FULL_ARGS)

    assert code == 1
    assert "migrated 6 legacy IDs" in out
    assert "'run_zzz_999_0000beef': ambiguous" in out
    assert "runs.run_id: 5 rows changed" in out


def test_no_progress_bar_when_not_on_a_terminal(legacy_url: str) -> None:
    _, _, err = _migrate(legacy_url, *legacy.FULL_ARGS, "--batch-size", "1")

    assert err == ""


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--column", "nope.run_id"], "--column nope.run_id: no table 'nope'"),
        (["--column", "runs.nope"], "--column runs.nope: table 'runs' has no column 'nope'"),
        ([], "--column TABLE.COLUMN is required"),
        (["--column", "runs.run_id", "--enable-format", "x"], "--enable-format 'x': no such"),
        (["--column", "runs.run_id", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_them(
    legacy_url: str, args: list[str], reason: str
) -> None:
    result = runner.invoke(app, ["db", "migrate-ids", "--database-url", legacy_url, *args])

    assert result.exit_code == 2
    assert result.stderr == f"threadwire db migrate-ids: {result.stderr.split(': ', 1)[1]}"
    assert result.stderr.split(": ", 1)[1].startswith(reason)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_key_that_would_reject_the_rewrite_exits_2_naming_the_table(db_url: str) -> None:
    legacy.seed(db_url, steps_key="plain")
    before = legacy.dump(db_url)

    code, out, err = _migrate(db_url, *legacy.FULL_ARGS)

    assert (code, out) == (2, "")
    assert err.startswith("threadwire db migrate-ids: table run_steps: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert legacy.dump(db_url) == before


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody:secret@127.0.0.1:1/nothing",  # nothing listens on port 1
        "sqlite:////nonexistent-dir/legacy.db",
    ],
)
def test_an_unreachable_database_exits_2_for_both_commands(url: str) -> None:
    migrate = runner.invoke(app, ["db", "migrate-ids", "--database-url", url, "--column", "a.b"])
    resolve = runner.invoke(app, ["ids", "resolve", "--database-url", url, legacy.LEGACY])

    for result in (migrate, resolve):
        assert result.exit_code == 2
        assert "cannot reach database" in result.stderr
        assert result.stderr.count("\n") == 1
        assert "secret" not in result.stderr


def test_resolve_prints_one_json_line_per_id_and_exits_1_if_any_failed(legacy_url: str) -> None:
    _migrate(legacy_url, *legacy.FULL_ARGS)
    recorded = legacy.aliases(legacy_url)

    code, lines, _ = _resolve(legacy_url, legacy.UUID_HYPHENS, legacy.CANONICAL, legacy.ORPHAN_UUID)

    assert code == 1
    assert lines == [
        {
            "id": legacy.UUID_HYPHENS,
            "run_id": recorded[legacy.UUID_HYPHENS][0],
            "thread_id": "team.x:1",
        },
        {"id": legacy.CANONICAL, "run_id": legacy.CANONICAL, "thread_id": "user_42"},
        {"id": legacy.ORPHAN_UUID, "error": "unknown_run"},
    ]


def test_resolve_exits_0_when_all_resolve_and_reads_formats_and_threads(legacy_url: str) -> None:
    code, lines, _ = _resolve(
        legacy_url,
        legacy.AMBIGUOUS,
        "--enable-format",
        "legacy_run_ts",
        "--threads",
        "threads.thread_id",
    )

    assert code == 0
    assert lines == [{"id": legacy.AMBIGUOUS, "run_id": None, "thread_id": "abc"}]


def test_after_migrating_every_old_id_resolves_on_the_command_line(legacy_url: str) -> None:
    _migrate(legacy_url, *legacy.FULL_ARGS)

    code, lines, _ = _resolve(legacy_url, *legacy.EXPECTED)

    assert code == 0
    assert [line["thread_id"] for line in lines] == [t for t, _, _ in legacy.EXPECTED.values()]
    assert all(str(line["run_id"]).startswith("thread_") for line in lines)


def test_database_url_defaults_to_the_environment(
    legacy_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("THREADWIRE_DATABASE_URL", legacy_url)

    result = runner.invoke(app, ["ids", "resolve", legacy.LEGACY])

    assert result.exit_code == 0
    assert json.loads(result.stdout)["thread_id"] == "user_42"


def test_on_a_terminal_progress_goes_to_a_rich_bar_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _progress_bar(enabled=True) as advance:
        assert advance is not None
        advance(3, 10)
        advance(10, 10)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "migrating IDs" in captured.err
