"""Fixtures: a fresh database of each SQL backend, empty or holding the legacy schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.migrate.stored import legacy

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        path = tmp_path / "legacy.db"
        sqlite3.connect(path).close()
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
def legacy_url(db_url: str) -> str:
    """`db_url` seeded with the legacy tables of `legacy.py` (cascading run_steps key)."""
    legacy.seed(db_url)
    return db_url
