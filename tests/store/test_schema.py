"""Schema versions: SQLite upgrades itself, PostgreSQL is installed once and then checked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from threadwire.store import schema
from threadwire.store.base import SchemaOutdated
from threadwire.store.engine import create_engine
from threadwire.store.sql import SqlStore
from threadwire.store.tables import metadata


def _diff(sync_conn: Connection) -> list[Any]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await schema.schema_state(conn)).current
    finally:
        await engine.dispose()


async def test_opening_a_store_leaves_the_schema_at_head(sql_url: str) -> None:
    store = SqlStore(sql_url)
    await store.open()
    await store.close()
    assert await _revision(sql_url) == schema.head_revision()


async def test_migrations_build_exactly_the_declared_tables(sql_url: str) -> None:
    engine = create_engine(sql_url)
    try:
        await schema.upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_upgrading_twice_changes_nothing(sql_url: str) -> None:
    engine = create_engine(sql_url)
    try:
        first = await schema.upgrade(engine)
        second = await schema.upgrade(engine)
    finally:
        await engine.dispose()
    assert first.current is None
    assert second.current == second.head == schema.head_revision()


@pytest.mark.postgres
async def test_nodes_opening_an_empty_database_at_once_install_it_once(
    postgres_url: str,
) -> None:
    stores = [SqlStore(postgres_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        await s.close()
    assert await _revision(postgres_url) == schema.head_revision()


@pytest.mark.postgres
async def test_postgres_behind_the_code_is_refused_with_the_upgrade_command(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url)
    await schema.upgrade(engine)
    await engine.dispose()
    installed = schema.head_revision()
    monkeypatch.setattr(schema, "head_revision", lambda: "9999")
    store = SqlStore(postgres_url)
    with pytest.raises(SchemaOutdated, match="threadwire db upgrade") as error:
        await store.open()
    assert (error.value.current, error.value.head) == (installed, "9999")
    assert "threadwire:threadwire@" not in str(error.value)  # no password in messages


async def test_a_database_newer_than_the_code_is_refused(sql_url: str) -> None:
    engine = create_engine(sql_url)
    try:
        await schema.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    finally:
        await engine.dispose()
    with pytest.raises(SchemaOutdated, match="newer than this threadwire"):
        await SqlStore(sql_url).open()


async def test_a_failed_open_releases_its_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = create_engine(url)
    await schema.upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    await engine.dispose()
    store = SqlStore(url)
    with pytest.raises(SchemaOutdated):
        await store.open()
    with pytest.raises(Exception, match="not open"):
        store.engine  # noqa: B018


async def test_migrations_need_no_alembic_ini_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqlStore("sqlite:///./here.db")
    await store.open()
    await store.close()
    assert (tmp_path / "here.db").exists()
    assert not (tmp_path / "alembic.ini").exists()
    assert await _revision("sqlite:///./here.db") == schema.head_revision()
