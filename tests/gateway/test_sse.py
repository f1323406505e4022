"""Server-Sent Events: `id`/`event`/`data` records, Last-Event-ID resume, keep-alive."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from tests.gateway.harness import Node, node_settings, serve_app
from tests.gateway.helpers import emit, make_thread


async def _records(answer: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse an event stream into records ({"comment": ...} or id/event/data)."""
    record: dict[str, Any] = {}
    async for line in answer.aiter_lines():
        if line == "":
            if record:
                yield record
            record = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            record[field] = value.removeprefix(" ")


async def _events(records: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async for record in records:
        if "comment" in record:
            continue
        data = json.loads(record["data"])
        assert record["id"] == str(data["seq"]) and record["event"] == data["type"]
        got.append(data)
        if len(got) == count:
            break
    return got


async def test_stream_sends_records_after_after_seq_then_live(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 3)
    url = "/v1/threads/t1/stream"
    async with http.stream("GET", url, params={"after_seq": 1}, headers=node.auth("alice")) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        records = _records(r)
        assert [e["seq"] for e in await _events(records, 2)] == [2, 3]
        await emit(node, "t1", 2)
        assert [e["seq"] for e in await _events(records, 2)] == [4, 5]


async def test_last_event_id_wins_over_after_seq(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 6)
    headers = {**node.auth("alice"), "Last-Event-ID": "4"}
    async with http.stream(
        "GET", "/v1/threads/t1/stream", params={"after_seq": 1}, headers=headers
    ) as r:
        assert [e["seq"] for e in await _events(_records(r), 2)] == [5, 6]


async def test_without_a_position_only_new_events_follow(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 3)
    async with http.stream("GET", "/v1/threads/t1/stream", headers=node.auth("alice")) as r:
        records = _records(r)
        first = await anext(records)
        assert first == {"comment": "subscribed head_seq=3"}
        await emit(node, "t1", 1)
        record = await anext(records)
        assert record["id"] == "4"


async def test_browsers_pass_the_token_as_access_token(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 1)
    params: dict[str, str | int] = {"after_seq": 0, "access_token": node.token("alice")}
    async with http.stream("GET", "/v1/threads/t1/stream", params=params) as r:
        assert [e["seq"] for e in await _events(_records(r), 1)] == [1]
    foreign = await http.get("/v1/threads/t1/stream", params={"access_token": node.token("bob")})
    assert foreign.status_code == 404


async def test_a_bad_last_event_id_is_invalid_request(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    headers = {**node.auth("alice"), "Last-Event-ID": "abc"}
    answer = await http.get("/v1/threads/t1/stream", headers=headers)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"


async def test_idle_streams_get_keep_alive_comments() -> None:
    async with serve_app(node_settings(sse_keepalive=0.05)) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            async with http.stream("GET", "/v1/threads/t1/stream", headers=node.auth("alice")) as r:
                records = _records(r)
                assert (await anext(records))["comment"].startswith("subscribed")
                assert await anext(records) == {"comment": "keep-alive"}


async def test_shutdown_ends_open_streams() -> None:
    async with serve_app(node_settings()) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            async with http.stream("GET", "/v1/threads/t1/stream", headers=node.auth("alice")) as r:
                records = _records(r)
                await anext(records)
                await node.stop()
                rest = [rec async for rec in records]
                assert all("comment" in rec for rec in rest)
