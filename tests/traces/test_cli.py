"""`threadwire traces backfill` and `threadwire traces report`, end to end in-process."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from tests.traces.expected import expected_from_sqlite
from tests.traces.test_report import Store
from typer.testing import CliRunner

from threadwire.cli import app

runner = CliRunner(env={"COLUMNS": "220", "THREADWIRE_TRACE_URL": ""})


def test_backfill_then_report_as_json_and_table(chdb_url: str, workload_store: Store) -> None:
    url, db_path, work = workload_store
    done = runner.invoke(
        app, ["traces", "backfill", "--database-url", url, "--trace-url", chdb_url]
    )
    assert done.exit_code == 0, done.output
    assert f"backfilled 48 threads, {len(work.events)} events" in done.output

    again = runner.invoke(app, ["traces", "backfill", "--database-url", url,
                                "--trace-url", chdb_url])
    assert again.exit_code == 0, again.output
    assert "backfilled 0 threads, 0 events" in again.output and "resumed after" in again.output

    shown = runner.invoke(app, ["traces", "report", "--format", "json", "--trace-url", chdb_url])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    expected = expected_from_sqlite(db_path)
    assert [a["agent"] for a in body["agents"]] == sorted(expected.agents)
    for got in body["agents"]:
        want = expected.agents[got["agent"]]
        assert got["runs"] == want["runs"] and got["events"] == want["events"]
        assert got["duration_ms"]["p95"] == pytest.approx(want["duration_ms"]["p95"])
    assert len(body["tools"]) == len(expected.tools)

    table = runner.invoke(app, ["traces", "report", "--trace-url", chdb_url])
    assert table.exit_code == 0, table.output
    for text in ("Agents (all time", "researcher", "p95 ms", "legacy events", "Tools", "fetch_url"):
        assert text in table.output
    recent = runner.invoke(app, ["traces", "report", "--since", "1h", "--trace-url", chdb_url])
    assert recent.exit_code == 0 and "Agents (since" in recent.output, recent.output


def test_report_without_a_trace_url_says_how_to_give_one() -> None:
    result = runner.invoke(app, ["traces", "report"])
    assert result.exit_code == 2
    assert "pass --trace-url or set THREADWIRE_TRACE_URL" in result.output


def test_report_refuses_a_bad_window(chdb_url: str) -> None:
    result = runner.invoke(app, ["traces", "report", "--since", "an hour", "--trace-url", chdb_url])
    assert result.exit_code == 2 and "invalid window 'an hour'" in result.output


def test_an_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    result = runner.invoke(
        app, ["traces", "report", "--trace-url", f"clickhouse://127.0.0.1:{port}/db"]
    )
    assert result.exit_code == 2
    assert f"cannot open a session with the server at clickhouse://127.0.0.1:{port}/db" in (
        result.output
    )


def test_backfill_from_a_memory_store_is_refused(chdb_url: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["traces", "backfill", "--database-url", "memory://", "--trace-url", chdb_url]
    )
    assert result.exit_code == 2 and "nothing to backfill" in result.output
