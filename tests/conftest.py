"""Shared fixtures: real PostgreSQL and Redis, started by scripts/services.sh.

With CI=true a missing service fails the tests that need it; elsewhere they skip
with the reason, so a laptop without root still runs everything else.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str) -> None:
    reason = f"{what} not available: run `bash scripts/services.sh up` (or set the URL)"
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of the shared test database; fails under CI, skips elsewhere, when missing."""
    url = os.environ.get("THREADWIRE_TEST_POSTGRES_URL")
    if not url:
        _unavailable("PostgreSQL (THREADWIRE_TEST_POSTGRES_URL unset)")
        raise AssertionError("unreachable")
    return url


@pytest.fixture
async def postgres_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import asyncpg

    plain = postgres_admin_url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        admin = await asyncpg.connect(plain, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"PostgreSQL at {plain} ({exc})")
        raise AssertionError("unreachable") from exc
    name = f"tw_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_admin_url, name)
    finally:
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the test Redis; fails under CI, skips elsewhere, when missing."""
    url = os.environ.get("THREADWIRE_TEST_REDIS_URL")
    if not url:
        _unavailable("Redis (THREADWIRE_TEST_REDIS_URL unset)")
    assert url is not None
    yield url
