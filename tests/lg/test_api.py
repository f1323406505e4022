"""Assistants, threads and runs through the real langgraph-sdk client: bodies, statuses,
IDs, auth and every refusal a 4xx (never a 500), with nothing left behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from tests.gateway.harness import Node, node_settings, serve_app
from tests.lg.helpers import FAST, SLOW, collect

from threadwire.ids import new_run_id, parse_run_id
from threadwire.lg import runs as lg_runs
from threadwire.lg.schemas import NAMESPACE_GRAPH
from threadwire.runtime import AgentError, RunContext, default_registry


@pytest.fixture
async def bob(node: Node) -> AsyncIterator[Any]:
    """The SDK client of another user."""
    async with get_client(url=node.url + "/lg", api_key=node.token("bob")) as sdk:
        yield sdk


async def test_every_agent_is_an_assistant_under_a_stable_uuid(client: Any) -> None:
    found = await client.assistants.search()
    by_name = {a["graph_id"]: a for a in found}
    assert {"demo", "chat"} <= set(by_name)
    demo = by_name["demo"]
    assert demo["assistant_id"] == str(uuid.uuid5(NAMESPACE_GRAPH, "demo"))  # LangGraph's
    assert demo["name"] == "demo" and demo["metadata"] == {"created_by": "system"}
    assert await client.assistants.search(graph_id="demo") == [demo]
    assert await client.assistants.get(demo["assistant_id"]) == demo
    assert await client.assistants.get("demo") == demo
    page = await client.assistants.search(limit=1, response_format="object")
    assert len(page["assistants"]) == 1 and page["next"] == "1"
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))


async def test_threads_create_keeps_metadata_and_get_returns_the_thread(client: Any) -> None:
    thread = await client.threads.create(metadata={"topic": "tides", "n": 1})
    assert thread["metadata"] == {"topic": "tides", "n": 1} and thread["status"] == "idle"
    assert uuid.UUID(thread["thread_id"]).version == 7  # a threadwire thread ID: UUIDv7 hex
    got = await client.threads.get(thread["thread_id"])
    assert got["thread_id"] == thread["thread_id"] and got["metadata"] == thread["metadata"]
    assert [t["thread_id"] for t in await client.threads.search()] == [thread["thread_id"]]


async def test_a_uuid_thread_id_is_kept_and_found_by_either_spelling(client: Any) -> None:
    chosen = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=chosen)
    assert thread["thread_id"] == chosen
    assert (await client.threads.get(uuid.UUID(chosen).hex))["thread_id"] == chosen
    mine = await client.threads.create()
    dashed = str(uuid.UUID(mine["thread_id"]))
    assert (await client.threads.get(dashed))["thread_id"] == mine["thread_id"]
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=chosen)
    same = await client.threads.create(thread_id=chosen, if_exists="do_nothing")
    assert same["thread_id"] == chosen


async def test_unknown_and_foreign_threads_are_404(client: Any, bob: Any) -> None:
    thread = await client.threads.create()
    for ident in (thread["thread_id"], "no-such-thread"):
        with pytest.raises(NotFoundError):
            await bob.threads.get(ident)
        with pytest.raises(NotFoundError):
            await bob.runs.create(ident, "demo", input=FAST)
        with pytest.raises(NotFoundError):
            await bob.runs.list(ident)
    with pytest.raises(ConflictError):  # taken, whoever owns it
        await bob.threads.create(thread_id=thread["thread_id"], if_exists="do_nothing")


async def test_a_missing_or_bad_api_key_is_401_streams_included(node: Node) -> None:
    base = node.url + "/lg"
    owner = get_client(url=base, api_key=node.token("alice"))
    thread = await owner.threads.create()
    keys = [None, "not-a-token", node.token("alice", ttl=-10)]
    for key in keys:
        async with get_client(url=base, api_key=key) as sdk:
            with pytest.raises(AuthenticationError):
                await sdk.assistants.search()
            with pytest.raises(AuthenticationError):
                await sdk.threads.get(thread["thread_id"])
            with pytest.raises(AuthenticationError):
                await collect(sdk.runs.stream(thread["thread_id"], "demo", input=FAST))
            with pytest.raises(AuthenticationError):
                await collect(sdk.runs.join_stream(thread["thread_id"], "x", last_event_id="0"))
    async with get_client(url=base, api_key=node.service_token()) as sdk:
        with pytest.raises(PermissionDeniedError):
            await sdk.threads.create()
    assert await owner.runs.list(thread["thread_id"]) == []
    await owner.aclose()


async def test_the_token_is_checked_before_the_body_is_read(node: Node) -> None:
    async with httpx.AsyncClient(base_url=node.url + "/lg") as http:
        for body in (b"{not json", b'{"no": "assistant"}'):
            answer = await http.post("/threads/t1/runs/stream", content=body)
            assert answer.status_code == 401, answer.text
        keyed = {"x-api-key": node.token("alice"), "content-type": "application/json"}
        answer = await http.post("/threads/t1/runs/stream", content=b"{not json", headers=keyed)
        assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"


async def test_an_unknown_assistant_is_refused_everywhere_and_leaves_no_run(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    for ghost in ("ghost", str(uuid.uuid4())):
        with pytest.raises(NotFoundError):
            await client.runs.create(tid, ghost, input=FAST)
        with pytest.raises(NotFoundError):
            await collect(client.runs.stream(tid, ghost, input=FAST))
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.runs.wait(tid, ghost, input=FAST)
        assert refused.value.response.status_code == 404
    assert await client.runs.list(tid) == []


async def test_runs_create_on_a_missing_thread_is_404_unless_asked_to_create_it(
    client: Any,
) -> None:
    with pytest.raises(NotFoundError):
        await client.runs.create("missing-thread", "demo", input=FAST)
    run = await client.runs.create("missing-thread", "demo", input=FAST, if_not_exists="create")
    assert run["thread_id"] == "missing-thread"
    assert (await client.threads.get("missing-thread"))["thread_id"] == "missing-thread"


async def test_bad_unknown_and_foreign_run_ids_are_4xx_never_5xx(client: Any) -> None:
    thread = await client.threads.create()
    other = await client.threads.create()
    foreign = await client.runs.create(other["thread_id"], "demo", input=FAST)
    tid = thread["thread_id"]
    refusals = {
        "bad charset!": UnprocessableEntityError,  # outside the ID grammar
        "a/b": NotFoundError,  # a slash: no such route
        "x" * 300: UnprocessableEntityError,
        new_run_id(tid): NotFoundError,  # parses, unknown
        str(uuid.uuid4()): NotFoundError,  # a bare UUID the store has not seen
        foreign["run_id"]: NotFoundError,  # a run of another thread
    }
    for run_id, error in refusals.items():
        with pytest.raises(error):
            await client.runs.get(tid, run_id)
        with pytest.raises(error):
            await client.runs.cancel(tid, run_id)
        with pytest.raises(error):
            await collect(client.runs.join_stream(tid, run_id, last_event_id="0"))
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get("bad thread id")


async def test_unsupported_modes_and_options_are_422_before_anything_starts(
    client: Any,
) -> None:
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError, match="stream_mode 'debug'"):
        await collect(client.runs.stream(tid, "demo", input=FAST, stream_mode=["custom", "debug"]))
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(tid, "demo", input=FAST, stream_mode="events")
    options: list[dict[str, Any]] = [
        {"interrupt_before": ["tools"]},
        {"multitask_strategy": "enqueue"},
        {"webhook": "https://example.com/hook"},
        {"command": {"resume": "yes"}},
        {"after_seconds": 5},
    ]
    for option in options:
        with pytest.raises(UnprocessableEntityError):
            await client.runs.create(tid, "demo", input=FAST, **option)
    with pytest.raises(UnprocessableEntityError, match="without a thread"):
        await client.runs.create(None, "demo", input=FAST)
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(tid, "demo", input={"prompt": "x", "steps": -1})
    assert await client.runs.list(tid) == []
    run = await client.runs.create(tid, "demo", input=FAST)
    with pytest.raises(UnprocessableEntityError):
        await collect(client.runs.join_stream(tid, run["run_id"], stream_mode="debug"))
    with pytest.raises(UnprocessableEntityError):
        await collect(client.runs.join_stream(tid, run["run_id"], last_event_id="soon"))


async def test_runs_create_answers_a_pending_run_with_its_canonical_id(client: Any) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "demo", input=FAST)
    assert run["status"] == "pending" and run["thread_id"] == thread["thread_id"]
    assert parse_run_id(run["run_id"]).is_canonical
    assert run["assistant_id"] == str(uuid.uuid5(NAMESPACE_GRAPH, "demo"))
    values = await client.runs.join(thread["thread_id"], run["run_id"])
    assert values["result"] == "Demo answer to: tides"
    done = await client.runs.get(thread["thread_id"], run["run_id"])
    assert done["status"] == "success" and done["run_id"] == run["run_id"]


async def test_runs_wait_returns_the_final_values_with_the_result(client: Any) -> None:
    thread = await client.threads.create()
    values = await client.runs.wait(
        thread["thread_id"], "demo", input={"messages": [{"role": "user", "content": "moons"}]}
    )
    assert values["result"] == "Demo answer to: moons"  # a chat front end's input works
    assert values["messages"][0]["type"] == "human" and values["messages"][0]["content"] == "moons"
    assert values["messages"][-1]["type"] == "ai"


async def test_runs_list_is_newest_first_and_pages_by_offset(client: Any) -> None:
    tid = (await client.threads.create())["thread_id"]
    made = [(await client.runs.create(tid, "demo", input=FAST))["run_id"] for _ in range(3)]
    for run_id in made:
        await client.runs.join(tid, run_id)
    listed = await client.runs.list(tid)
    assert [r["run_id"] for r in listed] == made[::-1]
    assert [r["run_id"] for r in await client.runs.list(tid, limit=1, offset=1)] == [made[1]]
    assert len(await client.runs.list(tid, status="success")) == 3
    assert await client.runs.list(tid, status="pending") == []


async def test_a_failing_run_is_error_and_wait_raises_its_message() -> None:
    registry = default_registry()

    @registry.agent("broken")
    async def broken(ctx: RunContext, input: dict[str, Any]) -> None:
        raise AgentError("the well ran dry", code="dry")

    async with serve_app(node_settings(), registry=registry) as node:
        async with get_client(url=node.url + "/lg", api_key=node.token("alice")) as sdk:
            tid = (await sdk.threads.create())["thread_id"]
            with pytest.raises(Exception, match="dry: the well ran dry"):
                await sdk.runs.wait(tid, "broken", input={})
            values = await sdk.runs.wait(tid, "broken", input={}, raise_error=False)
            assert values == {"__error__": {"error": "dry", "message": "the well ran dry"}}
            parts = await collect(sdk.runs.stream(tid, "broken", input={}, stream_mode="custom"))
            assert parts[-1].event == "error" and parts[-1].data["message"] == "the well ran dry"
            assert [r["status"] for r in await sdk.runs.list(tid)] == ["error"] * 3
            assert (await sdk.threads.get(tid))["status"] == "error"


async def test_lg_routes_are_counted_under_their_full_path(node: Node, client: Any) -> None:
    await client.assistants.search()
    async with httpx.AsyncClient(base_url=node.url) as http:
        metrics = (await http.get("/metrics")).text
    assert 'route="/lg/assistants/search"' in metrics


async def test_thread_values_state_and_history_follow_its_runs(client: Any) -> None:
    tid = (await client.threads.create())["thread_id"]
    assert (await client.threads.get(tid))["values"] is None
    empty = await client.threads.get_state(tid)
    assert empty["values"] == {} and empty["parent_checkpoint"] is None
    first = await client.runs.wait(tid, "demo", input={**FAST, "prompt": "one"})
    second = await client.runs.wait(tid, "demo", input={**FAST, "prompt": "two"})
    runs = await client.runs.list(tid)
    assert (await client.threads.get(tid))["values"] == second
    state = await client.threads.get_state(tid)
    assert state["values"] == second
    assert state["checkpoint"]["checkpoint_id"] == runs[0]["run_id"]
    assert state["parent_checkpoint"]["checkpoint_id"] == runs[1]["run_id"]
    history = await client.threads.get_history(tid)
    assert [h["values"] for h in history] == [second, first]


async def test_runs_wait_is_kept_alive_with_blank_lines_the_sdk_skips(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lg_runs, "WAIT_KEEPALIVE", 0.01)
    tid = (await client.threads.create())["thread_id"]
    slow = {"prompt": "tides", "steps": 3, "delay_ms": 40}
    assert (await client.runs.wait(tid, "demo", input=slow))["result"] == "Demo answer to: tides"


async def test_more_refusals_are_4xx(client: Any) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "demo", input=FAST)
    await client.runs.join(tid, run["run_id"])
    with pytest.raises(UnprocessableEntityError):
        await client.runs.list(tid, status="paused")
    with pytest.raises(UnprocessableEntityError, match="beyond"):
        await collect(client.runs.join_stream(tid, run["run_id"], last_event_id="999999"))
    with pytest.raises(UnprocessableEntityError, match="rollback"):
        await client.runs.cancel(tid, run["run_id"], action="rollback")
    with pytest.raises(UnprocessableEntityError, match="ttl"):
        await client.threads.create(ttl=5)


async def test_open_streams_per_user_are_limited() -> None:
    async with serve_app(node_settings(max_connections_per_user=1)) as node:
        async with get_client(url=node.url + "/lg", api_key=node.token("alice")) as sdk:
            tid = (await sdk.threads.create())["thread_id"]
            first = sdk.runs.stream(tid, "demo", input=SLOW, stream_mode="custom")
            started = await anext(first)
            with pytest.raises(RateLimitError):
                await collect(sdk.runs.stream(tid, "demo", input=FAST))
            await sdk.runs.cancel(tid, started.data["run_id"])
            await collect(first)
            assert len(await sdk.runs.list(tid)) == 1  # the refused stream started no run
