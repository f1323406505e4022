"""Engines by URL: plain URLs map to the async drivers; SQLite gets WAL and its pragmas."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from threadwire.store import create_store
from threadwire.store.engine import async_url, create_engine
from threadwire.store.memory import MemoryStore
from threadwire.store.sql import SqlStore


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///./threadwire.db", "sqlite+aiosqlite"),  # plain SQLite
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite"),  # already async
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg"),  # plain PostgreSQL
        ("postgres://u@h/db", "postgresql+asyncpg"),  # Heroku-style alias
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),  # already async
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),  # psycopg 3 async
    ],
)
def test_plain_urls_map_to_async_drivers(given: str, driver: str) -> None:
    assert async_url(given).drivername == driver


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u@h/db", "unsupported database URL scheme 'mysql'"),  # not a backend we run
        ("sqlite://", "in-memory SQLite"),  # every connection would get its own database
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("::not a url::", "not a database URL"),
    ],
)
def test_urls_we_cannot_serve_are_refused_by_name(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        async_url(given)


def test_create_store_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    assert isinstance(create_store("memory://"), MemoryStore)
    assert isinstance(create_store(f"sqlite:///{tmp_path / 'a.db'}"), SqlStore)


async def test_sqlite_connections_run_wal_with_foreign_keys_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "busy_timeout": 10_000,
    }
