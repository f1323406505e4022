"""The SQLite store's writer: one thread, one long-lived connection, one call per batch.

Through aiosqlite every statement, fetch and commit of a group commit was a hand-off
to a worker thread and back (a future, a self-pipe write, two GIL switches); here the
whole batch, from BEGIN IMMEDIATE to COMMIT, is one hand-off. SQLite allows one writer
at a time anyway, so a single writer thread loses no concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Connection, Engine

from threadwire.store import appends
from threadwire.store.engine import create_sqlite_writer
from threadwire.store.groupcommit import AppendRequest


class SqliteWriter:
    """Commits batches of appends on its own thread and connection."""

    def __init__(self, url: str) -> None:
        self._engine = create_sqlite_writer(url)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="threadwire-sqlite-writer")
        self._conn: Connection | None = None

    @property
    def engine(self) -> Engine:
        """The writer's synchronous engine (its events see every append commit)."""
        return self._engine

    async def write(self, batch: Sequence[AppendRequest]) -> list[appends.Outcome]:
        """Commit `batch` (see `appends.write_batch`); one outcome per request."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._write, batch)

    async def close(self) -> None:
        """Close the connection (on its thread), then stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    def _write(self, batch: Sequence[AppendRequest]) -> list[appends.Outcome]:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self._conn = self._engine.connect()
        return appends.write_batch(conn, batch)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
