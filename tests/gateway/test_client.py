"""`threadwire.client`: the HTTP calls, and a subscription that survives server-side kills."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tests.gateway.harness import Node
from tests.gateway.helpers import emit, make_thread

from threadwire.client import Client, SubscriptionError, ThreadwireError
from threadwire.events import Event
from threadwire.gateway.ws import CLOSE_GOING_AWAY, CLOSE_LAGGING, Connection


def _connections(node: Node) -> list[Connection]:
    return [c for c in node.gateway.clients if isinstance(c, Connection)]


async def test_subscribe_survives_server_side_kills_without_gap_or_duplicate(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    rounds, per_round = 6, 50
    total = rounds * per_round
    got: list[int] = []
    progress = asyncio.Condition()
    async with Client(node.url, node.token("alice")) as client:

        async def consume() -> None:
            async for event in client.subscribe("t1", after_seq=0):
                async with progress:
                    got.append(event.seq)
                    progress.notify_all()
                if event.seq == total:
                    return

        consumer = asyncio.create_task(consume())
        for r in range(rounds):
            await emit(node, "t1", per_round)
            # Kill the connection mid-stream (events still queued on it are lost with it),
            # alternately as a lagging close and as a server going away.
            async with progress:
                await progress.wait_for(lambda: len(got) >= r * per_round + 10)  # noqa: B023
            for conn in _connections(node):
                conn.close(CLOSE_LAGGING if r % 2 else CLOSE_GOING_AWAY, "test kill")
        await asyncio.wait_for(consumer, 60)
        assert client.reconnects >= rounds - 1  # the last kill may come after the last event
    assert got == list(range(1, total + 1))


async def test_client_calls_the_http_api(node: Node) -> None:
    async with Client(node.url, node.token("alice")) as client:
        thread = await client.create_thread(metadata={"topic": "x"})
        thread_id = thread["thread_id"]
        assert (await client.get_thread(thread_id))["metadata"] == {"topic": "x"}
        assert [t["thread_id"] for t in (await client.list_threads())["threads"]] == [thread_id]
        events: list[Event] = []
        async for event in client.stream_run(thread_id, "demo", {"prompt": "hi", "delay_ms": 0}):
            events.append(event)
        assert events[0].type == "run_queued" and events[-1].type == "agent_completed"
        run = await client.get_run(events[0].run_id)
        assert run["status"] == "completed"
        assert (await client.list_runs(thread_id))["runs"][0]["run_id"] == run["run_id"]
        page = await client.events(thread_id, limit=2)
        assert [e["seq"] for e in page["events"]] == [1, 2] and page["next_after_seq"] == 2
        with pytest.raises(ThreadwireError) as refused:
            await client.get_thread("nope")
        assert refused.value.status == 404 and refused.value.code == "not_found"


async def test_client_subscribe_gives_up_on_forbidden_and_bad_tokens(node: Node) -> None:
    async with Client(node.url, node.token("alice")) as client:
        with pytest.raises(SubscriptionError) as forbidden:
            async for _ in client.subscribe("not-mine"):
                pass
        assert forbidden.value.code == "forbidden"
    async with Client(node.url, "bad-token") as client:
        with pytest.raises(SubscriptionError):
            async for _ in client.subscribe("t1"):
                pass


async def test_service_clients_ingest(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    async with Client(node.url, node.service_token()) as worker:
        accepted = await worker.ingest(
            [{"run_id": "run_t1_0000abcd", "type": "agent_message", "data": {"text": "x"}}],
            idempotency_key="k1",
        )
    assert accepted[0]["seq"] == 1
