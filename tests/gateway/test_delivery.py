"""Delivery guarantees (protocol spec 2): order, resume without gap or duplicate, and a
slow consumer that is cut off without slowing anyone else."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from tests.gateway.harness import Node, node_settings, serve_app
from tests.gateway.helpers import emit, make_thread, recv, send, subscribe, ws_connect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from threadwire.events import NewEvent, utcnow
from threadwire.ids import new_event_id, new_run_id


async def _publish(node: Node, thread_id: str, total: int, *, writers: int = 2) -> None:
    """Emit `total` events from `writers` concurrent tasks, yielding between events so
    subscribers connect, drop and resume while the thread grows."""
    counter = iter(range(total))

    async def writer() -> None:
        run_id = new_run_id(thread_id)
        for i in counter:
            event = NewEvent(new_event_id(), thread_id, run_id, "agent_message", utcnow(), {"i": i})
            await node.gateway.coordinator.emit([event])
            await asyncio.sleep(0)

    await asyncio.gather(*(writer() for _ in range(writers)))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_resume_after_drops_at_random_points_has_no_gap_and_no_duplicate(
    node: Node, http: httpx.AsyncClient, seed: int
) -> None:
    rng = random.Random(seed)
    total = 1000
    await make_thread(http, node, "alice", "t1")
    publisher = asyncio.create_task(_publish(node, "t1", total))
    received: list[int] = []
    drops = 0
    while not received or received[-1] < total:
        after = received[-1] if received else 0
        async with ws_connect(node, "alice") as ws:
            await subscribe(ws, "t1", after_seq=after)
            budget = rng.randint(1, 40)
            while budget and (not received or received[-1] < total):
                frame = await recv(ws)
                assert frame["type"] == "event", frame
                received.append(frame["event"]["seq"])
                budget -= 1
            if rng.random() < 0.5:
                ws.transport.abort()  # a dropped connection, no close handshake
            else:
                # A clean goodbye: events queued before `unsubscribed` still count.
                await send(ws, {"op": "unsubscribe", "thread_id": "t1"})
                while (frame := await recv(ws))["type"] == "event":
                    received.append(frame["event"]["seq"])
                assert frame == {"type": "unsubscribed", "thread_id": "t1"}
            drops += 1
    await publisher
    assert received == list(range(1, total + 1))
    assert drops >= 3


async def test_concurrent_publishers_reach_a_live_subscriber_in_seq_order(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    async with ws_connect(node, "alice") as ws:
        await subscribe(ws, "t1", after_seq=0)
        publisher = asyncio.create_task(_publish(node, "t1", 300, writers=4))
        got = [(await recv(ws))["event"]["seq"] for _ in range(300)]
        await publisher
    assert got == list(range(1, 301))


def _lagging_closes() -> float:
    return REGISTRY.get_sample_value("threadwire_lagging_closes_total", {"transport": "ws"}) or 0.0


async def _slow_client(node: Node, user: str) -> ClientConnection:
    """A client whose socket buffer is tiny, so the server's writes back up quickly."""
    host, port = node.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await connect(node.ws_url, sock=sock, additional_headers=node.auth(user), max_queue=1)


async def test_a_slow_consumer_is_closed_4008_while_a_fast_one_gets_everything() -> None:
    async with serve_app(node_settings(ws_queue_size=20)) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
        before = _lagging_closes()
        slow = await _slow_client(node, "alice")
        await subscribe(slow, "t1", after_seq=0)
        slow.transport.pause_reading()
        async with ws_connect(node, "alice") as fast:
            await subscribe(fast, "t1", after_seq=0)
            fast_seqs: list[int] = []
            pad = "x" * 16_384
            published = 0
            # Publish until the server has cut the slow one off, never more than the fast
            # one has read plus a few, so the fast one never lags.
            while _lagging_closes() == before and published < 5000:
                run_id = new_run_id("t1")
                event = NewEvent(
                    new_event_id(), "t1", run_id, "agent_message", utcnow(), {"p": pad}
                )
                await node.gateway.coordinator.emit([event])
                published += 1
                while len(fast_seqs) < published - 5:
                    fast_seqs.append((await recv(fast))["event"]["seq"])
            assert _lagging_closes() == before + 1
            await emit(node, "t1", 1)
            published += 1
            while len(fast_seqs) < published:
                fast_seqs.append((await recv(fast))["event"]["seq"])
            assert fast_seqs == list(range(1, published + 1))
        slow.transport.resume_reading()
        slow_seqs: list[int] = []
        code = None
        try:
            while True:
                frame = await recv(slow)
                slow_seqs.append(frame["event"]["seq"])
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        assert code == 4008
        assert slow_seqs == list(range(1, len(slow_seqs) + 1))
        # It resumes from the store with after_seq and misses nothing.
        async with ws_connect(node, "alice") as again:
            await subscribe(again, "t1", after_seq=slow_seqs[-1] if slow_seqs else 0)
            rest = [(await recv(again))["event"]["seq"] for _ in range(published - len(slow_seqs))]
        assert slow_seqs + rest == list(range(1, published + 1))


async def test_a_long_replay_is_paced_not_cut_off() -> None:
    async with serve_app(node_settings(ws_queue_size=10)) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
        for _ in range(12):
            await emit(node, "t1", 100)
        async with ws_connect(node, "alice") as ws:
            await subscribe(ws, "t1", after_seq=0)
            got = [(await recv(ws))["event"]["seq"] for _ in range(1200)]
            await send(ws, {"op": "ping"})
            assert await recv(ws) == {"type": "pong"}
        assert got == list(range(1, 1201))


async def test_subscribing_while_events_pour_in_has_no_gap_at_the_seam(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 50)
    publisher = asyncio.create_task(_publish(node, "t1", 600, writers=3))
    results: list[list[int]] = []

    async def late_subscriber(after: int) -> None:
        async with ws_connect(node, "alice") as ws:
            answer: dict[str, Any] = await subscribe(ws, "t1", after_seq=after)
            assert answer["head_seq"] >= 50
            results.append([(await recv(ws))["event"]["seq"] for _ in range(650 - after)])

    await asyncio.gather(*(late_subscriber(a) for a in (0, 10, 25, 50)))
    await publisher
    for got in results:
        assert got == list(range(got[0], 651))
        assert got[0] in (1, 11, 26, 51)
