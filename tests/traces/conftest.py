"""Trace fixtures: the real ClickHouse engine in-process (chDB), one data directory per
test process (chDB allows one), a fresh database per test; a SQLite store with the
generated workload, shared by the whole session."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.traces.workload import Workload, generate

from threadwire.store.sql import SqlStore
from threadwire.traces.embedded import ChdbTarget
from threadwire.traces.server import ClickHouseTarget
from threadwire.traces.target import TraceTarget

TARGET_KINDS = ["chdb", "clickhouse-connect"]


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data directory of this test process."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def chdb_url(chdb_path: Path) -> str:
    """A chdb:// URL naming a fresh database in the process's chDB directory."""
    return f"chdb://{chdb_path}?database=tw_{secrets.token_hex(6)}"


def connect_client_on_chdb(chdb_path: Path) -> Callable[[], Any]:
    """A clickhouse-connect client factory on clickhouse-connect's own chDB backend:
    the server target's code path (DDL, typed inserts, bound queries) on the real
    engine, all but the HTTP transport."""

    def factory() -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(interface="chdb", path=str(chdb_path))

    return factory


def make_target(kind: str, chdb_path: Path, database: str) -> TraceTarget:
    """An unopened target of `kind` on the process's chDB directory."""
    if kind == "chdb":
        return ChdbTarget(f"chdb://{chdb_path}?database={database}")
    return ClickHouseTarget(
        f"clickhouse://localhost/{database}", client_factory=connect_client_on_chdb(chdb_path)
    )


@pytest.fixture(params=TARGET_KINDS)
async def target(request: pytest.FixtureRequest, chdb_path: Path) -> AsyncIterator[TraceTarget]:
    """An open target of each kind, on a fresh database."""
    opened = make_target(request.param, chdb_path, f"tw_{secrets.token_hex(6)}")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the session's SQLite store."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def workload_store(store_dir: Path) -> tuple[str, Path, Workload]:
    """(store URL, SQLite file, workload): the generated workload in a real SQL store."""
    path = store_dir / "store.db"
    url = f"sqlite:///{path}"

    async def write() -> Workload:
        store = SqlStore(url)
        await store.open()
        try:
            return await generate(store)
        finally:
            await store.close()

    return url, path, asyncio.run(write())
