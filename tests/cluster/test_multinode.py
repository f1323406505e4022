"""Cluster mode end to end: two or three real `threadwire serve` processes on loopback,
sharing a fresh PostgreSQL database and a throwaway Redis that a test may restart.

Every scenario checks, on a WebSocket client of a node that is never killed, that each
stored event arrived exactly once and in seq order, that the store's seqs have no gap,
and that each run has exactly one terminal event, its last.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.bus.redis_server import RedisServer
from tests.cluster.multinode import (
    FAST_CLUSTER,
    SECRET,
    Node,
    Watcher,
    assert_delivery,
    metric,
    stored_events,
)

from threadwire.bus import keys
from threadwire.events import AGENT_COMPLETED, AGENT_ERROR, RUN_CANCELLED
from threadwire.gateway.auth import issue_token
from threadwire.gateway.cluster import FENCED_EXIT_STATUS

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

StartNodes = Callable[[int], Coroutine[Any, Any, list[Node]]]

USER = "alice"
TOKEN = issue_token(SECRET, USER)


@pytest.fixture
async def start_nodes(
    postgres_url: str, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartNodes]:
    """Start N nodes (the first alone: it creates the schema); all are killed at the end."""
    for name, value in FAST_CLUSTER.items():
        monkeypatch.setenv(name, value)
    started: list[Node] = []

    async def start(count: int) -> list[Node]:
        nodes = [
            Node(f"node-{chr(ord('a') + i)}", tmp_path, database_url=postgres_url,
                 bus_url=redis_server.url, index=i)
            for i in range(count)
        ]  # fmt: skip
        started.extend(nodes)
        await nodes[0].start()
        await asyncio.gather(*(node.start() for node in nodes[1:]))
        return nodes

    yield start
    for node in started:
        await node.kill()


async def new_thread(node: Node) -> str:
    async with node.http(TOKEN) as http:
        answer = await http.post("/v1/threads", json={})
        assert answer.status_code == 201, answer.text
        thread_id: str = answer.json()["thread_id"]
        return thread_id


async def start_demo(node: Node, thread_id: str, steps: int, delay_ms: int) -> str:
    async with node.http(TOKEN) as http:
        answer = await http.post(
            f"/v1/threads/{thread_id}/runs",
            json={"agent": "demo", "input": {"prompt": "hi", "steps": steps, "delay_ms": delay_ms}},
        )
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["run_id"]
        return run_id


async def finished_run(node: Node, run_id: str, within: float = 10.0) -> dict[str, Any]:
    """The run once its status is final (it follows the terminal event by one write)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with node.http(TOKEN) as http:
        while True:
            answer = await http.get(f"/v1/runs/{run_id}")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            if body["status"] in {"completed", "failed", "cancelled"}:
                return body
            assert loop.time() < deadline, f"run still {body['status']} after {within} s"
            await asyncio.sleep(0.05)


async def test_clients_on_other_nodes_receive_every_event_of_a_run(start_nodes: StartNodes) -> None:
    a, b, c = await start_nodes(3)
    thread_id = await new_thread(b)
    async with Watcher(b, TOKEN, thread_id) as on_b, Watcher(c, TOKEN, thread_id) as on_c:
        run_id = await start_demo(a, thread_id, steps=20, delay_ms=10)
        end = await on_b.until_terminal(run_id)
        await on_c.until_terminal(run_id)
        assert end["type"] == AGENT_COMPLETED
        async with c.http(TOKEN) as http:
            stored = await stored_events(http, thread_id)
    assert len(stored) == 2 + 20 * 3 + 2
    assert_delivery(on_b, stored)
    assert_delivery(on_c, stored)
    assert (await finished_run(c, run_id))["status"] == "completed"


async def test_a_killed_node_leaves_its_run_failed_and_no_stored_event_lost(
    start_nodes: StartNodes,
) -> None:
    a, b = await start_nodes(2)
    thread_id = await new_thread(b)
    async with Watcher(b, TOKEN, thread_id) as on_b, Watcher(a, TOKEN, thread_id) as on_a:
        run_id = await start_demo(a, thread_id, steps=1000, delay_ms=50)
        await on_b.until(lambda events: len(events) >= 8, 30, "a few events of the run")
        await a.kill()
        seen_on_a = list(on_a.events)

        # Until the survivor declares node-a dead, a cancel cannot reach the run's owner.
        async with b.http(TOKEN) as http:
            answer = await http.post(f"/v1/runs/{run_id}/cancel")
        assert (answer.status_code, answer.json()["code"]) in {
            (503, "node_unreachable"),
            (409, "run_finished"),
        }, answer.text

        end = await on_b.until_terminal(run_id, within=30)
        async with b.http(TOKEN) as http:
            stored = await stored_events(http, thread_id)
    assert end["type"] == AGENT_ERROR
    assert end["data"]["code"] == "node_lost"
    assert_delivery(on_b, stored)
    # Persist before deliver: whatever node-a's own client saw is stored.
    stored_ids = {e["event_id"] for e in stored}
    assert {e["event_id"] for e in seen_on_a} <= stored_ids
    run = await finished_run(b, run_id)
    assert run["status"] == "failed"
    assert run["error"]["code"] == "node_lost"


async def test_restarting_redis_mid_stream_leaves_no_gap(
    start_nodes: StartNodes, redis_server: RedisServer
) -> None:
    a, b = await start_nodes(2)
    thread_id = await new_thread(b)
    async with Watcher(b, TOKEN, thread_id) as on_b:
        run_id = await start_demo(a, thread_id, steps=60, delay_ms=40)
        await on_b.until(lambda events: len(events) >= 10, 30, "a few events of the run")
        await redis_server.restart()
        end = await on_b.until_terminal(run_id, within=60)
        async with b.http(TOKEN) as http:
            stored = await stored_events(http, thread_id)
            metrics = (await http.get("/metrics")).text
    assert end["type"] == AGENT_COMPLETED, end
    assert_delivery(on_b, stored)
    assert len(stored) == 2 + 60 * 3 + 2
    assert metric(metrics, "threadwire_bus_reconnects_total") >= 1
    assert metric(metrics, "threadwire_backfills_total") >= 1
    assert metric(metrics, "threadwire_bus_lag_seconds_count") >= 1  # node-a's events, via Redis
    # Nobody was declared dead, and both nodes are ready again.
    assert a.alive and b.alive
    for node in (a, b):
        await wait_ready(node)


async def test_cancel_from_another_node_reaches_the_run(start_nodes: StartNodes) -> None:
    a, b = await start_nodes(2)
    thread_id = await new_thread(b)
    async with Watcher(b, TOKEN, thread_id) as on_b:
        run_id = await start_demo(a, thread_id, steps=1000, delay_ms=50)
        await on_b.until(lambda events: len(events) >= 4, 30, "the run to be under way")
        async with b.http(TOKEN) as http:
            answer = await http.post(f"/v1/runs/{run_id}/cancel")
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "cancelled"
            end = await on_b.until_terminal(run_id)
            again = await http.post(f"/v1/runs/{run_id}/cancel")
            assert (again.status_code, again.json()["code"]) == (409, "run_finished")

            # The LangGraph API's cancel goes the same way.
            second = await start_demo(a, thread_id, steps=1000, delay_ms=50)
            await on_b.until(
                lambda events: any(e["run_id"] == second for e in events), 30, "the second run"
            )
            lg = await http.post(f"/lg/threads/{thread_id}/runs/{second}/cancel")
            assert lg.status_code == 202, lg.text
            second_end = await on_b.until_terminal(second)
            stored = await stored_events(http, thread_id)
    assert end["type"] == RUN_CANCELLED
    assert second_end["type"] == RUN_CANCELLED
    assert_delivery(on_b, stored)
    assert (await finished_run(a, second))["status"] == "cancelled"


async def test_a_node_stopped_cleanly_ends_its_runs_before_leaving(
    start_nodes: StartNodes,
) -> None:
    a, b = await start_nodes(2)
    thread_id = await new_thread(b)
    async with Watcher(b, TOKEN, thread_id) as on_b:
        run_id = await start_demo(a, thread_id, steps=1000, delay_ms=50)
        await on_b.until(lambda events: len(events) >= 4, 30, "the run to be under way")
        assert await a.stop() == 0
        end = await on_b.until_terminal(run_id)
        async with b.http(TOKEN) as http:
            stored = await stored_events(http, thread_id)
    assert end["type"] == RUN_CANCELLED
    assert end["data"] == {"reason": "shutdown"}
    assert_delivery(on_b, stored)


async def wait_ready(node: Node, within: float = 30.0) -> None:
    """Wait until the node's /readyz answers 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await node.ready():
        assert node.alive, f"{node.name} exited:\n{node.tail()}"
        assert loop.time() < deadline, f"{node.name} not ready after {within} s"
        await asyncio.sleep(0.05)



async def test_a_node_paused_past_the_heartbeat_ttl_exits_75_when_it_wakes(
    start_nodes: StartNodes, redis_server: RedisServer
) -> None:
    a, b = await start_nodes(2)
    assert a.process is not None
    client = Redis.from_url(redis_server.url)
    tombstone = keys.node_tombstone(keys.DEFAULT_NAMESPACE, a.name)
    try:
        a.process.send_signal(signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not await client.exists(tombstone):  # node-b declares it dead
            assert loop.time() < deadline, "node-a was not declared dead"
            await asyncio.sleep(0.05)
        a.process.send_signal(signal.SIGCONT)
        async with asyncio.timeout(30):
            status = await a.process.wait()
    finally:
        await client.aclose()
    assert status == FENCED_EXIT_STATUS
    assert "declared dead" in a.log.read_text()
    await wait_ready(b)
