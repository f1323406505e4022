"""Async engines by URL: SQLite (embedded, WAL) and PostgreSQL (asyncpg).

Plain `sqlite:///` and `postgresql://` URLs map to the async drivers, so one
`--database-url` works for the server, the CLI and the migration tools.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
WRITE: Final = "threadwire_write"
"""Execution option marking a connection whose transaction writes (SQLite: BEGIN IMMEDIATE)."""

_DRIVERS: Final = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def json_dumps(obj: Any) -> str:
    """The engines' JSON serializer: compact, UTF-8, no NaN (PostgreSQL refuses it)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def async_url(url: str | URL) -> URL:
    """`url` with its async driver: `sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`.

    >>> str(async_url("postgresql://u@h/db"))
    'postgresql+asyncpg://u@h/db'
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {str(url)[:80]!r}") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            "use sqlite:///path or postgresql://..."
        )
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            "in-memory SQLite is not supported (each connection would see its own "
            "database): use a file path, or memory:// for a throwaway store"
        )
    return parsed.set(drivername=driver)


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; SQLite connections get WAL and the pragmas below."""
    target = async_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    if target.get_backend_name() == "sqlite":
        # A fixed pool: overflow connections were opened and closed (a thread and four
        # PRAGMAs each) whenever more than 5 callers read at once.
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 0)
        engine = create_async_engine(target, **kwargs)
        _configure_sqlite(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(target, **kwargs)


def create_sqlite_writer(url: str | URL) -> Engine:
    """A synchronous engine on the same SQLite file, for the store's writer thread.

    Its one connection commits whole group-commit batches in a single call from that
    thread: through aiosqlite every statement, fetch and commit was a hand-off between
    threads. Same pragmas as `create_engine`; every transaction takes the write lock.
    """
    target = async_url(url).set(drivername="sqlite")
    engine = create_sync_engine(
        target,
        json_serializer=json_dumps,
        pool_size=1,
        max_overflow=0,
        execution_options={WRITE: True},
    )
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below): the driver's implicit BEGIN would neither
        # take the write lock up front nor allow SAVEPOINT.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # synchronous=NORMAL in WAL survives a process crash (the OS has the WAL);
        # only a power loss can drop the last commits.
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock at BEGIN: a deferred transaction that upgrades to
        # write after another commit fails at once (SQLITE_BUSY_SNAPSHOT), not waits.
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a write transaction, committed on success, rolled back on error."""
    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE: True})
        async with conn.begin():
            yield conn


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a read transaction (one snapshot on SQLite)."""
    async with engine.connect() as conn, conn.begin():
        yield conn
