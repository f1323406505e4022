"""runs.stream and runs.join_stream through the real langgraph-sdk client: parts, SSE
ids, resume with Last-Event-ID (and the SDK's own reconnect on `Location`), cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError
from tests.gateway.harness import Node, node_settings, serve_app
from tests.lg.helpers import (
    FAST,
    SLOW,
    collect,
    customs,
    run_events,
    seqs,
    stored_events,
    take,
    take_until,
)

from threadwire.ids import parse_run_id
from threadwire.lg.stream import RunStream

ALL_MODES = ["values", "updates", "messages", "messages-tuple", "custom"]


async def test_stream_sends_one_metadata_part_then_every_event_as_a_custom_part(
    node: Node, client: Any
) -> None:
    thread = await client.threads.create()
    created: list[dict[str, Any]] = []
    parts = await collect(
        client.runs.stream(
            thread["thread_id"],
            "demo",
            input=FAST,
            stream_mode="custom",
            on_run_created=created.append,
        )
    )
    first, rest = parts[0], parts[1:]
    assert first.event == "metadata" and set(first.data) == {"run_id", "attempt"}
    run_id = first.data["run_id"]
    assert first.data["attempt"] == 1 and parse_run_id(run_id).is_canonical
    assert created == [{"run_id": run_id, "thread_id": thread["thread_id"]}]  # Content-Location
    assert [p.event for p in rest] == ["custom"] * len(rest)
    events = run_events(await stored_events(node, "alice", thread["thread_id"]), run_id)
    assert customs(rest) == events  # every event, in seq order, as {"type", "data", "seq"}
    assert [p.id for p in rest] == [str(e["seq"]) for e in events]
    assert first.id == str(events[0]["seq"] - 1)  # the seq the run started after
    assert events[-1]["type"] == "agent_completed"
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "success"  # already final when the stream closed


async def test_metadata_id_is_the_seq_the_run_started_after_on_a_busy_thread(
    client: Any,
) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "demo", input=FAST)
    parts = await collect(
        client.runs.stream(thread["thread_id"], "demo", input=FAST, stream_mode="custom")
    )
    assert int(parts[0].id) == parts[1].data["seq"] - 1 > 0


@pytest.mark.parametrize("drop", ["close_iterator", "break_out", "close_http_client"])
async def test_dropping_mid_stream_and_joining_with_last_event_id_has_no_gap_or_duplicate(
    node: Node, drop: str
) -> None:
    first: Any = get_client(url=node.url + "/lg", api_key=node.token("alice"))
    thread = await first.threads.create()
    slow: dict[str, Any] = {"prompt": "tides", "steps": 12, "delay_ms": 20}
    stream = first.runs.stream(thread["thread_id"], "demo", input=slow, stream_mode="custom")
    before: list[Any] = []
    async for part in stream:
        before.append(part)
        if len(before) == 6:
            break  # "break_out" leaves the stream suspended, its connection open
    if drop == "close_iterator":
        await stream.aclose()
    elif drop == "close_http_client":
        await first.http.client.aclose()
    run_id = before[0].data["run_id"]
    async with get_client(url=node.url + "/lg", api_key=node.token("alice")) as second:
        after = await collect(
            second.runs.join_stream(thread["thread_id"], run_id, last_event_id=before[-1].id)
        )
        assert (await second.runs.get(thread["thread_id"], run_id))["status"] == "success"
    assert after, "the run went on after the drop"
    assert after[0].event == "custom"  # no second metadata part
    got = seqs(before) + seqs(after)
    events = run_events(await stored_events(node, "alice", thread["thread_id"]), run_id)
    assert got == [e["seq"] for e in events]  # stored then live: no gap, no duplicate
    assert customs(after)[-1]["type"] == "agent_completed"
    await stream.aclose()
    await first.aclose()


async def test_join_stream_of_a_finished_run_replays_after_last_event_id_and_closes(
    client: Any,
) -> None:
    thread = await client.threads.create()
    full = await collect(
        client.runs.stream(thread["thread_id"], "demo", input=FAST, stream_mode="custom")
    )
    run_id = full[0].data["run_id"]

    async def join(last_event_id: str) -> list[Any]:
        return await collect(
            client.runs.join_stream(
                thread["thread_id"], run_id, last_event_id=last_event_id, stream_mode="custom"
            )
        )

    assert await join(full[0].id) == full[1:]  # from the metadata part: every event
    assert await join(full[4].id) == full[5:]
    assert await join(full[-1].id) == []  # at the end: nothing, and it closes
    assert await join("-1") == full  # LangGraph's "from the start", metadata included


async def test_join_stream_without_stream_mode_sends_the_modes_the_run_was_streamed_with(
    client: Any,
) -> None:
    thread = await client.threads.create()
    full = await collect(
        client.runs.stream(thread["thread_id"], "demo", input=FAST, stream_mode="custom")
    )
    run_id = full[0].data["run_id"]
    again = await collect(client.runs.join_stream(thread["thread_id"], run_id, last_event_id="-1"))
    assert again == full


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 14, 20])
async def test_derived_modes_resume_exactly_where_the_uninterrupted_stream_was(
    client: Any, cut: int
) -> None:
    thread = await client.threads.create()
    full = await collect(
        client.runs.stream(thread["thread_id"], "demo", input=FAST, stream_mode=ALL_MODES)
    )
    assert {p.event for p in full} >= {
        "metadata",
        "custom",
        "values",
        "updates",
        "messages",
        "messages/partial",
        "messages/complete",
        "messages/metadata",
    }
    run_id = full[0].data["run_id"]
    # A client that saw the part at `cut` has seen every part carrying its id.
    last = full[cut].id
    expected = [p for p in full if int(p.id) > int(last)]
    rest = await collect(
        client.runs.join_stream(
            thread["thread_id"], run_id, last_event_id=last, stream_mode=ALL_MODES
        )
    )
    assert rest == expected


async def test_values_stream_ends_with_the_result_and_sends_no_other_mode(client: Any) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "demo", input=FAST))
    assert {p.event for p in parts} == {"metadata", "values"}  # the SDK's default mode
    final = parts[-1].data
    assert final["result"] == "Demo answer to: tides"
    kinds = [m["type"] for m in final["messages"]]
    assert kinds[0] == "human" and kinds[-1] == "ai" and "tool" in kinds


async def test_disconnecting_does_not_cancel_the_run(client: Any) -> None:
    thread = await client.threads.create()
    slow = {"prompt": "tides", "steps": 5, "delay_ms": 20}
    stream = client.runs.stream(thread["thread_id"], "demo", input=slow, stream_mode="custom")
    first = await take(stream, 2)
    await stream.aclose()
    result = await client.runs.join(thread["thread_id"], first[0].data["run_id"])
    assert result["result"] == "Demo answer to: tides"


async def test_on_disconnect_cancel_cancels_the_run_when_the_client_goes(client: Any) -> None:
    thread = await client.threads.create()
    stream = client.runs.stream(
        thread["thread_id"], "demo", input=SLOW, stream_mode="custom", on_disconnect="cancel"
    )
    parts = await take_until(stream, "tool_executing")
    await stream.aclose()
    run_id = parts[0].data["run_id"]
    await client.runs.join(thread["thread_id"], run_id)
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "interrupted"


async def test_the_sdk_resumes_through_location_when_the_server_ends_a_stream_early(
    node: Node, client: Any
) -> None:
    thread = await client.threads.create()
    slow = {"prompt": "tides", "steps": 10, "delay_ms": 20}
    stream = client.runs.stream(thread["thread_id"], "demo", input=slow, stream_mode="custom")
    parts = await take_until(stream, "tool_completed")
    for open_stream in list(node.gateway.clients):
        assert isinstance(open_stream, RunStream)
        open_stream.close()  # as when it lags behind: it ends without a terminal part
    parts += await collect(stream)  # the SDK asks the run, then GETs Location + Last-Event-ID
    run_id = parts[0].data["run_id"]
    events = run_events(await stored_events(node, "alice", thread["thread_id"]), run_id)
    assert customs(parts[1:]) == events
    assert [p.event for p in parts].count("metadata") == 1


async def test_cancelling_a_running_run_closes_its_streams_without_a_completion_part(
    client: Any,
) -> None:
    thread = await client.threads.create()
    stream = client.runs.stream(thread["thread_id"], "demo", input=SLOW, stream_mode="custom")
    parts = await take_until(stream, "tool_executing")
    run_id = parts[0].data["run_id"]
    joined = client.runs.join_stream(
        thread["thread_id"], run_id, last_event_id=parts[-1].id, stream_mode="custom"
    )
    assert await client.runs.cancel(thread["thread_id"], run_id) is None  # 202, no body
    async with asyncio.timeout(5):
        parts += await collect(stream)
        rest = await collect(joined)
    types = [data["type"] for data in customs(parts)]
    assert types[-1] == "run_cancelled" and "agent_completed" not in types
    assert customs(rest)[-1]["type"] == "run_cancelled"
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "interrupted"
    with pytest.raises(ConflictError):
        await client.runs.cancel(thread["thread_id"], run_id)  # again: 409, nothing changes
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "interrupted"


async def test_cancel_with_wait_returns_once_the_run_is_interrupted(client: Any) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "demo", input=SLOW)
    assert run["status"] == "pending"
    watch = client.runs.join_stream(
        thread["thread_id"], run["run_id"], last_event_id="-1", stream_mode="custom"
    )
    await take_until(watch, "agent_thinking")
    values = await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"
    assert values["result"] is None and values["messages"][0]["content"] == "tides"
    assert customs(await collect(watch))[-1]["type"] == "run_cancelled"
    with pytest.raises(httpx.HTTPStatusError) as refused:  # wait=True: the SDK's plain error
        await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert refused.value.response.status_code == 409


async def test_cancelling_a_finished_run_is_refused_and_changes_nothing(client: Any) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "demo", input=FAST)
    await client.runs.join(thread["thread_id"], run["run_id"])
    with pytest.raises(ConflictError):
        await client.runs.cancel(thread["thread_id"], run["run_id"])
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_a_pending_run_can_be_cancelled_before_it_starts() -> None:
    async with serve_app(node_settings(max_runs_per_user=1)) as node:
        async with get_client(url=node.url + "/lg", api_key=node.token("alice")) as sdk:
            tid = (await sdk.threads.create())["thread_id"]
            running = await sdk.runs.create(tid, "demo", input=SLOW)
            waiting = await sdk.runs.create(tid, "demo", input=FAST)
            assert (await sdk.runs.get(tid, waiting["run_id"]))["status"] == "pending"
            assert (await sdk.threads.get(tid))["status"] == "busy"
            await sdk.runs.cancel(tid, waiting["run_id"], wait=True)
            assert (await sdk.runs.get(tid, waiting["run_id"]))["status"] == "interrupted"
            joined = sdk.runs.join_stream(
                tid, waiting["run_id"], last_event_id="-1", stream_mode="custom"
            )
            parts = await collect(joined)
            assert [d["type"] for d in customs(parts)] == ["run_queued", "run_cancelled"]
            await sdk.runs.cancel(tid, running["run_id"], wait=True)


async def test_join_stream_with_cancel_on_disconnect_cancels_when_the_client_goes(
    client: Any,
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "demo", input=SLOW)
    joined = client.runs.join_stream(
        thread["thread_id"],
        run["run_id"],
        last_event_id="-1",
        stream_mode="custom",
        cancel_on_disconnect=True,
    )
    await take_until(joined, "tool_executing")
    await joined.aclose()
    await client.runs.join(thread["thread_id"], run["run_id"])
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"


async def test_shutdown_ends_open_run_streams() -> None:
    async with serve_app(node_settings(database_url="memory://")) as node:
        headers = {"x-api-key": node.token("alice")}
        async with httpx.AsyncClient(base_url=node.url + "/lg", headers=headers) as http:
            tid = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "demo", "input": SLOW, "stream_mode": "custom"}
            async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as answer:
                lines = answer.aiter_lines()
                assert (await anext(lines)) == "event: metadata"
                stopping = asyncio.create_task(node.stop())
                async with asyncio.timeout(10):
                    rest = [line async for line in lines]
                    await stopping
    assert "event: custom" in rest  # the run's events so far, then the stream ended
