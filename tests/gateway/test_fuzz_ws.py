"""Hostile WebSocket frames, floods and tokens against a real server and a real client.

A malformed frame gets one `bad_request` and the connection stays open; limits answer
with their documented code or close; a token's `exp` holds for the whole connection;
and a well-behaved subscriber on the same thread gets every event, in order, exactly
once, whatever another connection of the same user throws at the server meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any, Final

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.gateway.harness import TEST_SECRET, Node, node_settings, serve_app
from tests.gateway.helpers import (
    close_code,
    emit,
    events_until,
    make_thread,
    recv,
    send,
    subscribe,
    ws_connect,
)
from tests.gateway.hostile import FUZZ, bad_tokens, deep, json_values
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from threadwire.gateway.ws import Connection

MAX_FRAME: Final = 1024

# -- frames the spec calls malformed, generated --------------------------------------

_not_an_int = st.one_of(
    st.booleans(),  # bool is an int in Python; `true` is not a seq
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.integers(max_value=-1),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_not_a_thread_id = st.one_of(
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.sampled_from(["", " ", "a b", "a/b", "..%2F", "x" * 129, "é", "t1\n", "\x00", "\ud800"]),
    st.text(max_size=20).filter(
        lambda t: not t or any(not (c.isascii() and (c.isalnum() or c in "_-.:")) for c in t)
    ),
)


def _frame(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


malformed_frames = st.one_of(
    # not one JSON object
    st.text(max_size=50).filter(lambda t: not t.strip().startswith("{")),
    json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    st.sampled_from(["NaN", "[]", "null", '"op"', "{", '{"op": "ping"', "[" * 5000 + "]" * 5000]),
    # a missing or unknown op
    st.dictionaries(
        st.sampled_from(["thread_id", "after_seq", "seq"]), st.integers(), max_size=2
    ).map(_frame),
    st.one_of(st.integers(), st.none(), st.booleans(), st.lists(st.none(), max_size=1)).map(
        lambda op: _frame({"op": op})
    ),
    st.text(max_size=20)
    .filter(lambda op: op not in {"ping", "subscribe", "unsubscribe", "ack"})
    .map(lambda op: _frame({"op": op, "thread_id": "t1"})),
    # a missing thread_id, or one outside the grammar or of the wrong type
    st.sampled_from(["subscribe", "unsubscribe", "ack"]).map(
        lambda op: _frame({"op": op, "seq": 1})
    ),
    st.tuples(st.sampled_from(["subscribe", "unsubscribe", "ack"]), _not_a_thread_id).map(
        lambda p: _frame({"op": p[0], "thread_id": p[1], "seq": 1})
    ),
    # an after_seq or seq that is not a non-negative integer
    _not_an_int.map(lambda n: _frame({"op": "subscribe", "thread_id": "t1", "after_seq": n})),
    _not_an_int.map(lambda n: _frame({"op": "ack", "thread_id": "t1", "seq": n})),
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "1e400", "-0.5", "1.5", "true", "[" * 3000 + "]" * 3000]
    ).map(lambda raw: '{"op": "subscribe", "thread_id": "t1", "after_seq": ' + raw + "}"),
)


async def _answers_until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Send a ping and collect every non-event frame up to its pong (events are
    dropped: they belong to this connection's own subscriptions, if any)."""
    await send(ws, {"op": "ping"})
    answers: list[dict[str, Any]] = []
    while (frame := await recv(ws)) != {"type": "pong"}:
        if frame.get("type") != "event":
            answers.append(frame)
    return answers


@pytest.fixture
async def world(node: Node, http: httpx.AsyncClient) -> None:
    """alice owns t1, bob owns bobs."""
    await make_thread(http, node, "alice", "t1")
    await make_thread(http, node, "bob", "bobs")


@FUZZ
@given(frame=malformed_frames)
async def test_each_malformed_frame_gets_one_bad_request_and_the_connection_stays_open(
    node: Node, world: None, frame: str
) -> None:
    async with ws_connect(node, "alice") as ws:
        await ws.send(frame)
        answers = await _answers_until_pong(ws)
    assert len(answers) == 1, (frame[:200], answers)
    assert answers[0]["type"] == "error" and answers[0]["code"] == "bad_request", answers
    assert isinstance(answers[0]["message"], str) and answers[0]["message"]


@FUZZ
@given(frames=st.lists(st.one_of(malformed_frames, st.binary(max_size=64)), min_size=1, max_size=8))
async def test_a_good_subscriber_gets_every_event_in_order_while_another_connection_fuzzes(
    node: Node, world: None, frames: list[str | bytes]
) -> None:
    head = await node.gateway.store.head_seq("t1")
    async with ws_connect(node, "alice") as good, ws_connect(node, "alice") as hostile:
        await subscribe(good, "t1", after_seq=head)
        await subscribe(hostile, "t1", after_seq=head)  # the attacker listens too
        for frame in frames:
            await hostile.send(frame)
            await emit(node, "t1", 1)
        answers = await _answers_until_pong(hostile)
        assert [a["code"] for a in answers] == ["bad_request"] * len(frames), answers
        events = await events_until(good, head + len(frames))
        assert [e["seq"] for e in events] == list(range(head + 1, head + len(frames) + 1))


async def test_binary_frames_are_bad_request_and_oversized_ones_close_1009() -> None:
    async with serve_app(node_settings(max_frame_bytes=MAX_FRAME)) as node:
        async with ws_connect(node, "alice", max_size=None) as ws:
            for payload in (b"", b'{"op": "ping"}', b"\xff\xfe\x00", bytes(MAX_FRAME)):
                await ws.send(payload)
                assert [a["code"] for a in await _answers_until_pong(ws)] == ["bad_request"]
            await ws.send(bytes(MAX_FRAME + 1))
            assert await close_code(ws) == 1009


async def test_frames_at_max_frame_bytes_pass_and_one_byte_more_closes_1009() -> None:
    async with serve_app(node_settings(max_frame_bytes=MAX_FRAME)) as node:
        for filler in ("x", "é", "\U0001f600"):  # 1, 2 and 4 bytes in UTF-8
            base = '{"op": "ping", "pad": ""}'
            room = MAX_FRAME - len(base.encode())
            exact = base.replace('""', '"' + filler * (room // len(filler.encode())) + '"')
            exact += " " * (MAX_FRAME - len(exact.encode()))  # JSON allows trailing blanks
            assert len(exact.encode()) == MAX_FRAME
            async with ws_connect(node, "alice", max_size=None) as ws:
                await ws.send(exact)
                assert await recv(ws) == {"type": "pong"}
                await ws.send(exact + " ")
                assert await close_code(ws) == 1009


async def test_deeply_nested_json_is_bad_request_not_a_dropped_connection(node: Node) -> None:
    async with ws_connect(node, "alice") as ws:
        for frame in (
            "[" * 30000 + "]" * 30000,
            '{"op": "subscribe", "thread_id": "t1", "after_seq": ' + "[" * 950 + "]" * 950 + "}",
            '{"op": ' + deep(10000) + "}",
        ):
            await ws.send(frame)
            assert [a["code"] for a in await _answers_until_pong(ws)] == ["bad_request"]


async def test_after_seq_true_is_bad_request_and_a_huge_one_is_allowed(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 2)
    async with ws_connect(node, "alice") as ws:
        await send(ws, {"op": "subscribe", "thread_id": "t1", "after_seq": True})
        assert [a["code"] for a in await _answers_until_pong(ws)] == ["bad_request"]
        # Above the head is allowed (only later events follow), even above 2**63 - 1.
        answer = await subscribe(ws, "t1", after_seq=2**64)
        assert answer == {"type": "subscribed", "thread_id": "t1", "head_seq": 2}
        await emit(node, "t1", 1)
        assert await _answers_until_pong(ws) == []


async def _metric(node: Node, line_start: str) -> float:
    async with httpx.AsyncClient(base_url=node.url) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_flood_is_answered_rate_limited_frame_for_frame_and_counted() -> None:
    async with serve_app(node_settings(max_messages_per_second=5)) as node:
        counter = 'threadwire_refusals_total{reason="rate_limited"}'
        counted_before = await _metric(node, counter)
        flood = [json.dumps({"op": "ping"}), "not json", json.dumps({"op": "nope"})] * 40
        async with ws_connect(node, "alice") as ws:
            started = time.monotonic()
            for frame in flood:
                await ws.send(frame)
            answers = [await recv(ws) for _ in flood]  # one answer per frame, none dropped
            elapsed = time.monotonic() - started
            codes = [a.get("code", a["type"]) for a in answers]
            assert set(codes) <= {"pong", "bad_request", "rate_limited"}
            limited = codes.count("rate_limited")
            # A burst of twice the rate, then the rate: everything beyond is refused.
            assert limited >= len(flood) - (2 * 5 + 5 * elapsed + 1), (elapsed, codes)
            # Over the limit is not a reason to close: the connection still answers.
            await send(ws, {"op": "ack", "thread_id": "t1", "seq": 1})  # acks are not limited
            assert await _metric(node, counter) - counted_before == limited


async def test_a_client_that_never_reads_its_answers_is_closed_4008() -> None:
    async with serve_app(node_settings(ws_queue_size=16, max_messages_per_second=0)) as node:
        host, port = node.url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frame = json.dumps({"op": "no-such-op-" + "x" * 60})  # each answer quotes it back
        async with connect(
            node.ws_url, sock=sock, additional_headers=node.auth("alice"), max_queue=1
        ) as ws:
            with contextlib.suppress(ConnectionClosed):
                # Far more answers than any socket buffer holds; stop once the server has
                # let the connection go.
                for _ in range(200):
                    for _ in range(1000):
                        await ws.send(frame)
                    if not any(isinstance(c, Connection) for c in node.gateway.clients):
                        break
            assert await close_code(ws) == 4008


async def test_too_many_subscriptions_is_an_error_frame_and_the_connection_lives_on() -> None:
    async with serve_app(node_settings(max_subscriptions_per_connection=2)) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            for t in ("t1", "t2", "t3", "t4"):
                await make_thread(http, node, "alice", t)
        async with ws_connect(node, "alice") as ws:
            await subscribe(ws, "t1")
            await subscribe(ws, "t2")
            for t in ("t3", "t4", "t3"):
                await send(ws, {"op": "subscribe", "thread_id": t})
                answers = await _answers_until_pong(ws)
                assert [(a["code"], a["thread_id"]) for a in answers] == [
                    ("too_many_subscriptions", t)
                ]
            await send(ws, {"op": "unsubscribe", "thread_id": "t1"})
            assert await recv(ws) == {"type": "unsubscribed", "thread_id": "t1"}
            await subscribe(ws, "t3")  # a freed slot can be used again


async def test_connections_per_user_count_websockets_and_streams_and_free_on_close() -> None:
    async with serve_app(node_settings(max_connections_per_user=2)) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            async with ws_connect(node, "alice") as first, ws_connect(node, "alice") as second:
                async with ws_connect(node, "alice") as third:
                    assert await close_code(third) == 4429
                stream = await http.get("/v1/threads/t1/stream", headers=node.auth("alice"))
                assert stream.status_code == 429
                assert stream.json()["code"] == "too_many_connections"
                async with ws_connect(node, "bob") as other:  # per user, not global
                    await send(other, {"op": "ping"})
                    assert await recv(other) == {"type": "pong"}
                for ws in (first, second):
                    await send(ws, {"op": "ping"})
                    assert await recv(ws) == {"type": "pong"}
            # Both closed: the server releases their slots once it has seen the closes.
            for _ in range(50):
                if node.gateway.user_connections.count("alice") == 0:
                    break
                async with ws_connect(node, "bob") as barrier:  # a round trip orders us
                    await send(barrier, {"op": "ping"})
                    await recv(barrier)
            async with ws_connect(node, "alice") as again:
                await send(again, {"op": "ping"})
                assert await recv(again) == {"type": "pong"}


async def test_the_header_token_wins_and_a_bad_header_is_not_rescued_by_the_query(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    good, url = node.token("alice"), node.ws_url
    cases: list[tuple[str, dict[str, str], int | None]] = [
        (f"{url}?access_token={good}", {}, None),
        (f"{url}?access_token={good}", {"Authorization": "Basic eDp5"}, 4401),
        (f"{url}?access_token={good}", {"Authorization": "Bearer not-a-token"}, 4401),
        (f"{url}?access_token=not-a-token", node.auth("alice"), None),
        (f"{url}?access_token=", {}, 4401),
        (f"{url}?access_token={node.service_token()}", {}, 4403),
    ]
    for target, headers, closed in cases:
        async with connect(target, additional_headers=headers) as ws:
            if closed is None:
                assert (await subscribe(ws, "t1"))["head_seq"] == 0
            else:
                assert await close_code(ws) == closed, (target, headers)


async def test_every_bad_token_closes_4401_before_any_data(node: Node) -> None:
    for name, token in bad_tokens():
        if len(token) > 7000:
            continue  # header lines over 8 KiB never reach the app (see docs: input hardening)
        for headers, target in (
            ({"Authorization": f"Bearer {token}"}, node.ws_url),
            ({}, f"{node.ws_url}?access_token={token}"),
        ):
            async with connect(target, additional_headers=headers) as ws:
                assert await close_code(ws) == 4401, name


async def test_a_token_that_expires_while_connected_closes_4401_when_exp_passes(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    expires = time.time() + 1.5
    token = jwt.encode({"sub": "alice", "exp": expires}, TEST_SECRET, algorithm="HS256")
    async with connect(node.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await subscribe(ws, "t1", after_seq=0)
        await emit(node, "t1", 1)
        assert (await recv(ws))["event"]["seq"] == 1
        try:
            while True:
                frame = await recv(ws)
                assert frame["type"] != "event" or time.time() < expires, frame
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (4401, "token expired")
        assert time.time() >= expires - 0.05


async def test_a_stream_whose_token_expires_ends_with_an_unauthorized_comment(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    token = jwt.encode({"sub": "alice", "exp": time.time() + 1.5}, TEST_SECRET, algorithm="HS256")
    url = f"/v1/threads/t1/stream?access_token={token}"
    async with http.stream("GET", url) as answer:
        assert answer.status_code == 200
        lines = [line async for line in answer.aiter_lines() if line]
    assert lines[0].startswith(": subscribed") and lines[-1] == ": error unauthorized"
    again = await http.get(url)
    assert again.status_code == 401


async def test_foreign_and_missing_threads_get_the_same_bytes_but_the_id(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "bob", "bobs")
    await emit(node, "bobs", 3)
    async with ws_connect(node, "alice") as ws:
        raw: list[str | bytes] = []
        for thread_id in ("bobs", "nope"):  # same length
            for frame in (
                {"op": "subscribe", "thread_id": thread_id},
                {"op": "subscribe", "thread_id": thread_id, "after_seq": 0},
            ):
                await send(ws, frame)
                raw.append(await ws.recv())
        foreign = [r.replace("bobs", "<ID>") if isinstance(r, str) else r for r in raw[:2]]
        missing = [r.replace("nope", "<ID>") if isinstance(r, str) else r for r in raw[2:]]
        assert foreign == missing
        assert json.loads(raw[0]) == {"type": "error", "code": "forbidden", "thread_id": "bobs"}
