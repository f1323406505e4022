"""The WebSocket protocol (protocol spec 3) against a real server and a real client."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from tests.gateway.harness import TEST_SECRET, Node, node_settings, serve_app
from tests.gateway.helpers import (
    close_code,
    emit,
    events_until,
    make_thread,
    recv,
    send,
    seqs,
    subscribe,
    ws_connect,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from threadwire.events import Event


async def test_replays_stored_events_then_live_ones_in_seq_order(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 5)
    async with ws_connect(node, "alice") as ws:
        answer = await subscribe(ws, "t1", after_seq=0)
        assert answer == {"type": "subscribed", "thread_id": "t1", "head_seq": 5}
        assert seqs(await events_until(ws, 5)) == [1, 2, 3, 4, 5]
        await emit(node, "t1", 5)
        events = await events_until(ws, 10)
        assert seqs(events) == [6, 7, 8, 9, 10]
        assert {e["thread_id"] for e in events} == {"t1"}


async def test_without_after_seq_only_new_events_follow(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 3)
    async with ws_connect(node, "alice") as ws:
        assert (await subscribe(ws, "t1"))["head_seq"] == 3
        await emit(node, "t1", 2)
        assert seqs(await events_until(ws, 5)) == [4, 5]


async def test_after_seq_above_head_delivers_only_later_events(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 2)
    async with ws_connect(node, "alice") as ws:
        assert (await subscribe(ws, "t1", after_seq=4))["head_seq"] == 2
        await emit(node, "t1", 4)
        assert seqs(await events_until(ws, 6)) == [5, 6]


async def test_forbidden_answers_missing_and_foreign_threads_alike(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "bob", "bobs")
    await emit(node, "bobs", 2)
    async with ws_connect(node, "alice") as ws:
        await send(ws, {"op": "subscribe", "thread_id": "bobs", "after_seq": 0})
        foreign = await recv(ws)
        await send(ws, {"op": "subscribe", "thread_id": "nothere", "after_seq": 0})
        missing = await recv(ws)
        assert foreign == {"type": "error", "code": "forbidden", "thread_id": "bobs"}
        assert missing == {"type": "error", "code": "forbidden", "thread_id": "nothere"}
        # Nothing of bob's thread arrives afterwards, even live.
        await emit(node, "bobs", 1)
        await send(ws, {"op": "ping"})
        assert await recv(ws) == {"type": "pong"}


async def test_two_users_never_see_each_others_events(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "ta")
    await make_thread(http, node, "bob", "tb")
    async with ws_connect(node, "alice") as wa, ws_connect(node, "bob") as wb:
        await subscribe(wa, "ta", after_seq=0)
        await subscribe(wb, "tb", after_seq=0)
        await emit(node, "tb", 3)
        await emit(node, "ta", 2)
        assert {e["thread_id"] for e in await events_until(wa, 2)} == {"ta"}
        assert {e["thread_id"] for e in await events_until(wb, 3)} == {"tb"}


MALFORMED: list[tuple[str, str | bytes]] = [
    ("binary frame", b'{"op": "ping"}'),
    ("not JSON", "hello"),
    ("JSON but not an object", "[1, 2]"),
    ("no op", "{}"),
    ("op not a string", '{"op": 7}'),
    ("unknown op", '{"op": "publish"}'),
    ("subscribe without thread_id", '{"op": "subscribe"}'),
    ("thread_id outside the grammar", '{"op": "subscribe", "thread_id": "a b"}'),
    ("thread_id not a string", '{"op": "subscribe", "thread_id": 12}'),
    ("thread_id too long", json.dumps({"op": "subscribe", "thread_id": "x" * 129})),
    ("negative after_seq", '{"op": "subscribe", "thread_id": "t1", "after_seq": -1}'),
    ("fractional after_seq", '{"op": "subscribe", "thread_id": "t1", "after_seq": 1.5}'),
    ("string after_seq", '{"op": "subscribe", "thread_id": "t1", "after_seq": "3"}'),
    ("boolean after_seq", '{"op": "subscribe", "thread_id": "t1", "after_seq": true}'),
    ("huge after_seq", '{"op": "subscribe", "thread_id": "t1", "after_seq": 1e400}'),
    ("unsubscribe without thread_id", '{"op": "unsubscribe"}'),
    ("ack without seq", '{"op": "ack", "thread_id": "t1"}'),
    ("non-UTF-8 surrogate text", '{"op": "subscribe", "thread_id": "\\ud800"}'),
]


@pytest.mark.parametrize("frame", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
async def test_malformed_frames_get_bad_request_and_the_connection_stays_open(
    node: Node, frame: str | bytes
) -> None:
    async with ws_connect(node, "alice") as ws:
        await ws.send(frame)
        answer = await recv(ws)
        assert answer["type"] == "error" and answer["code"] == "bad_request", answer
        assert answer["message"]
        await send(ws, {"op": "ping"})
        assert await recv(ws) == {"type": "pong"}


async def test_a_frame_over_max_frame_bytes_closes_with_1009() -> None:
    async with serve_app(node_settings(max_frame_bytes=1024)) as node:
        async with ws_connect(node, "alice", max_size=None) as ws:
            fits = json.dumps({"op": "ping", "pad": "x" * (1024 - 30)})
            assert len(fits) <= 1024
            await ws.send(fits)
            assert await recv(ws) == {"type": "pong"}
            await ws.send(json.dumps({"op": "ping", "pad": "x" * 1100}))
            assert await close_code(ws) == 1009


def _token(claims: dict[str, Any], *, key: str = TEST_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def _unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_TOKENS: list[tuple[str, str]] = [
    ("garbage", "not-a-token"),
    ("alg none", _unsigned({"sub": "alice"})),
    ("wrong secret", _token({"sub": "alice"}, key="another-secret-of-sufficient-length!!")),
    ("HS512", _token({"sub": "alice"}, alg="HS512", key=TEST_SECRET * 2)),
    ("expired", _token({"sub": "alice", "exp": int(time.time()) - 60})),
    ("no sub", _token({"name": "alice"})),
    ("sub outside the grammar", _token({"sub": "al ice"})),
    ("sub not a string", _token({"sub": 42})),
    ("empty sub", _token({"sub": ""})),
]


@pytest.mark.parametrize("token", [t[1] for t in BAD_TOKENS], ids=[t[0] for t in BAD_TOKENS])
async def test_bad_tokens_close_4401_before_any_data(node: Node, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(node.ws_url, additional_headers=headers) as ws:
        assert await close_code(ws) == 4401


async def test_a_missing_token_closes_4401(node: Node) -> None:
    async with ws_connect(node, None) as ws:
        assert await close_code(ws) == 4401


async def test_a_service_token_may_not_subscribe(node: Node) -> None:
    async with connect(node.ws_url, additional_headers=node.service_auth()) as ws:
        assert await close_code(ws) == 4403


async def test_the_token_may_come_as_access_token_query(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    async with connect(f"{node.ws_url}?access_token={node.token('alice')}") as ws:
        assert (await subscribe(ws, "t1"))["head_seq"] == 0


async def test_a_token_without_exp_is_accepted(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    headers = {"Authorization": f"Bearer {_token({'sub': 'alice'})}"}
    async with connect(node.ws_url, additional_headers=headers) as ws:
        await subscribe(ws, "t1")


async def test_unsubscribe_stops_delivery_and_is_answered_even_when_not_subscribed(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await make_thread(http, node, "alice", "t2")
    async with ws_connect(node, "alice") as ws:
        await subscribe(ws, "t1")
        await subscribe(ws, "t2")
        await send(ws, {"op": "unsubscribe", "thread_id": "t1"})
        assert await recv(ws) == {"type": "unsubscribed", "thread_id": "t1"}
        await send(ws, {"op": "unsubscribe", "thread_id": "never"})
        assert await recv(ws) == {"type": "unsubscribed", "thread_id": "never"}
        await emit(node, "t1", 3)
        await emit(node, "t2", 1)
        frame = await recv(ws)
        assert frame["type"] == "event" and frame["event"]["thread_id"] == "t2"


async def test_resubscribing_replaces_the_subscription(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 4)
    async with ws_connect(node, "alice") as ws:
        await subscribe(ws, "t1", after_seq=0)
        assert seqs(await events_until(ws, 4)) == [1, 2, 3, 4]
        assert (await subscribe(ws, "t1", after_seq=2))["head_seq"] == 4
        assert seqs(await events_until(ws, 4)) == [3, 4]
        await emit(node, "t1", 1)
        assert seqs(await events_until(ws, 5)) == [5]
        await send(ws, {"op": "ping"})
        assert await recv(ws) == {"type": "pong"}


async def test_ack_is_counted_and_not_answered(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    async with ws_connect(node, "alice") as ws:
        await send(ws, {"op": "ack", "thread_id": "t1", "seq": 3})
        await send(ws, {"op": "ping"})
        assert await recv(ws) == {"type": "pong"}
    metrics = (await http.get("/metrics")).text
    assert "threadwire_acks_total" in metrics


async def test_every_subscriber_gets_the_same_bytes_serialized_once(
    node: Node, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_thread(http, node, "alice", "t1")
    calls = 0
    original = Event.to_json

    def counting(self: Event) -> bytes:
        nonlocal calls
        calls += 1
        return original(self)

    monkeypatch.setattr(Event, "to_json", counting)
    async with ws_connect(node, "alice") as w1, ws_connect(node, "alice") as w2:
        async with ws_connect(node, "alice") as w3:
            for ws in (w1, w2, w3):
                await subscribe(ws, "t1")
            await emit(node, "t1", 1)
            texts = {await w.recv() for w in (w1, w2, w3)}
    assert len(texts) == 1
    assert calls == 1


async def test_subscription_limit_refuses_with_an_error_frame() -> None:
    async with serve_app(node_settings(max_subscriptions_per_connection=2)) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            for t in ("t1", "t2", "t3"):
                await make_thread(http, node, "alice", t)
        async with ws_connect(node, "alice") as ws:
            await subscribe(ws, "t1")
            await subscribe(ws, "t2")
            await subscribe(ws, "t2")  # a resubscription is not a new one
            await send(ws, {"op": "subscribe", "thread_id": "t3"})
            answer = await recv(ws)
            assert answer["code"] == "too_many_subscriptions"
            assert answer["thread_id"] == "t3"


async def test_connection_limit_per_user_closes_the_extra_connection() -> None:
    async with serve_app(node_settings(max_connections_per_user=1)) as node:
        async with ws_connect(node, "alice") as first:
            async with ws_connect(node, "alice") as second:
                assert await close_code(second) == 4429
            async with ws_connect(node, "bob") as other:
                await send(other, {"op": "ping"})
                assert await recv(other) == {"type": "pong"}
            await send(first, {"op": "ping"})
            assert await recv(first) == {"type": "pong"}


async def test_message_rate_limit_answers_rate_limited_and_keeps_the_connection() -> None:
    async with serve_app(node_settings(max_messages_per_second=2)) as node:
        async with ws_connect(node, "alice") as ws:
            for _ in range(6):
                await send(ws, {"op": "ping"})
            answers = [await recv(ws) for _ in range(6)]
            codes = [a.get("code") for a in answers]
            assert "rate_limited" in codes
            assert answers[0] == {"type": "pong"}


async def test_acks_are_not_rate_limited() -> None:
    async with serve_app(node_settings(max_messages_per_second=1)) as node:
        async with ws_connect(node, "alice") as ws:
            for seq in range(1, 51):
                await send(ws, {"op": "ack", "thread_id": "t1", "seq": seq})
            await send(ws, {"op": "ping"})
            assert await recv(ws) == {"type": "pong"}


async def test_closed_connection_releases_its_subscriptions(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    async with ws_connect(node, "alice") as ws:
        await subscribe(ws, "t1")
        assert node.gateway.hub.thread_count == 1
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    # The server side finishes its cleanup when it sees the close; a ping round trip on
    # a fresh connection orders us after it.
    async with ws_connect(node, "alice") as again:
        await send(again, {"op": "ping"})
        await recv(again)
    assert node.gateway.hub.thread_count == 0


async def test_subscribing_before_pruned_events_answers_gone_with_first_seq(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    started = await http.post(
        "/v1/threads/t1/runs",
        json={"agent": "demo", "input": {"prompt": "p", "steps": 2, "delay_ms": 0}},
        headers=node.auth("alice"),
    )
    await node.gateway.supervisor.wait(started.json()["run_id"], timeout=10)
    # A cutoff a second ahead: timestamps are milliseconds, and a fast run's events can
    # share the very millisecond of a zero-age cutoff, which then prunes nothing.
    await node.gateway.store.prune(timedelta(seconds=-1))
    thread = await node.gateway.store.get_thread("t1")
    assert thread is not None and thread.low_seq > 0
    async with ws_connect(node, "alice") as ws:
        await send(ws, {"op": "subscribe", "thread_id": "t1", "after_seq": 0})
        answer = await recv(ws)
        assert answer["type"] == "error" and answer["code"] == "gone"
        assert answer["thread_id"] == "t1" and answer["first_seq"] == thread.low_seq + 1
        resumed = await subscribe(ws, "t1", after_seq=thread.low_seq)
        assert seqs(await events_until(ws, resumed["head_seq"]))[0] == thread.low_seq + 1
