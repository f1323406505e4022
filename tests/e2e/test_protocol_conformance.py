"""Black-box conformance with /work/shared/spec/protocol.md, sections 1 to 5.

One real `threadwire serve --port 0 --print-demo-token` process with its defaults
(embedded SQLite in a temporary cwd) is shared by the module; a few tests start their
own (other options, the secret file, SIGTERM). Everything is checked through the wire
only: httpx for HTTP and SSE, the `websockets` client for /v1/ws, PyJWT for tokens,
the CLI as a subprocess. Each spec statement under test is quoted beside its check.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
import pytest
from tests.e2e.serve import (
    SECRET,
    TERMINAL,
    Server,
    alg_none_token,
    all_events,
    clean_env,
    close_code,
    events_until,
    fill,
    ingest,
    new_thread,
    problem,
    quiet,
    recv,
    send,
    start_server,
    subscribe,
    threadwire,
    unique,
)

EVENT_KEYS: Final = {"event_id", "thread_id", "run_id", "seq", "type", "ts", "data"}
THREAD_KEYS: Final = {"thread_id", "owner", "created_at", "metadata", "head_seq"}
RUN_KEYS: Final = {
    "run_id",
    "thread_id",
    "agent",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "result",
    "error",
}
TS: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EVENT_ID: Final = re.compile(r"^evt_[0-9A-HJKMNP-TV-Z]{26}$")
FAST: Final = {"prompt": "tides", "steps": 2, "delay_ms": 0}
SLOW: Final = {"prompt": "slow", "steps": 5, "delay_ms": 60000}
RAND8: Final = "7f3a9c01"


def canonical_re(thread_id: str) -> re.Pattern[str]:
    return re.compile(rf"^thread_{re.escape(thread_id)}_run_[1-9]\d*_[0-9a-f]{{8}}$")


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with server.http() as client:
        yield client


async def start_run(
    http: httpx.AsyncClient, server: Server, user: str, thread_id: str, input: dict[str, Any]
) -> str:
    answer = await http.post(
        f"/v1/threads/{thread_id}/runs",
        json={"agent": "demo", "input": input},
        headers=server.auth(user),
    )
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


async def finished_run(
    http: httpx.AsyncClient, server: Server, user: str, thread_id: str, input: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """Start a demo run while subscribed from the thread's head; its events to the end."""
    async with server.ws(user) as ws:
        head = (await subscribe(ws, thread_id))["head_seq"]
        run_id = await start_run(http, server, user, thread_id, input)
        events = await events_until(ws, terminal=True)
    assert events[0]["seq"] == head + 1
    return run_id, events


# == 1. Events =============================================================================


async def test_demo_run_events_sequence_shapes_seq_and_ts(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user, thread_id=f"thread_{unique('x')}_run_1")
    run_id, events = await finished_run(http, server, user, thread_id, FAST)
    # spec 5: "run_queued, agent_started, per step agent_thinking then a
    # tool_executing/tool_completed pair, then one agent_message {"text": ...}, then
    # agent_completed with a result derived from the prompt"
    step = ["agent_thinking", "tool_executing", "tool_completed"]
    expected = ["run_queued", "agent_started", *step, *step, "agent_message", "agent_completed"]
    assert [e["type"] for e in events] == expected
    # spec 1: "seq: per thread, starting at 1, increasing by exactly 1"
    assert [e["seq"] for e in events] == list(range(1, len(expected) + 1))
    for event in events:
        assert set(event) == EVENT_KEYS, event
        assert event["thread_id"] == thread_id and event["run_id"] == run_id
        assert EVENT_ID.match(event["event_id"]), event["event_id"]
        assert TS.match(event["ts"]), event["ts"]  # "2026-11-24T22:01:52.123Z"
        assert isinstance(event["data"], dict)
    assert canonical_re(thread_id).match(run_id)
    assert len({e["event_id"] for e in events}) == len(events)
    message = events[-2]["data"]
    assert isinstance(message.get("text"), str) and message["text"]
    result = events[-1]["data"].get("result")
    assert isinstance(result, str) and "tides" in result
    # the stored events are the delivered ones
    assert await all_events(http, server, user, thread_id) == events


async def test_zero_steps_and_result_follows_prompt(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    _, events = await finished_run(
        http, server, user, thread_id, {"prompt": "otters", "steps": 0, "delay_ms": 0}
    )
    assert [e["type"] for e in events] == [
        "run_queued",
        "agent_started",
        "agent_message",
        "agent_completed",
    ]
    _, again = await finished_run(http, server, user, thread_id, {"prompt": "badgers", "steps": 0})
    assert again[0]["seq"] == events[-1]["seq"] + 1  # gap-free across runs
    assert again[-1]["data"]["result"] != events[-1]["data"]["result"]


async def test_run_body_after_completion(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    run_id, _ = await finished_run(http, server, user, thread_id, FAST)
    answer = await http.get(f"/v1/runs/{run_id}", headers=server.auth(user))
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert set(run) == RUN_KEYS
    assert run["run_id"] == run_id and run["thread_id"] == thread_id
    assert run["agent"] == "demo" and run["status"] == "completed"
    assert run["error"] is None and isinstance(run["result"], str)
    for key in ("created_at", "started_at", "finished_at"):
        assert isinstance(run[key], str) and TS.match(run[key]), run


# == 3. WebSocket ==========================================================================


async def test_ws_auth_by_header_and_by_access_token_query(server: Server) -> None:
    user = unique()
    async with server.ws(user) as ws:
        await quiet(ws)
    async with server.ws(None, query_token=server.token(user)) as ws:
        await quiet(ws)


def bad_tokens(server: Server) -> dict[str, str | None]:
    now = int(time.time())
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "bad_signature": jwt.encode({"sub": "alice", "exp": now + 60}, "x" * 64, "HS256"),
        "expired": jwt.encode({"sub": "alice", "exp": now - 60}, server.secret, "HS256"),
        "alg_none": alg_none_token("alice"),
        "hs512": jwt.encode({"sub": "alice", "exp": now + 60}, server.secret, "HS512"),
        "no_sub": jwt.encode({"exp": now + 60}, server.secret, "HS256"),
        "bad_sub": jwt.encode({"sub": "a b/c", "exp": now + 60}, server.secret, "HS256"),
    }


BAD_TOKEN_KINDS: Final = [
    "missing",
    "garbage",
    "bad_signature",
    "expired",
    "alg_none",
    "hs512",
    "no_sub",
    "bad_sub",
]


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
@pytest.mark.parametrize("where", ["header", "query"])
async def test_ws_bad_token_closes_4401_before_any_data(
    server: Server, kind: str, where: str
) -> None:
    # spec 3: "Missing or bad token: close 4401 before any data."
    token = bad_tokens(server)[kind]
    if token is None:
        cm = server.ws(None)
    elif where == "header":
        cm = server.ws(None, headers={"Authorization": f"Bearer {token}"})
    else:
        cm = server.ws(None, query_token=token)
    async with cm as ws:
        code, seen = await close_code(ws)
    assert code == 4401 and seen == []


async def test_ws_subscribed_frame_and_new_events_only_by_default(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    async with server.ws(user) as ws:
        # "head_seq: ... (0 when it has none)"
        assert await subscribe(ws, thread_id) == {
            "type": "subscribed",
            "thread_id": thread_id,
            "head_seq": 0,
        }
    run_id = await new_run_id(http, server, user, thread_id)
    await fill(http, server, thread_id, 2, run_id)
    async with server.ws(user) as ws:
        answer = await subscribe(ws, thread_id)  # no after_seq: only new events
        assert answer["head_seq"] == 3
        await quiet(ws)
        await fill(http, server, thread_id, 2, run_id)
        events = await events_until(ws, 5)
        assert [e["seq"] for e in events] == [4, 5]
        for event in events:
            assert set(event) == EVENT_KEYS
        await quiet(ws)


async def new_run_id(http: httpx.AsyncClient, server: Server, user: str, thread_id: str) -> str:
    """A canonical run ID on the thread, recorded through ingest (first sight)."""
    run_id = f"thread_{thread_id}_run_{int(time.time() * 1000)}_{uuid.uuid4().hex[:8]}"
    answer = await ingest(
        http, server, {"run_id": run_id, "type": "run_queued", "data": {"agent": "ext"}}
    )
    assert answer.json()["accepted"][0]["run_id"] == run_id
    return run_id


async def thread_with_events(
    http: httpx.AsyncClient, server: Server, count: int
) -> tuple[str, str, str]:
    """A fresh user's thread with `count` stored events: (user, thread, run)."""
    user = unique()
    thread_id = await new_thread(http, server, user)
    run_id = await new_run_id(http, server, user, thread_id)
    if count > 1:
        await fill(http, server, thread_id, count - 1, run_id)
    return user, thread_id, run_id


async def test_ws_after_seq_replays_then_goes_live_without_gap_or_duplicate(
    server: Server, http: httpx.AsyncClient
) -> None:
    user, thread_id, run_id = await thread_with_events(http, server, 10)
    async with server.ws(user) as ws:
        answer = await subscribe(ws, thread_id, after_seq=4)
        assert answer["head_seq"] == 10
        replayed = await events_until(ws, 10)
        await fill(http, server, thread_id, 5, run_id)
        live = await events_until(ws, 15)
        assert [e["seq"] for e in replayed + live] == list(range(5, 16))
        await quiet(ws)
    assert replayed + live == (await all_events(http, server, user, thread_id))[4:]


async def test_ws_after_seq_above_head(server: Server, http: httpx.AsyncClient) -> None:
    # "An after_seq above it is allowed: only events with a larger seq follow."
    user, thread_id, run_id = await thread_with_events(http, server, 3)
    async with server.ws(user) as ws:
        assert (await subscribe(ws, thread_id, after_seq=6))["head_seq"] == 3
        await fill(http, server, thread_id, 5, run_id)  # seqs 4..8
        events = await events_until(ws, 8)
        assert [e["seq"] for e in events] == [7, 8]
        await quiet(ws)


async def test_ws_resubscribe_replaces_and_unsubscribe(
    server: Server, http: httpx.AsyncClient
) -> None:
    user, thread_id, run_id = await thread_with_events(http, server, 6)
    async with server.ws(user) as ws:
        await subscribe(ws, thread_id, after_seq=0)
        assert [e["seq"] for e in await events_until(ws, 6)] == [1, 2, 3, 4, 5, 6]
        # "Subscribing again ... replaces the subscription (it restarts from the new
        # after_seq); no event is delivered twice on account of the old one"
        assert (await subscribe(ws, thread_id, after_seq=4))["head_seq"] == 6
        assert [e["seq"] for e in await events_until(ws, 6)] == [5, 6]
        await fill(http, server, thread_id, 1, run_id)
        assert [e["seq"] for e in await events_until(ws, 7)] == [7]
        await quiet(ws)
        await send(ws, {"op": "unsubscribe", "thread_id": thread_id})
        assert await recv(ws) == {"type": "unsubscribed", "thread_id": thread_id}
        await fill(http, server, thread_id, 1, run_id)
        await quiet(ws)
        # "Unsubscribing from a thread not subscribed is answered unsubscribed all the same."
        for other in (thread_id, "never-subscribed"):
            await send(ws, {"op": "unsubscribe", "thread_id": other})
            assert await recv(ws) == {"type": "unsubscribed", "thread_id": other}
        # the unsubscribed thread's event never arrived
        await subscribe(ws, thread_id)
        await quiet(ws)


async def test_ws_resume_mid_run_has_no_gap_or_duplicate_at_the_seam(
    server: Server, http: httpx.AsyncClient
) -> None:
    # spec 2.3: "receives every later event exactly once, first from the store, then live,
    # with no gap and no duplicate at the seam" (subscribing while a run emits)
    user = unique()
    thread_id = await new_thread(http, server, user)
    async with server.ws(user) as first:
        await subscribe(first, thread_id)
        await start_run(http, server, user, thread_id, {"prompt": "p", "steps": 150, "delay_ms": 0})
        seen = await events_until(first, 20)
    async with server.ws(user) as again:
        await subscribe(again, thread_id, after_seq=seen[-1]["seq"])
        rest = await events_until(again, terminal=True)
        await quiet(again)
    seqs = [e["seq"] for e in seen + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seen + rest == await all_events(http, server, user, thread_id)


async def test_ws_ack_answers_nothing_and_ping_pongs(
    server: Server, http: httpx.AsyncClient
) -> None:
    user, thread_id, _ = await thread_with_events(http, server, 2)
    async with server.ws(user) as ws:
        await subscribe(ws, thread_id, after_seq=0)
        await events_until(ws, 2)
        await send(ws, {"op": "ack", "thread_id": thread_id, "seq": 2})
        await send(ws, {"op": "ping"})
        assert await recv(ws) == {"type": "pong"}


MALFORMED: Final[list[tuple[str, str | bytes]]] = [
    ("binary", b'{"op": "ping"}'),
    ("not_json", "hello"),
    ("truncated_json", '{"op": "ping"'),
    ("json_array", '[{"op": "ping"}]'),
    ("json_string", '"ping"'),
    ("json_number", "1"),
    ("json_null", "null"),
    ("missing_op", '{"thread_id": "t"}'),
    ("unknown_op", '{"op": "dance"}'),
    ("op_not_string", '{"op": 1}'),
    ("subscribe_missing_thread", '{"op": "subscribe"}'),
    ("unsubscribe_missing_thread", '{"op": "unsubscribe"}'),
    ("ack_missing_thread", '{"op": "ack", "seq": 1}'),
    ("thread_bad_charset", '{"op": "subscribe", "thread_id": "a b"}'),
    ("thread_slash", '{"op": "subscribe", "thread_id": "a/b"}'),
    ("thread_non_ascii", '{"op": "subscribe", "thread_id": "caf\\u00e9"}'),
    ("thread_empty", '{"op": "subscribe", "thread_id": ""}'),
    ("thread_too_long", json.dumps({"op": "subscribe", "thread_id": "a" * 129})),
    ("thread_not_string", '{"op": "subscribe", "thread_id": 5}'),
    ("after_seq_negative", '{"op": "subscribe", "thread_id": "t", "after_seq": -1}'),
    ("after_seq_float", '{"op": "subscribe", "thread_id": "t", "after_seq": 1.5}'),
    ("after_seq_string", '{"op": "subscribe", "thread_id": "t", "after_seq": "3"}'),
    ("after_seq_bool", '{"op": "subscribe", "thread_id": "t", "after_seq": true}'),
    # Not listed: `"after_seq": null`. The server reads it as absent ("after_seq
    # optional, default: only new events"), which a client building the frame from an
    # optional value relies on; "not a non-negative integer" is read as a present value.
]


async def test_ws_each_malformed_frame_is_bad_request_and_the_connection_stays_open(
    server: Server,
) -> None:
    async with server.ws(unique()) as ws:
        for name, frame in MALFORMED:
            await ws.send(frame)
            answer = await recv(ws)
            assert answer.get("type") == "error", (name, answer)
            assert answer.get("code") == "bad_request", (name, answer)
            assert isinstance(answer.get("message"), str), (name, answer)
            await quiet(ws)


async def test_ws_forbidden_is_identical_for_missing_and_foreign_threads(
    server: Server, http: httpx.AsyncClient
) -> None:
    owner, other = unique(), unique()
    foreign = await new_thread(http, server, owner)
    missing = unique("missing")
    async with server.ws(other) as ws:
        await send(ws, {"op": "subscribe", "thread_id": foreign, "after_seq": 0})
        a = await recv(ws)
        await send(ws, {"op": "subscribe", "thread_id": missing, "after_seq": 0})
        b = await recv(ws)
        await quiet(ws)
    assert a == {"type": "error", "code": "forbidden", "thread_id": foreign}
    assert {**b, "thread_id": foreign} == a
    assert json.dumps(b).replace(missing, foreign) == json.dumps(a)


async def test_ws_frame_size_limit_default_65536(server: Server) -> None:
    # "--max-frame-bytes N: a client message of more than N bytes closes with 1009."
    async with server.ws(unique()) as ws:
        await ws.send("x" * 65536)  # at the limit: only malformed
        assert (await recv(ws))["code"] == "bad_request"
        await quiet(ws)
        await ws.send("x" * 65537)
        code, _ = await close_code(ws)
    assert code == 1009


# == 4. HTTP API ===========================================================================


async def test_create_thread_bodies(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    answer = await http.post("/v1/threads", headers=server.auth(user))
    assert answer.status_code == 201, answer.text
    thread = answer.json()
    assert set(thread) == THREAD_KEYS
    assert thread["owner"] == user and thread["metadata"] == {} and thread["head_seq"] == 0
    assert re.fullmatch(r"[0-9a-f]{32}", thread["thread_id"])
    assert TS.match(thread["created_at"])
    own = unique("t")
    answer = await http.post(
        "/v1/threads",
        json={"thread_id": own, "metadata": {"k": [1, "v"]}},
        headers=server.auth(user),
    )
    assert answer.status_code == 201
    assert answer.json()["thread_id"] == own and answer.json()["metadata"] == {"k": [1, "v"]}
    for bad in ({"metadata": [1]}, {"metadata": "m"}, {"thread_id": 5}):
        problem(await http.post("/v1/threads", json=bad, headers=server.auth(user)), 422)
    got = await http.get(f"/v1/threads/{own}", headers=server.auth(user))
    assert got.status_code == 200 and got.json() == answer.json()


async def test_thread_exists_409_says_nothing_of_the_thread(
    server: Server, http: httpx.AsyncClient
) -> None:
    owner, other = unique(), unique()
    thread_id = await new_thread(http, server, owner, metadata={"secret": "s3"})
    bodies = []
    for user in (owner, other):
        answer = await http.post(
            "/v1/threads", json={"thread_id": thread_id}, headers=server.auth(user)
        )
        bodies.append(problem(answer, 409, "thread_exists"))
    assert bodies[0] == bodies[1]
    assert owner not in json.dumps(bodies[1]) and "s3" not in json.dumps(bodies[1])


BAD_THREAD_IDS: Final = [
    ("a b", "bad_charset"),
    ("a:b\\c", "bad_charset"),
    ("café", "bad_charset"),
    ("a" * 129, "too_long"),
]


@pytest.mark.parametrize(("bad", "code"), [*BAD_THREAD_IDS, ("a/b", "bad_charset"), ("", "empty")])
async def test_thread_id_outside_grammar_in_body_is_400_with_the_id_code(
    server: Server, http: httpx.AsyncClient, bad: str, code: str
) -> None:
    answer = await http.post("/v1/threads", json={"thread_id": bad}, headers=server.auth(unique()))
    problem(answer, 400, code)


# A `/` is not among the path cases: `%2F` is decoded before routing, so
# /v1/threads/a%2Fb/events names another resource; see the test below.
@pytest.mark.parametrize(("bad", "code"), BAD_THREAD_IDS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/threads/{}"),
        ("GET", "/v1/threads/{}/runs"),
        ("POST", "/v1/threads/{}/runs"),
        ("GET", "/v1/threads/{}/events"),
        ("GET", "/v1/threads/{}/stream"),
    ],
)
async def test_thread_id_outside_grammar_in_path_is_400_with_the_id_code(
    server: Server, http: httpx.AsyncClient, bad: str, code: str, method: str, path: str
) -> None:
    from urllib.parse import quote

    url = path.format(quote(bad, safe=""))
    body = {"agent": "demo", "input": FAST} if method == "POST" else None
    answer = await http.request(method, url, json=body, headers=server.auth(unique()))
    problem(answer, 400, code)


async def test_thread_id_with_a_slash_in_the_path_is_a_4xx_problem(
    server: Server, http: httpx.AsyncClient
) -> None:
    for path in ("/v1/threads/a%2Fb", "/v1/threads/a%2Fb/events", "/v1/threads/a%2Fb/runs"):
        answer = await http.get(path, headers=server.auth(unique()))
        assert answer.status_code in (400, 404), answer.text
        problem(answer, answer.status_code)


async def test_list_threads_paging(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    made = [await new_thread(http, server, user) for _ in range(53)]
    headers = server.auth(user)
    first = await http.get("/v1/threads", headers=headers)
    assert first.status_code == 200
    page = first.json()
    assert set(page) == {"threads", "next_before"}
    assert len(page["threads"]) == 50  # "limit default 50"
    assert all(set(t) == THREAD_KEYS and t["owner"] == user for t in page["threads"])
    assert isinstance(page["next_before"], str)
    second = await http.get("/v1/threads", params={"before": page["next_before"]}, headers=headers)
    rest = second.json()
    assert len(rest["threads"]) == 3 and rest["next_before"] is None
    listed = [t["thread_id"] for t in page["threads"] + rest["threads"]]
    assert listed == made[::-1]  # newest first
    small = (await http.get("/v1/threads", params={"limit": 2}, headers=headers)).json()
    assert [t["thread_id"] for t in small["threads"]] == made[:-3:-1]
    big = await http.get("/v1/threads", params={"limit": 1000}, headers=headers)
    assert big.status_code == 200 and len(big.json()["threads"]) == 53
    assert big.json()["next_before"] is None
    # "limit ... at most 1000": more is clamped or refused, never a 500
    over = await http.get("/v1/threads", params={"limit": 1001}, headers=headers)
    if over.status_code != 200:
        problem(over, 422)
    for bad in (0, -1, "x"):
        problem(await http.get("/v1/threads", params={"limit": bad}, headers=headers), 422)
    # a cursor that is not one is refused, never a 500
    answer = await http.get("/v1/threads", params={"before": "garbage"}, headers=headers)
    if answer.status_code != 200:
        problem(answer, answer.status_code)
        assert 400 <= answer.status_code < 500


async def test_list_runs_paging_newest_first(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    runs = [(await finished_run(http, server, user, thread_id, FAST))[0] for _ in range(3)]
    headers = server.auth(user)
    page = (
        await http.get(f"/v1/threads/{thread_id}/runs", params={"limit": 2}, headers=headers)
    ).json()
    assert set(page) == {"runs", "next_before"}
    assert [r["run_id"] for r in page["runs"]] == runs[:0:-1]
    assert all(set(r) == RUN_KEYS for r in page["runs"])
    rest = (
        await http.get(
            f"/v1/threads/{thread_id}/runs",
            params={"limit": 2, "before": page["next_before"]},
            headers=headers,
        )
    ).json()
    assert [r["run_id"] for r in rest["runs"]] == runs[:1] and rest["next_before"] is None
    whole = (await http.get(f"/v1/threads/{thread_id}/runs", headers=headers)).json()
    assert [r["run_id"] for r in whole["runs"]] == runs[::-1] and whole["next_before"] is None


async def test_events_paging_rules(server: Server, http: httpx.AsyncClient) -> None:
    user, thread_id, run_id = await thread_with_events(http, server, 1001)
    await fill(http, server, thread_id, 249, run_id)  # head 1250
    headers = server.auth(user)
    url = f"/v1/threads/{thread_id}/events"

    async def page(**params: Any) -> tuple[list[int], int | None]:
        answer = await http.get(url, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"events", "next_after_seq"}
        return [e["seq"] for e in body["events"]], body["next_after_seq"]

    # "after_seq default 0; limit default 100"
    assert await page() == (list(range(1, 101)), 100)
    assert await page(after_seq=100) == (list(range(101, 201)), 200)
    # "above 1000 clamped to 1000"
    assert await page(limit=5000) == (list(range(1, 1001)), 1000)
    assert await page(limit=1000, after_seq=1000) == (list(range(1001, 1251)), None)
    # "null when the page reached the head": a full page ending at the head is null too
    assert await page(after_seq=1200, limit=50) == (list(range(1201, 1251)), None)
    assert await page(after_seq=1249, limit=1) == ([1250], None)
    # "an after_seq at or above the head gives an empty page and null"
    assert await page(after_seq=1250) == ([], None)
    assert await page(after_seq=99999) == ([], None)
    # "below 1 a 422"
    for bad in (0, -5):
        problem(await http.get(url, params={"limit": bad}, headers=headers), 422)
    for bad_seq in (-1, "x"):
        answer = await http.get(url, params={"after_seq": bad_seq}, headers=headers)
        problem(answer, 422)


async def test_missing_and_foreign_threads_get_identical_404s(
    server: Server, http: httpx.AsyncClient
) -> None:
    owner, other = unique(), unique()
    foreign = await new_thread(http, server, owner)
    await finished_run(http, server, owner, foreign, {"prompt": "p", "steps": 0})
    missing = unique("missing")
    for method, path in [
        ("GET", "/v1/threads/{}"),
        ("GET", "/v1/threads/{}/runs"),
        ("POST", "/v1/threads/{}/runs"),
        ("GET", "/v1/threads/{}/events"),
        ("GET", "/v1/threads/{}/stream"),
    ]:
        body = {"agent": "demo", "input": FAST} if method == "POST" else None
        answers = [
            await http.request(method, path.format(t), json=body, headers=server.auth(other))
            for t in (foreign, missing)
        ]
        a, b = (problem(x, 404, "not_found") for x in answers)
        assert json.dumps(b).replace(missing, foreign) == json.dumps(a), (path, a, b)


async def test_missing_and_foreign_runs_get_identical_404s(
    server: Server, http: httpx.AsyncClient
) -> None:
    owner, other = unique(), unique()
    foreign_thread = await new_thread(http, server, owner)
    run_id, _ = await finished_run(http, server, owner, foreign_thread, FAST)
    own_thread = await new_thread(http, server, other)
    missing_here = f"thread_{own_thread}_run_1764000000000_{RAND8}"
    missing_nowhere = f"thread_{unique('nt')}_run_1764000000000_{RAND8}"
    for path in ("/v1/runs/{}", "/v1/runs/{}/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        bodies = []
        for rid in (run_id, missing_here, missing_nowhere):
            answer = await http.request(method, path.format(rid), headers=server.auth(other))
            bodies.append((rid, problem(answer, 404, "not_found")))
        reference = json.dumps(bodies[0][1])
        for rid, body in bodies[1:]:
            assert json.dumps(body).replace(rid, run_id) == reference, (bodies[0], body)
    # and the owner still sees it
    assert (await http.get(f"/v1/runs/{run_id}", headers=server.auth(owner))).status_code == 200


@pytest.mark.parametrize(
    ("run_id", "code"),
    [
        ("bad!id", "bad_charset"),
        ("run id", "bad_charset"),
        ("x" * 257, "too_long"),
        ("hello", "unknown_format"),
        ("thread_abc", "unknown_format"),
        ("thread_abc_run_12_zz", "unknown_format"),
    ],
)
async def test_run_id_that_does_not_parse_is_400_with_the_id_code(
    server: Server, http: httpx.AsyncClient, run_id: str, code: str
) -> None:
    from urllib.parse import quote

    for method, path in (("GET", "/v1/runs/{}"), ("POST", "/v1/runs/{}/cancel")):
        answer = await http.request(
            method, path.format(quote(run_id, safe="")), headers=server.auth(unique())
        )
        problem(answer, 400, code)


@pytest.mark.parametrize(
    "run_id",
    [
        f"thread_nowhere_run_1764000000000_{RAND8}",
        f"run_nowhere_{RAND8}",
        "0b7e2f4a-3c1d-4e5f-8a9b-0c1d2e3f4a5b",
        "0b7e2f4a3c1d4e5f8a9b0c1d2e3f4a5b",
        "00000000-0000-0000-0000-000000000000",
    ],
)
async def test_parseable_unknown_run_is_404_never_500(
    server: Server, http: httpx.AsyncClient, run_id: str
) -> None:
    for method, path in (("GET", "/v1/runs/{}"), ("POST", "/v1/runs/{}/cancel")):
        answer = await http.request(method, path.format(run_id), headers=server.auth(unique()))
        problem(answer, 404, "not_found")


async def test_cancel_202_then_409_run_finished(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    async with server.ws(user) as ws:
        await subscribe(ws, thread_id)
        run_id = await start_run(http, server, user, thread_id, SLOW)
        # wait until it is really running (inside the first tool call)
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != "tool_executing":
            seen += await events_until(ws, len(seen) + 1)
        answer = await http.post(f"/v1/runs/{run_id}/cancel", headers=server.auth(user))
        assert answer.status_code == 202, answer.text
        run = answer.json()
        assert set(run) == RUN_KEYS and run["run_id"] == run_id
        seen += await events_until(ws, terminal=True)
    assert seen[-1]["type"] == "run_cancelled"
    assert sum(e["type"] in TERMINAL for e in seen) == 1
    final = (await http.get(f"/v1/runs/{run_id}", headers=server.auth(user))).json()
    assert final["status"] == "cancelled" and final["finished_at"] is not None
    again = await http.post(f"/v1/runs/{run_id}/cancel", headers=server.auth(user))
    problem(again, 409, "run_finished")
    # a completed run alike
    done, _ = await finished_run(http, server, user, thread_id, FAST)
    problem(
        await http.post(f"/v1/runs/{done}/cancel", headers=server.auth(user)), 409, "run_finished"
    )


async def test_cancel_a_queued_run(server: Server, http: httpx.AsyncClient) -> None:
    # "--max-runs-per-user N (default 8): runs beyond them wait in queued"
    user = unique()
    thread_id = await new_thread(http, server, user)
    runs = [await start_run(http, server, user, thread_id, SLOW) for _ in range(9)]
    headers = server.auth(user)
    queued = (await http.get(f"/v1/runs/{runs[-1]}", headers=headers)).json()
    assert queued["status"] == "queued"
    for run_id in runs[::-1]:
        answer = await http.post(f"/v1/runs/{run_id}/cancel", headers=headers)
        assert answer.status_code == 202, answer.text
    for run_id in runs:
        body = (await http.get(f"/v1/runs/{run_id}", headers=headers)).json()
        assert body["status"] == "cancelled", body


@pytest.mark.parametrize(
    "input",
    [
        {"prompt": "p", "steps": -1},
        {"prompt": "p", "steps": 1001},
        {"prompt": "p", "steps": "3"},
        {"prompt": "p", "steps": 1.5},
        {"prompt": "p", "steps": True},
        {"prompt": "p", "delay_ms": -1},
        {"prompt": "p", "delay_ms": 60001},
        {"prompt": "p", "delay_ms": None},
        {"prompt": 5},
        {"prompt": ["p"]},
    ],
)
async def test_demo_input_out_of_range_is_422_invalid_input(
    server: Server, http: httpx.AsyncClient, input: dict[str, Any]
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    answer = await http.post(
        f"/v1/threads/{thread_id}/runs",
        json={"agent": "demo", "input": input},
        headers=server.auth(user),
    )
    problem(answer, 422, "invalid_input")
    runs = await http.get(f"/v1/threads/{thread_id}/runs", headers=server.auth(user))
    assert runs.json()["runs"] == []


async def test_demo_input_bounds_are_accepted(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    for input in ({"prompt": "", "steps": 1000, "delay_ms": 60000}, {"prompt": "p"}):
        run_id = await start_run(http, server, user, thread_id, input)
        answer = await http.post(f"/v1/runs/{run_id}/cancel", headers=server.auth(user))
        assert answer.status_code in (202, 409), answer.text


async def test_start_run_answers_202_and_body_errors(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    headers = server.auth(user)
    url = f"/v1/threads/{thread_id}/runs"
    answer = await http.post(url, json={"agent": "demo", "input": FAST}, headers=headers)
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) == {"run_id", "thread_id", "status"}
    assert body["thread_id"] == thread_id and body["status"] == "queued"
    assert canonical_re(thread_id).match(body["run_id"])
    problem(
        await http.post(url, json={"agent": "nope", "input": {}}, headers=headers),
        422,
        "unknown_agent",
    )
    bad: dict[str, Any]
    for bad in ({}, {"agent": 5}, {"agent": "demo", "input": [1]}, {"input": {}}):
        problem(await http.post(url, json=bad, headers=headers), 422, "invalid_request")
    for raw in (b"{", b"[]", b"not json"):
        answer = await http.post(
            url, content=raw, headers={**headers, "content-type": "application/json"}
        )
        problem(answer, 422, "invalid_request")


async def test_body_over_limit_is_413_too_large(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    big = {"metadata": {"blob": "x" * (1024 * 1024 + 10)}}
    problem(await http.post("/v1/threads", json=big, headers=server.auth(user)), 413, "too_large")
    thread_id = await new_thread(http, server, user)
    answer = await http.post(
        f"/v1/threads/{thread_id}/runs",
        json={"agent": "demo", "input": {"prompt": "x" * (1024 * 1024 + 10)}},
        headers=server.auth(user),
    )
    problem(answer, 413, "too_large")


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
async def test_no_or_bad_token_is_401_unauthorized(
    server: Server, http: httpx.AsyncClient, kind: str
) -> None:
    token = bad_tokens(server)[kind]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    for method, path in [
        ("GET", "/v1/threads"),
        ("POST", "/v1/threads"),
        ("GET", "/v1/threads/t/events"),
        ("GET", "/v1/runs/run_t_7f3a9c01"),
        ("POST", "/v1/events"),
    ]:
        problem(await http.request(method, path, headers=headers), 401, "unauthorized")
    if token is not None:
        answer = await http.get("/v1/threads", params={"access_token": token})
        problem(answer, 401, "unauthorized")


async def test_wrong_kind_of_token_is_403_forbidden(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    service = server.service_auth()
    for method, path in [
        ("GET", "/v1/threads"),
        ("POST", "/v1/threads"),
        ("GET", f"/v1/threads/{thread_id}"),
        ("GET", f"/v1/threads/{thread_id}/events"),
        ("GET", f"/v1/threads/{thread_id}/runs"),
        ("GET", f"/v1/threads/{thread_id}/stream"),
    ]:
        problem(await http.request(method, path, headers=service), 403, "forbidden")
    # "Needs a service token (scope events:write); a user token gets 403."
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    answer = await http.post(
        "/v1/events",
        json={"run_id": run_id, "type": "agent_message"},
        headers=server.auth(user),
    )
    problem(answer, 403, "forbidden")


async def test_sse_lines_last_event_id_after_seq_and_access_token(
    server: Server, http: httpx.AsyncClient
) -> None:
    user, thread_id, run_id = await thread_with_events(http, server, 6)
    stored = await all_events(http, server, user, thread_id)
    url = f"/v1/threads/{thread_id}/stream"

    async def first_frames(count: int, **kwargs: Any) -> list[dict[str, str]]:
        frames: list[dict[str, str]] = []
        async with http.stream("GET", url, **kwargs) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            current: dict[str, str] = {}
            async for line in answer.aiter_lines():
                if line.startswith(":"):
                    continue
                if line == "":
                    if current:
                        frames.append(current)
                        current = {}
                    if len(frames) == count:
                        break
                    continue
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
        return frames

    # "each event is sent as id: <seq>, event: <type>, data: <the event JSON>"
    frames = await first_frames(6, params={"after_seq": 0}, headers=server.auth(user))
    assert [set(f) for f in frames] == [{"id", "event", "data"}] * 6
    assert [json.loads(f["data"]) for f in frames] == stored
    assert [f["id"] for f in frames] == [str(e["seq"]) for e in stored]
    assert [f["event"] for f in frames] == [e["type"] for e in stored]
    # "starts after Last-Event-ID when the header is present, else after after_seq"
    frames = await first_frames(
        2, params={"after_seq": 1}, headers={**server.auth(user), "Last-Event-ID": "4"}
    )
    assert [f["id"] for f in frames] == ["5", "6"]
    frames = await first_frames(2, params={"after_seq": 3, "access_token": server.token(user)})
    assert [f["id"] for f in frames] == ["4", "5"]

    # "else with new events only"
    async with http.stream("GET", url, headers=server.auth(user)) as answer:
        lines = answer.aiter_lines()
        assert (await anext(lines)).startswith(":")  # subscribed; the stream is live
        await fill(http, server, thread_id, 1, run_id)
        data = [line async for line in _until_data(lines)]
        assert data == ["id: 7"]


async def _until_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The first `id:` line after comments and blanks."""
    async for line in lines:
        if line.startswith("id:"):
            yield line
            return


# == 4.1 Ingest ============================================================================


async def test_ingest_single_event_answer_shape_and_delivery(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    run_id = f"thread_{thread_id}_run_{int(time.time() * 1000)}_{RAND8}"
    async with server.ws(user) as ws:
        await subscribe(ws, thread_id)
        answer = await ingest(http, server, {"run_id": run_id, "type": "agent_message"})
        body = answer.json()
        assert set(body) == {"accepted"} and len(body["accepted"]) == 1
        accepted = body["accepted"][0]
        assert set(accepted) == {"event_id", "thread_id", "run_id", "seq"}
        assert accepted["thread_id"] == thread_id and accepted["run_id"] == run_id
        assert accepted["seq"] == 1 and EVENT_ID.match(accepted["event_id"])
        # "The events are stored before the answer is sent"
        stored = await all_events(http, server, user, thread_id)
        assert [e["event_id"] for e in stored] == [accepted["event_id"]]
        assert stored[0]["data"] == {}  # "data: a JSON object (default {})"
        # "and delivered to subscribers like any other"
        assert await events_until(ws, 1) == stored
    run = await http.get(f"/v1/runs/{run_id}", headers=server.auth(user))
    assert run.status_code == 200 and run.json()["run_id"] == run_id


async def test_ingest_legacy_run_id_is_canonicalised_and_kept(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user, thread_id=unique("user_42_run"))
    legacy = f"run_{thread_id}_{RAND8}"
    async with server.ws(user) as ws:
        await subscribe(ws, thread_id)
        first = (await ingest(http, server, {"run_id": legacy, "type": "agent_started"})).json()
        second = (
            await ingest(
                http,
                server,
                {"events": [{"run_id": legacy, "type": "agent_message", "data": {"text": "hi"}}]},
            )
        ).json()
        wire = await events_until(ws, 2)
    canonical = first["accepted"][0]["run_id"]
    # "run_id is always the canonical form on the wire ... the event keeps the original
    # under data.legacy_run_id"
    assert canonical_re(thread_id).match(canonical) and canonical.endswith(f"_{RAND8}")
    assert second["accepted"][0]["run_id"] == canonical
    assert [e["run_id"] for e in wire] == [canonical, canonical]
    assert [e["data"]["legacy_run_id"] for e in wire] == [legacy, legacy]
    assert wire[1]["data"]["text"] == "hi"
    assert await all_events(http, server, user, thread_id) == wire
    runs = await http.get(f"/v1/threads/{thread_id}/runs", headers=server.auth(user))
    assert [r["run_id"] for r in runs.json()["runs"]] == [canonical]
    # "GET /v1/runs/{run_id}: any enabled run ID format is accepted"; "run_id always canonical"
    for name in (legacy, canonical):
        run = await http.get(f"/v1/runs/{name}", headers=server.auth(user))
        assert run.status_code == 200 and run.json()["run_id"] == canonical


async def test_ingest_uuid_run_learns_its_thread_from_the_first_event(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    run = str(uuid.uuid4())
    # "A run ID whose thread cannot be found (a bare UUID the store has not seen, with no
    # thread_id): 404, code unknown_run."
    answer = await http.post(
        "/v1/events", json={"run_id": run, "type": "agent_message"}, headers=server.service_auth()
    )
    problem(answer, 404, "unknown_run")
    # "A first event that names thread_id teaches the store the run's thread"
    taught = await ingest(
        http, server, {"run_id": run, "type": "agent_started", "thread_id": thread_id}
    )
    later = await ingest(http, server, {"run_id": run, "type": "agent_message"})
    a, b = taught.json()["accepted"][0], later.json()["accepted"][0]
    assert a["thread_id"] == b["thread_id"] == thread_id
    assert a["run_id"] == b["run_id"] and canonical_re(thread_id).match(a["run_id"])
    events = await all_events(http, server, user, thread_id)
    assert [e["data"].get("legacy_run_id") for e in events] == [run, run]
    got = await http.get(f"/v1/runs/{run}", headers=server.auth(user))
    assert got.status_code == 200 and got.json()["run_id"] == a["run_id"]


async def test_ingest_thread_mismatch_and_missing_thread(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    other = await new_thread(http, server, user)
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    service = server.service_auth()
    answer = await http.post(
        "/v1/events",
        json={"run_id": run_id, "type": "agent_message", "thread_id": other},
        headers=service,
    )
    problem(answer, 409, "thread_mismatch")
    agreeing = await ingest(
        http, server, {"run_id": run_id, "type": "agent_message", "thread_id": thread_id}
    )
    assert agreeing.json()["accepted"][0]["thread_id"] == thread_id
    # "The thread must exist (404 otherwise ...)"
    for rid in (
        f"thread_{unique('gone')}_run_1764000000000_{RAND8}",
        f"run_{unique('gone')}_{RAND8}",
    ):
        answer = await http.post(
            "/v1/events", json={"run_id": rid, "type": "agent_message"}, headers=service
        )
        problem(answer, 404, "not_found")


async def test_ingest_idempotency_key_single_and_batch(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    single = {"run_id": run_id, "type": "agent_message", "idempotency_key": "w-7:1"}
    first = (await ingest(http, server, single)).json()
    retry = (await ingest(http, server, single)).json()
    assert retry == first
    batch = {
        "events": [{"run_id": run_id, "type": "agent_message", "data": {"i": i}} for i in range(3)],
        "idempotency_key": "w-7:2",
    }
    first_batch = (await ingest(http, server, batch)).json()
    assert [a["seq"] for a in first_batch["accepted"]] == [2, 3, 4]
    assert (await ingest(http, server, batch)).json() == first_batch
    assert len(await all_events(http, server, user, thread_id)) == 4
    # "the same key for the same thread": on another thread the key is new
    other = await new_thread(http, server, user)
    other_run = f"thread_{other}_run_1764000000000_{RAND8}"
    elsewhere = (await ingest(http, server, {**single, "run_id": other_run})).json()
    assert elsewhere["accepted"][0]["thread_id"] == other
    assert elsewhere["accepted"][0]["seq"] == 1
    # the key is a member of the top-level object: the stored event does not carry it
    stored = await all_events(http, server, user, thread_id)
    assert all("idempotency_key" not in e["data"] for e in stored)
    # "up to 128 characters"
    ok = {**single, "idempotency_key": "k" * 128}
    await ingest(http, server, ok)
    too_long = {**single, "idempotency_key": "k" * 129}
    answer = await http.post("/v1/events", json=too_long, headers=server.service_auth())
    problem(answer, 422)


async def test_ingest_batch_sizes_and_atomicity(server: Server, http: httpx.AsyncClient) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    service = server.service_auth()

    def events(n: int) -> list[dict[str, Any]]:
        return [{"run_id": run_id, "type": "agent_message"} for _ in range(n)]

    problem(await http.post("/v1/events", json={"events": []}, headers=service), 422)
    problem(await http.post("/v1/events", json={"events": events(501)}, headers=service), 422)
    answer = await ingest(http, server, {"events": events(500)})
    accepted = answer.json()["accepted"]
    assert [a["seq"] for a in accepted] == list(range(1, 501))  # "in the request's order"
    # "A batch is stored atomically ... the error's problem object has a member index"
    bad = events(3)
    bad[2]["type"] = "Bad Type"
    body = problem(await http.post("/v1/events", json={"events": bad}, headers=service), 422)
    assert body["code"] == "invalid_event" and body["index"] == 2
    bad = events(3)
    bad[1]["data"] = [1]
    body = problem(await http.post("/v1/events", json={"events": bad}, headers=service), 422)
    assert body["code"] == "invalid_event" and body["index"] == 1
    head = (await http.get(f"/v1/threads/{thread_id}", headers=server.auth(user))).json()
    assert head["head_seq"] == 500


@pytest.mark.parametrize(
    "event",
    [
        {"type": ""},
        {"type": "A"},
        {"type": "a b"},
        {"type": "café"},
        {"type": "x" * 65},
        {"type": 5},
        {"type": None},
        {"type": "ok", "data": [1]},
        {"type": "ok", "data": "text"},
        {"type": "ok", "data": 5},
    ],
)
async def test_ingest_bad_type_or_data_is_422_invalid_event(
    server: Server, http: httpx.AsyncClient, event: dict[str, Any]
) -> None:
    thread_id = await new_thread(http, server, unique())
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    answer = await http.post(
        "/v1/events", json={"run_id": run_id, **event}, headers=server.service_auth()
    )
    body = problem(answer, 422, "invalid_event")
    assert body.get("index") == 0


async def test_ingest_type_grammar_edges_and_run_id_errors(
    server: Server, http: httpx.AsyncClient
) -> None:
    user = unique()
    thread_id = await new_thread(http, server, user)
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    for good in ("a.b:c-d_9", "x" * 64, "0"):
        await ingest(http, server, {"run_id": run_id, "type": good})
    service = server.service_auth()
    for rid, code in (("bad!", "bad_charset"), ("x" * 257, "too_long"), ("nope", "unknown_format")):
        answer = await http.post(
            "/v1/events", json={"run_id": rid, "type": "agent_message"}, headers=service
        )
        problem(answer, 400, code)
    problem(await http.post("/v1/events", json={"type": "agent_message"}, headers=service), 422)


async def test_ingest_over_1_mib_is_413_too_large(server: Server, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http, server, unique())
    run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
    body = {"run_id": run_id, "type": "agent_message", "data": {"x": "y" * (1024 * 1024)}}
    answer = await http.post("/v1/events", json=body, headers=server.service_auth())
    problem(answer, 413, "too_large")


# == operations ============================================================================


async def test_metrics_health_ready_openapi(server: Server, http: httpx.AsyncClient) -> None:
    # produce an ID parse error and a legacy parse so both counters have samples
    await http.get("/v1/runs/hello", headers=server.auth(unique()))
    await http.get(f"/v1/runs/run_x_{RAND8}", headers=server.auth(unique()))
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert re.search(r'^threadwire_id_parse_total\{format="legacy_run"\} \d', text, re.M), text
    assert re.search(
        r'^threadwire_id_parse_errors_total\{code="unknown_format"\} \d', text, re.M
    ), text
    assert "# TYPE threadwire_id_parse_total counter" in text
    health = await http.get("/healthz")
    assert health.status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/v1/threads",
        "/v1/threads/{thread_id}",
        "/v1/threads/{thread_id}/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/cancel",
        "/v1/threads/{thread_id}/events",
        "/v1/threads/{thread_id}/stream",
        "/v1/events",
    ):
        assert path in paths, path


async def test_default_store_is_sqlite_in_cwd_and_demo_token(
    server: Server, http: httpx.AsyncClient
) -> None:
    # spec 5: "SQLite file ./threadwire.db (embedded, created on first start)"
    assert (server.cwd / "threadwire.db").is_file()
    claims = jwt.decode(server.demo_token, server.secret, algorithms=["HS256"])
    assert claims["sub"] == "demo"
    answer = await http.get("/v1/threads", headers={"Authorization": f"Bearer {server.demo_token}"})
    assert answer.status_code == 200


async def test_unknown_path_and_method_are_problems(
    server: Server, http: httpx.AsyncClient
) -> None:
    problem(await http.get("/v1/nothing", headers=server.auth(unique())), 404)
    problem(await http.delete("/v1/threads", headers=server.auth(unique())), 405)


# == 5. CLI: tokens and the secret file ====================================================


async def run_cli(cwd: Path, *args: str, secret: str | None = SECRET) -> str:
    env = clean_env() if secret is None else clean_env(THREADWIRE_JWT_SECRET=secret)
    proc = await asyncio.create_subprocess_exec(
        *threadwire(*args),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def one_line(out: str) -> str:
    # spec 5: "threadwire token prints the token alone on one line"
    assert out.endswith("\n") and out.count("\n") == 1, repr(out)
    token = out.strip()
    assert token and " " not in token and token.count(".") == 2
    return token


async def test_token_cli_user_ttl_and_service(
    server: Server, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    outs = await asyncio.gather(
        run_cli(tmp_path, "token", "alice"),
        run_cli(tmp_path, "token", "alice", "--ttl", "60"),
        run_cli(tmp_path, "token", "--service", "worker-7"),
    )
    user, short, service = (one_line(out) for out in outs)
    claims = jwt.decode(user, SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(user)["alg"] == "HS256"
    assert claims["sub"] == "alice" and "events:write" not in str(claims.get("scope", ""))
    # "threadwire token issues 24 h by default, --ttl SECONDS to change"
    assert claims["exp"] - time.time() == pytest.approx(24 * 3600, abs=120)
    assert jwt.decode(short, SECRET, algorithms=["HS256"])["exp"] - time.time() == (
        pytest.approx(60, abs=30)
    )
    # "service tokens: the same, with claim scope containing events:write"
    service_claims = jwt.decode(service, SECRET, algorithms=["HS256"])
    assert service_claims["sub"] == "worker-7"
    scope = service_claims["scope"]
    assert "events:write" in (scope.split() if isinstance(scope, str) else scope)
    assert not (tmp_path / ".threadwire-secret").exists()  # the variable was set
    # and the server takes them for what they are
    answer = await http.post("/v1/threads", headers={"Authorization": f"Bearer {user}"})
    assert answer.status_code == 201
    run_id = f"thread_{answer.json()['thread_id']}_run_1764000000000_{RAND8}"
    answer = await http.post(
        "/v1/events",
        json={"run_id": run_id, "type": "agent_message"},
        headers={"Authorization": f"Bearer {service}"},
    )
    assert answer.status_code == 202, answer.text
    problem(await http.get("/v1/threads", headers={"Authorization": f"Bearer {service}"}), 403)


async def test_token_without_a_secret_creates_the_secret_file(tmp_path: Path) -> None:
    # spec 5: "when unset, a random secret is created once in ./.threadwire-secret, mode
    # 0600, and both serve and token use it" (serve first: see the `tuned` tests)
    out = await run_cli(tmp_path, "token", "erin", secret=None)
    path = tmp_path / ".threadwire-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32
    assert jwt.decode(one_line(out), secret, algorithms=["HS256"])["sub"] == "erin"
    assert os.listdir(tmp_path) == [".threadwire-secret"]


AGENTS_MODULE: Final = """
from typing import Any


async def echo(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    await ctx.message(str(input.get("text", "")))
    return {"echo": input.get("text")}


async def flaky(ctx: Any, input: dict[str, Any]) -> None:
    async with ctx.tool("fetch", {"url": "x"}):
        raise RuntimeError("boom")
"""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`serve` with options other than the defaults: no THREADWIRE_JWT_SECRET (so the
    secret file), user agents from `--agent`, a short `--run-timeout`, a small
    `--ws-queue-size` and `--max-frame-bytes`, the off-by-default legacy_run_ts format
    (for `ambiguous`) and a fast SSE keep-alive (THREADWIRE_SSE_KEEPALIVE)."""
    cwd = tmp_path_factory.mktemp("tuned")
    (cwd / "e2e_agents.py").write_text(AGENTS_MODULE)
    running = start_server(
        cwd,
        "--id-formats",
        "canonical,legacy_run,legacy_run_ts,uuid",
        "--agent",
        "e2e_agents:echo",
        "--agent",
        "e2e_agents:flaky",
        "--run-timeout",
        "1",
        "--ws-queue-size",
        "8",
        "--max-frame-bytes",
        "2048",
        secret=None,
        THREADWIRE_SSE_KEEPALIVE="0.2",
    )
    try:
        yield running
    finally:
        running.stop()


async def test_secret_file_is_created_0600_and_shared_with_token(tuned: Server) -> None:
    path = tuned.cwd / ".threadwire-secret"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = one_line(await run_cli(tuned.cwd, "token", "dave", secret=None))
    async with tuned.http() as http:
        answer = await http.get("/v1/threads", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        answer = await http.get(
            "/v1/threads", headers={"Authorization": f"Bearer {tuned.demo_token}"}
        )
        assert answer.status_code == 200
    assert path.read_text().strip() == tuned.secret


async def test_sse_keepalive_comment(tuned: Server) -> None:
    # "A comment line keeps the connection alive every 15 s." (interval set to 0.2 s)
    user = unique()
    async with tuned.http() as http:
        thread_id = await new_thread(http, tuned, user)
        async with http.stream(
            "GET", f"/v1/threads/{thread_id}/stream", headers=tuned.auth(user)
        ) as answer:
            comments = []
            async for line in answer.aiter_lines():
                if line.startswith(":"):
                    comments.append(line)
                if len(comments) == 3:
                    break
    assert all(c.startswith(":") for c in comments)


async def test_ambiguous_run_id_is_400_ambiguous(tuned: Server) -> None:
    # with legacy_run_ts enabled, run_abc_12345_7f3a9c01 reads as thread abc_12345 or abc
    async with tuned.http() as http:
        for method, path in (("GET", "/v1/runs/{}"), ("POST", "/v1/runs/{}/cancel")):
            answer = await http.request(
                method, path.format(f"run_abc_12345_{RAND8}"), headers=tuned.auth(unique())
            )
            problem(answer, 400, "ambiguous")


async def run_to_end(
    server: Server, user: str, agent: str, input: dict[str, Any]
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Create a thread, run `agent` on it while subscribed; (thread, events, run body)."""
    async with server.http() as http:
        thread_id = await new_thread(http, server, user)
        async with server.ws(user) as ws:
            await subscribe(ws, thread_id)
            answer = await http.post(
                f"/v1/threads/{thread_id}/runs",
                json={"agent": agent, "input": input},
                headers=server.auth(user),
            )
            assert answer.status_code == 202, answer.text
            events = await events_until(ws, terminal=True)
        run = await http.get(f"/v1/runs/{answer.json()['run_id']}", headers=server.auth(user))
    return thread_id, events, run.json()


async def test_user_agent_from_the_agent_option(tuned: Server) -> None:
    # spec 5: "threadwire serve --agent module:callable (repeatable)"
    _, events, run = await run_to_end(tuned, unique(), "echo", {"text": "hello"})
    types = [e["type"] for e in events]
    assert types == ["run_queued", "agent_started", "agent_message", "agent_completed"]
    assert events[2]["data"]["text"] == "hello"
    assert run["status"] == "completed" and run["result"] == {"echo": "hello"}


async def test_a_failing_tool_emits_tool_completed_with_error(tuned: Server) -> None:
    # spec 1: "A tool call that fails emits tool_completed with "error"."
    _, events, run = await run_to_end(tuned, unique(), "flaky", {})
    types = [e["type"] for e in events]
    assert types == [
        "run_queued",
        "agent_started",
        "tool_executing",
        "tool_completed",
        "agent_error",
    ]
    assert "error" in events[3]["data"] and "result" not in events[3]["data"]
    assert run["status"] == "failed" and isinstance(run["error"], dict)


async def test_run_timeout_ends_the_run_with_agent_error_timeout(tuned: Server) -> None:
    # spec 5: "--run-timeout SECONDS (default 600) ends a run with agent_error, code timeout"
    _, events, run = await run_to_end(tuned, unique(), "demo", SLOW)
    assert events[-1]["type"] == "agent_error"
    data = events[-1]["data"]
    assert data.get("code") == "timeout" or data.get("error", {}).get("code") == "timeout", data
    assert run["status"] == "failed" and run["error"]["code"] == "timeout"


async def test_max_frame_bytes_option(tuned: Server) -> None:
    async with tuned.ws(unique()) as ws:
        await ws.send("x" * 2048)
        assert (await recv(ws))["code"] == "bad_request"
        await ws.send("x" * 2049)
        code, _ = await close_code(ws)
    assert code == 1009


async def lagging_closes(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    found = re.findall(r"^threadwire_lagging_closes_total\{[^}]*ws[^}]*\} ([0-9.e+]+)", text, re.M)
    return sum(float(v) for v in found)


async def test_a_lagging_connection_is_closed_4008_alone_and_resumes(tuned: Server) -> None:
    # spec 2.5 / 3: "its bounded queue overflowing closes only its connection (code 4008,
    # "lagging"); it resumes from the store" (--ws-queue-size 8 here)
    user = unique()
    async with tuned.http() as http:
        thread_id = await new_thread(http, tuned, user)
        run_id = f"thread_{thread_id}_run_1764000000000_{RAND8}"
        blob = "z" * 60000
        # batches no larger than the queue, and the well-behaved client reads each one
        # before the next is sent: only the one that reads nothing can overflow
        batch = {"events": [{"run_id": run_id, "type": "chunk", "data": {"b": blob}}] * 4}
        before = await lagging_closes(http)
        async with tuned.ws(user, max_queue=1) as slow, tuned.ws(user) as fast:
            await subscribe(slow, thread_id)
            await subscribe(fast, thread_id)
            fast_seqs: list[int] = []
            for _ in range(150):  # about 36 MB; a few MB fill the socket buffers
                answer = await ingest(http, tuned, batch)
                head = answer.json()["accepted"][-1]["seq"]
                fast_seqs += [e["seq"] for e in await events_until(fast, head)]
                if await lagging_closes(http) > before:
                    break
            else:
                pytest.fail("the unread connection was never closed")
            code, frames = await close_code(slow)
            assert code == 4008
            processed = [json.loads(f)["event"]["seq"] for f in frames]
            assert processed == list(range(1, len(processed) + 1))
            assert fast_seqs == list(range(1, head + 1))  # the other one saw everything
            await quiet(fast)
        last = processed[-1] if processed else 0
        async with tuned.ws(user) as again:
            await subscribe(again, thread_id, after_seq=last)
            rest = await events_until(again, head)
        assert [e["seq"] for e in rest] == list(range(last + 1, head + 1))


# == 3. Shutdown ===========================================================================


async def test_sigterm_closes_websockets_1001_ends_sse_exits_0_and_restart_keeps_seq(
    tmp_path: Path,
) -> None:
    node = start_server(tmp_path, "--shutdown-grace", "1")
    try:
        user = unique()
        async with node.http() as http:
            thread_id = await new_thread(http, node, user)
            run_id = await start_run(http, node, user, thread_id, SLOW)
            async with node.ws(user) as ws:
                await subscribe(ws, thread_id, after_seq=0)
                await events_until(ws, 3)  # run_queued, agent_started, agent_thinking
                async with http.stream(
                    "GET", f"/v1/threads/{thread_id}/stream", headers=node.auth(user)
                ) as stream:
                    lines = stream.aiter_lines()
                    assert (await anext(lines)).startswith(":")
                    node.proc.send_signal(signal.SIGTERM)
                    code, _ = await close_code(ws)
                    assert code == 1001
                    async for _ in lines:
                        pass  # the stream ends
        assert await asyncio.to_thread(node.proc.wait, 30) == 0
    finally:
        node.stop()
    # "finishes or cancels runs within --shutdown-grace seconds": the run ended with one
    # terminal event, and seq stays gap-free "across restarts"
    again = start_server(tmp_path)
    try:
        async with again.http() as http:
            events = await all_events(http, again, user, thread_id)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["type"] in TERMINAL
            assert sum(e["type"] in TERMINAL for e in events) == 1
            run = (await http.get(f"/v1/runs/{run_id}", headers=again.auth(user))).json()
            assert run["status"] in {"cancelled", "failed"}
            _, more = await finished_run(http, again, user, thread_id, FAST)
            assert more[0]["seq"] == events[-1]["seq"] + 1
    finally:
        assert again.stop() == 0
