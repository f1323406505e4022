"""Real LangGraph graphs (on fake chat models) as threadwire agents: loaded by
`module:graph` and by entry point, run by LangGraph, their message chunks, tool
calls, updates and custom events stored as threadwire events and streamed to the
langgraph-sdk client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from langgraph_sdk import get_client
from tests.gateway.harness import Node, node_settings, serve_app
from tests.lg.graphs import ANSWER, CALL_ID
from tests.lg.helpers import collect, customs, run_events, stored_events, take, take_until

from threadwire.runtime import ENTRY_POINT_GROUP, AgentRegistry
from threadwire.runtime import registry as registry_module
from threadwire.runtime.agents.langgraph import GraphAgent, to_jsonable

AGENTS = (
    "react=tests.lg.graphs:graph",
    "stuck=tests.lg.graphs:stuck",
    "broken=tests.lg.graphs:broken",
)
QUESTION = {"messages": [{"role": "user", "content": "meaning?"}]}


@pytest.fixture
async def graph_node() -> AsyncIterator[Node]:
    """A node serving the test graphs as `--agent name=module:graph` would."""
    async with serve_app(node_settings(agents=AGENTS)) as running:
        yield running


@pytest.fixture
async def sdk(graph_node: Node) -> AsyncIterator[Any]:
    """The SDK client of `alice` on that node."""
    async with get_client(url=graph_node.url + "/lg", api_key=graph_node.token("alice")) as c:
        yield c


def test_module_graph_and_entry_points_register_a_compiled_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = AgentRegistry()
    assert isinstance(registry.load("tests.lg.graphs:graph").fn, GraphAgent)
    assert registry.names() == ["graph"]
    assert isinstance(registry.load("react=tests.lg.graphs:graph").fn, GraphAgent)
    point = EntryPoint(name="plugin", value="tests.lg.graphs:graph", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [point])
    assert registry.load_entry_points() == ["plugin"]
    assert isinstance(registry.get("plugin").fn, GraphAgent)
    with pytest.raises(TypeError):
        registry.register("nothing", object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        GraphAgent(object())


async def test_a_graph_run_streams_its_chunks_tool_calls_updates_and_custom_events(
    graph_node: Node, sdk: Any
) -> None:
    assert "react" in {a["graph_id"] for a in await sdk.assistants.search()}
    thread = await sdk.threads.create()
    modes = ["custom", "updates", "messages-tuple", "values"]
    parts = await collect(
        sdk.runs.stream(thread["thread_id"], "react", input=QUESTION, stream_mode=modes)
    )
    run_id = parts[0].data["run_id"]
    events = customs(parts)
    assert events == run_events(
        await stored_events(graph_node, "alice", thread["thread_id"]), run_id
    )
    types = [e["type"] for e in events]
    assert types[:2] == ["run_queued", "agent_started"] and types[-1] == "agent_completed"

    call = next(e["data"] for e in events if e["type"] == "tool_executing")
    done = next(e["data"] for e in events if e["type"] == "tool_completed")
    assert call["tool"] == "lookup" and call["call_id"] == CALL_ID
    assert call["args"] == {"query": "meaning"}
    assert done["call_id"] == CALL_ID and done["result"] == "found: meaning"
    assert types.index("tool_executing") < types.index("tool_completed")
    chunks = [e["data"] for e in events if e["type"] == "agent_message"]
    assert len(chunks) > 3 and "".join(c["text"] for c in chunks) == ANSWER
    assert {c["node"] for c in chunks} == {"agent"}
    assert [e["data"] for e in events if e["type"] == "custom"] == [
        {"stage": "thinking", "turn": 1},
        {"stage": "thinking", "turn": 3},
    ]
    updates = [e["data"]["node"] for e in events if e["type"] == "graph_update"]
    assert updates == ["agent", "tools", "agent"]

    # The graph's own updates are the updates parts, as LangGraph would send them.
    assert [list(p.data) for p in parts if p.event == "updates"] == [
        ["agent"],
        ["tools"],
        ["agent"],
    ]
    tool_update = next(p.data for p in parts if p.event == "updates" and "tools" in p.data)
    assert tool_update["tools"]["messages"][0]["content"] == "found: meaning"
    streamed = [p.data[0] for p in parts if p.event == "messages"]
    text = "".join(m["content"] for m in streamed if m["type"] == "AIMessageChunk")
    assert text == ANSWER and any(m["type"] == "tool" for m in streamed)
    final = [p.data for p in parts if p.event == "values"][-1]
    kinds = [(m["type"], m["content"]) for m in final["messages"]]
    assert kinds == [("human", "meaning?"), ("ai", ""), ("tool", "found: meaning"), ("ai", ANSWER)]
    assert final["messages"][1]["tool_calls"][0]["id"] == CALL_ID
    assert final["result"]["messages"][-1]["content"] == ANSWER  # the graph's final state


async def test_runs_wait_on_a_graph_answers_its_final_state(sdk: Any) -> None:
    thread = await sdk.threads.create()
    values = await sdk.runs.wait(thread["thread_id"], "react", input={"prompt": "meaning?"})
    assert values["messages"][0]["content"] == "meaning?"  # a prompt becomes a user message
    state = values["result"]
    assert [m["type"] for m in state["messages"]] == ["human", "ai", "tool", "ai"]
    assert state["messages"][-1]["content"] == ANSWER


async def test_a_graph_run_resumes_after_a_drop_with_no_gap_or_duplicate(
    graph_node: Node, sdk: Any
) -> None:
    thread = await sdk.threads.create()
    modes = ["custom", "updates", "messages-tuple", "values"]
    stream = sdk.runs.stream(thread["thread_id"], "react", input=QUESTION, stream_mode=modes)
    before = await take(stream, 8)
    await stream.aclose()
    run_id = before[0].data["run_id"]
    await sdk.runs.join(thread["thread_id"], run_id)
    after = await collect(
        sdk.runs.join_stream(
            thread["thread_id"], run_id, last_event_id=before[-1].id, stream_mode=modes
        )
    )
    full = await collect(
        sdk.runs.join_stream(thread["thread_id"], run_id, last_event_id="-1", stream_mode=modes)
    )
    assert before == full[: len(before)]
    assert after == [p for p in full if int(p.id) > int(before[-1].id)]


async def test_cancelling_a_graph_run_stops_it(sdk: Any) -> None:
    thread = await sdk.threads.create()
    stream = sdk.runs.stream(thread["thread_id"], "stuck", input=QUESTION, stream_mode="custom")
    parts = await take_until(stream, "custom")  # the node is waiting now
    run_id = parts[0].data["run_id"]
    await sdk.runs.cancel(thread["thread_id"], run_id)
    async with asyncio.timeout(5):
        parts += await collect(stream)
    assert customs(parts)[-1]["type"] == "run_cancelled"
    assert (await sdk.runs.get(thread["thread_id"], run_id))["status"] == "interrupted"


async def test_a_failing_graph_ends_its_run_in_error(sdk: Any) -> None:
    thread = await sdk.threads.create()
    values = await sdk.runs.wait(thread["thread_id"], "broken", input=QUESTION, raise_error=False)
    assert values["__error__"]["error"] == "agent_exception"
    runs = await sdk.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["error"]


def test_to_jsonable_turns_messages_and_oddities_into_json() -> None:
    from langchain_core.messages import AIMessage

    message = AIMessage("hi", id="m1")
    assert to_jsonable({"m": message})["m"]["content"] == "hi"
    assert to_jsonable((1, {2}, float("nan"), None)) == [1, [2], "nan", None]
    assert to_jsonable(object()).startswith("<object object")
