"""The gateway's cluster wiring: node IDs, how a cross-node cancel's failures are answered,
and what a node does when it finds itself declared dead."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.bus.fixtures import namespace, redis_server
from tests.bus.redis_server import RedisServer

from threadwire.bus import keys
from threadwire.bus.memory import MemoryBus
from threadwire.bus.redis import RedisBus
from threadwire.cluster import ClusterSettings, CommandRefused, ControlTimeout, NodeUnreachable
from threadwire.config import Settings
from threadwire.events import utcnow
from threadwire.gateway.cluster import GatewayCluster, cluster_settings
from threadwire.gateway.errors import from_runtime
from threadwire.gateway.node import NODE_ID_GRAMMAR, Gateway, resolve_node_id
from threadwire.ids import new_run_id
from threadwire.runtime import AgentRegistry, Coordinator, RunFinished, Supervisor
from threadwire.runtime.errors import CancelNotDelivered
from threadwire.store import Store, create_store
from threadwire.store.base import NotFound, RunRecord

__all__ = ["namespace", "redis_server"]  # fixtures used below


# --- node IDs -------------------------------------------------------------------------


def test_a_single_node_is_local_and_a_cluster_node_gets_a_generated_id() -> None:
    assert resolve_node_id(None, clustered=False) == "local"
    first, second = (resolve_node_id(None, clustered=True) for _ in range(2))
    assert first != second
    for made in (first, second):
        assert NODE_ID_GRAMMAR.fullmatch(made), made
        assert f"-{os.getpid()}-" in made


@pytest.mark.parametrize(
    ("configured", "accepted"),
    [
        ("node-a", True),  # the usual form
        ("web-7.eu_1", True),  # dots and underscores
        ("n" * 64, True),  # the longest
        ("n" * 65, False),  # too long
        ("", False),  # empty
        ("a:dead", False),  # a colon would make one node's key another's tombstone
        ("node a", False),  # spaces
    ],
)
def test_a_configured_node_id_is_checked(configured: str, accepted: bool) -> None:
    if accepted:
        assert resolve_node_id(configured, clustered=True) == configured
    else:
        with pytest.raises(ValueError, match="node ID"):
            resolve_node_id(configured, clustered=True)


def test_the_cluster_timings_come_from_the_settings() -> None:
    env = {
        "THREADWIRE_HEARTBEAT_INTERVAL": "0.5",
        "THREADWIRE_HEARTBEAT_TTL": "3",
        "THREADWIRE_DEAD_NODE_GRACE": "1.5",
    }
    timings = cluster_settings(Settings.from_env(env))
    assert (timings.heartbeat_interval, timings.heartbeat_ttl, timings.grace) == (0.5, 3.0, 1.5)
    assert timings.detect_interval == 0.5


# --- cancel routing -------------------------------------------------------------------


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = create_store("memory://")
    await opened.open()
    await opened.create_thread("t1", "alice")
    yield opened
    await opened.close()


async def _run_of(store: Store, node_id: str, status: Any = "running") -> RunRecord:
    run = RunRecord(
        run_id=new_run_id("t1"), thread_id="t1", agent="demo", status=status,
        created_at=utcnow(), owner="alice", node_id=node_id,
    )  # fmt: skip
    return await store.create_run(run)


def _cluster(store: Store, answer: BaseException | dict[str, Any]) -> GatewayCluster:
    """A GatewayCluster whose control channel gives `answer` to every cancel."""
    bus = RedisBus("redis://127.0.0.1:1/0")  # never opened: nothing here talks to Redis
    coordinator = Coordinator(store, MemoryBus())
    supervisor = Supervisor(store, coordinator, AgentRegistry(), node_id="node-b")
    cluster = GatewayCluster(
        bus, "node-b", store, coordinator, supervisor, ClusterSettings(), on_fenced=lambda: None
    )

    async def cancel_run(
        run_id: str, node_id: str, *, within: float | None = None
    ) -> dict[str, Any]:
        assert node_id == "node-a"
        if isinstance(answer, BaseException):
            raise answer
        await store.update_run(run_id, status="cancelled", finished_at=utcnow())
        return answer

    cluster.node.cancel_run = cancel_run  # type: ignore[method-assign]
    supervisor.remote_cancel = cluster.cancel_elsewhere
    return cluster


async def test_a_run_of_another_node_is_cancelled_there(store: Store) -> None:
    run = await _run_of(store, "node-a")
    cluster = _cluster(store, {"status": "cancelled"})
    final = await cluster.supervisor.cancel(run.run_id)
    assert final.run_id == run.run_id and final.status == "cancelled"


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (NodeUnreachable("nobody listens"), 503, "node_unreachable"),
        (ControlTimeout("no answer"), 504, "node_timeout"),
        (CommandRefused("internal_error", "boom"), 502, "node_error"),
    ],
)
async def test_a_cancel_the_owner_does_not_answer_is_a_retryable_problem(
    store: Store, failure: Exception, status: int, code: str
) -> None:
    run = await _run_of(store, "node-a")
    with pytest.raises(CancelNotDelivered) as caught:
        await _cluster(store, failure).supervisor.cancel(run.run_id)
    problem = from_runtime(caught.value)
    assert (problem.status, problem.code) == (status, code)
    assert "node-a" in problem.detail
    latest = await store.get_run(run.run_id)
    assert latest is not None and latest.status == "running"  # never ended from here


async def test_the_owners_refusals_keep_their_meaning(store: Store) -> None:
    run = await _run_of(store, "node-a")
    refused = _cluster(store, CommandRefused("run_finished", "already finished"))
    await store.update_run(run.run_id, status="completed", finished_at=utcnow())
    with pytest.raises(RunFinished, match="completed"):
        await refused.cancel_elsewhere(run.run_id, "node-a")
    with pytest.raises(NotFound):
        await _cluster(store, CommandRefused("not_found", "?")).cancel_elsewhere(
            run.run_id, "node-a"
        )


async def test_an_unreachable_owner_whose_run_ended_meanwhile_answers_run_finished(
    store: Store,
) -> None:
    run = await _run_of(store, "node-a")
    cluster = _cluster(store, NodeUnreachable("stopped"))
    await store.update_run(run.run_id, status="failed", finished_at=utcnow())
    with pytest.raises(RunFinished):
        await cluster.cancel_elsewhere(run.run_id, "node-a")


# --- fencing --------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_node_declared_dead_calls_on_fenced_and_is_not_ready(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}",
        bus_url=f"{redis_server.url}?namespace={namespace}",
        jwt_secret="x" * 32,
        node_id="node-f",
        heartbeat_interval=0.05,
        heartbeat_ttl=0.5,
    )
    gateway = Gateway(settings)
    fenced = asyncio.Event()
    gateway.on_fenced = fenced.set
    await gateway.start()
    try:
        assert gateway.cluster is not None
        assert (await gateway.ready()) == {"store": "ok", "bus": "ok"}
        assert gateway.redis_bus is not None
        await gateway.redis_bus.client.set(keys.node_tombstone(namespace, "node-f"), "1")
        await asyncio.wait_for(fenced.wait(), 10)
        checks = await gateway.ready()
        assert re.match("error: ", checks["cluster"])
    finally:
        await gateway.stop()


def test_serve_takes_the_node_id_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from threadwire.cli.serve import settings_from_options

    monkeypatch.setenv("THREADWIRE_NODE_ID", "from-env")
    assert settings_from_options().node_id == "from-env"
    assert settings_from_options(node_id="from-flag").node_id == "from-flag"


def test_serve_refuses_a_bad_node_id_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from threadwire.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--node-id", "a:b", "--bus-url", "redis://127.0.0.1:1/0"])
    assert stopped.value.code == 2
    assert "--node-id" in capsys.readouterr().err
