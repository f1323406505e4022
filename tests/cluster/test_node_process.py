"""A node process killed with SIGKILL mid-run: a surviving node ends the run with one
`agent_error` `node_lost`, and every event the dead node had stored is still there."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from tests.cluster.helpers import eventually
from tests.cluster.node_process import SETTINGS

from threadwire.bus.redis import RedisBus
from threadwire.cluster import NODE_LOST, ClusterNode
from threadwire.events import AGENT_ERROR, AGENT_STARTED, RUN_QUEUED
from threadwire.runtime.coordinator import Coordinator
from threadwire.store import Store, create_store

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database both processes open: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cluster.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def start_node_process(
    database_url: str, redis_url: str, namespace: str, node_id: str
) -> tuple[asyncio.subprocess.Process, str]:
    """Start the node process and wait for its `READY <run_id>` line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.cluster.node_process",
        database_url, redis_url, namespace, node_id,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"},
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        line = (await process.stdout.readline()).decode().split()
    assert line[:1] == ["READY"], f"node process said {line!r}"
    return process, line[1]


async def _finished(store: Store, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.finished


async def test_a_killed_node_process_leaves_its_run_failed_with_one_terminal_event(
    database_url: str, redis_url: str, namespace: str
) -> None:
    process, run_id = await start_node_process(database_url, redis_url, namespace, "node-a")
    store = create_store(database_url)
    await store.open()
    bus = RedisBus(redis_url, namespace=namespace)
    await bus.open()

    async def cancel_run(run_id: str) -> dict[str, object]:
        return {}

    survivor = ClusterNode(
        bus, "node-b", store, Coordinator(store, bus), cancel_run=cancel_run, settings=SETTINGS
    )
    try:
        await survivor.start()
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        await eventually(lambda: _finished(store, run_id), within=30, what="the run to end")
        run = await store.get_run(run_id)
        assert run is not None
        assert run.status == "failed"
        assert run.error is not None and run.error["code"] == NODE_LOST
        events = await store.read_events(run.thread_id, after_seq=0, limit=100)
        assert [(e.seq, e.type) for e in events] == [
            (1, RUN_QUEUED), (2, AGENT_STARTED), (3, AGENT_ERROR)
        ]
        assert events[-1].data["code"] == NODE_LOST
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await survivor.stop()
        await bus.close()
        await store.close()
