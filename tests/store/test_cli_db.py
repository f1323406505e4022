"""`threadwire db upgrade` and `threadwire db prune`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from tests.store.helpers import new_event, new_run
from typer.testing import CliRunner

from threadwire.cli.db import db_app, parse_duration
from threadwire.events import utcnow
from threadwire.store import schema
from threadwire.store.sql import SqlStore

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),  # the documented form
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),  # a sum
        (" 7D ", timedelta(days=7)),  # case and surrounding space
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30 days", "-1d", "1.5d", "3y"])
def test_bad_durations_are_refused_quoting_the_input(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_upgrade_installs_then_reports_nothing_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    first = runner.invoke(db_app, ["upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert f"from empty to revision {schema.head_revision()}" in first.output
    again = runner.invoke(db_app, ["upgrade", "--database-url", url])
    assert again.exit_code == 0 and "already at revision" in again.output


@pytest.mark.postgres
def test_upgrade_installs_on_postgres(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    result = runner.invoke(db_app, ["upgrade", "--database-url", plain])
    assert result.exit_code == 0, result.output
    assert "upgraded from empty" in result.output


def test_upgrade_of_an_unreachable_database_fails_in_one_line() -> None:
    result = runner.invoke(db_app, ["upgrade", "--database-url", "mysql://h/db"])
    assert result.exit_code == 2
    assert "unsupported database URL scheme" in result.output


async def _seed(url: str) -> None:
    store = SqlStore(url)
    await store.open()
    try:
        await store.create_thread("t", "alice")
        run = await store.create_run(new_run("t", status="completed"))
        old = utcnow() - timedelta(days=40)
        await store.append([new_event("t", run.run_id, ts=old) for _ in range(5)])
    finally:
        await store.close()


def test_prune_removes_old_events_and_says_how_many(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    asyncio.run(_seed(url))
    result = runner.invoke(
        db_app, ["prune", "--older-than", "30d", "--batch-size", "2", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    assert "pruned 4 events from 1 threads" in result.output


def test_prune_refuses_a_bad_duration(tmp_path: Path) -> None:
    result = runner.invoke(
        db_app, ["prune", "--older-than", "soon", "--database-url", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 2
    assert "not a duration" in result.output
