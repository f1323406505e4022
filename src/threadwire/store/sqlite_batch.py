"""The hot statements of an append batch on SQLite, run on the driver's own connection.

Through SQLAlchemy Core, most of the writer thread's Python time per batch went to
building statements, their cache keys and per-row bind processing (JSON, datetimes).
These statements run on the same sqlite3 connection, inside the same transaction
(`BEGIN IMMEDIATE`, savepoints) that SQLAlchemy opened, and write values in exactly
the form the Core types write them (`UtcDateTime`: naive UTC text; `JSON`:
`engine.json_dumps`), so every reader still reads them through SQLAlchemy. Errors are
raised as SQLAlchemy's (`IntegrityError`, `OperationalError`), as Core would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from threadwire.events import Event

MAX_PARAMS: Final = 900
"""Parameters per IN list, under SQLite's limit on bound parameters."""

_INSERT_EVENT: Final = (
    "INSERT INTO events (thread_id, seq, event_id, run_id, type, ts, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_LAST_SEQ: Final = "UPDATE threads SET last_seq = ? WHERE thread_id = ?"
_MARK_ENDED: Final = "UPDATE runs SET ended_seq = ? WHERE run_id = ?"


def driver(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under `conn` (in `conn`'s transaction)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


def ts_text(ts: datetime) -> str:
    """`ts` as `UtcDateTime` stores it on SQLite: naive UTC, microseconds, space-separated.

    >>> from datetime import timedelta, timezone
    >>> ts_text(datetime(2026, 1, 2, 4, 4, 5, 6000, tzinfo=timezone(timedelta(hours=1))))
    '2026-01-02 03:04:05.006000'
    """
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(" ", "microseconds")


def last_seqs(db: sqlite3.Connection, thread_ids: Sequence[str]) -> dict[str, int]:
    """The threads' last_seq (missing threads: absent); the write lock is already held."""
    head = "SELECT thread_id, last_seq FROM threads WHERE thread_id"
    return dict(_select_in(db, head, thread_ids))


def run_ends(db: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, int | None]:
    """The recorded runs' ended_seq (None: not ended; runs not recorded: absent)."""
    return dict(_select_in(db, "SELECT run_id, ended_seq FROM runs WHERE run_id", run_ids))


def write_events(
    db: sqlite3.Connection,
    last_seq: dict[str, int],
    stored: Sequence[Event],
    data: Sequence[str],
) -> None:
    """Insert `stored` (with `data`, their JSON texts) and move their threads' last_seq."""
    touched = sorted({e.thread_id for e in stored})
    with _translated(_UPDATE_LAST_SEQ):
        db.executemany(_UPDATE_LAST_SEQ, [(last_seq[t], t) for t in touched])
    rows = [
        (e.thread_id, e.seq, e.event_id, e.run_id, e.type, ts_text(e.ts), text)
        for e, text in zip(stored, data, strict=True)
    ]
    with _translated(_INSERT_EVENT):
        db.executemany(_INSERT_EVENT, rows)


def mark_ended(db: sqlite3.Connection, ends: Iterable[tuple[str, int]]) -> None:
    """Set `runs.ended_seq` of each (run, seq of its terminal event)."""
    with _translated(_MARK_ENDED):
        db.executemany(_MARK_ENDED, [(seq, run_id) for run_id, seq in ends])


def _select_in(db: sqlite3.Connection, head: str, keys: Sequence[str]) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(keys), MAX_PARAMS):
        chunk = keys[start : start + MAX_PARAMS]
        statement = f"{head} IN ({', '.join('?' * len(chunk))})"
        with _translated(statement):
            rows.extend(db.execute(statement, chunk).fetchall())
    return rows


@contextmanager
def _translated(statement: str) -> Iterator[None]:
    """sqlite3's errors as SQLAlchemy raises them, so callers handle one family."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
