"""The embedded target: the real ClickHouse engine in-process via chDB.

chDB runs one engine per process, bound to one data directory, and refuses a second
process on a directory in use. Targets on the same path share one session (chDB
sessions are thread-safe); a target on another path while one is open is refused
with both paths named.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from threadwire.traces.schema import DEFAULT_DATABASE, check_identifier, schema_statements
from threadwire.traces.target import Row, TraceTargetError, require_module

_lock = threading.Lock()
_engine: dict[str, Any] = {}
"""path -> the shared chdb Session, users -> how many open targets hold it."""


def parse_chdb_url(url: str) -> tuple[str, str]:
    """(absolute data path, database) of `chdb:///abs`, `chdb://rel` or `chdb://rel?database=x`."""
    if not url.startswith("chdb://"):
        raise TraceTargetError(f"not a chdb URL: {url!r}")
    rest, _, query = url[len("chdb://") :].partition("?")
    if not rest:
        raise TraceTargetError(f"chdb URL {url!r} names no data directory: use chdb:///path")
    options = parse_qs(query)
    database = options.get("database", [DEFAULT_DATABASE])[-1]
    try:
        check_identifier(database)
    except ValueError as exc:
        raise TraceTargetError(str(exc)) from None
    return os.path.realpath(rest), database


def _acquire(path: str) -> Any:
    with _lock:
        if _engine:
            if _engine["path"] != path:
                raise TraceTargetError(
                    f"chDB is already open at {_engine['path']!r} in this process; it cannot "
                    f"also open {path!r} (chDB allows one data directory per process)"
                )
            _engine["users"] += 1
            return _engine["session"]
        from chdb import session as chdb_session

        make_session: Any = chdb_session.Session
        os.makedirs(path, exist_ok=True)
        try:
            session = make_session(path)
        except RuntimeError as exc:
            raise TraceTargetError(
                f"cannot open chDB at {path!r}: {exc} (is another process using it? chDB "
                "allows one process per data directory; use a ClickHouse server to share)"
            ) from exc
        _engine.update(path=path, session=session, users=1)
        return session


def _release(path: str) -> None:
    with _lock:
        if not _engine or _engine["path"] != path:
            return
        _engine["users"] -= 1
        if _engine["users"] == 0:
            session = _engine["session"]
            _engine.clear()
            session.close()


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    raise TypeError(f"cannot send {type(value).__name__} to ClickHouse: {value!r}")


def insert_statement(database: str, table: str, columns: Sequence[str], rows: Sequence[Row]) -> str:
    """One `INSERT ... FORMAT JSONCompactEachRow` statement carrying `rows` inline."""
    head = (
        f"INSERT INTO `{database}`.`{table}` ({', '.join(f'`{c}`' for c in columns)}) "
        "FORMAT JSONCompactEachRow\n"
    )
    encode = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), default=_json_value, allow_nan=False
    ).encode
    return head + "\n".join(encode(list(row)) for row in rows) + "\n"


class ChdbTarget:
    """`chdb://PATH` traces in the embedded ClickHouse engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, self.database = parse_chdb_url(url)
        require_module("chdb", "chdb", "chdb")
        self._session: Any = None

    async def open(self) -> None:
        if self._session is None:
            self._session = await asyncio.to_thread(_acquire, self.path)
        for statement in schema_statements(self.database):
            await self._run(partial(str, statement))

    async def close(self) -> None:
        if self._session is not None:
            self._session = None
            await asyncio.to_thread(_release, self.path)

    async def ping(self) -> None:
        await self._run(lambda: "SELECT 1")

    async def insert(
        self, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Row]
    ) -> None:
        if rows:
            # encoding runs in the worker thread too: it is the costly part
            await self._run(lambda: insert_statement(self.database, table, columns, rows))

    async def query(
        self, sql: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        text = await self._run(lambda: sql, fmt="JSONEachRow", params=params)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def _run(
        self,
        make_sql: Callable[[], str],
        *,
        fmt: str = "CSV",
        params: Mapping[str, str] | None = None,
    ) -> str:
        session = self._session
        if session is None:
            raise TraceTargetError(f"trace target {self.url!r} is not open")

        def call() -> str:
            result = session.query(make_sql(), fmt, params=dict(params) if params else None)
            return bytes(result.bytes()).decode()

        try:
            return await asyncio.to_thread(call)
        except (RuntimeError, ValueError) as exc:
            raise TraceTargetError(f"chDB at {self.path!r}: {exc}") from exc
