"""The `chat` agent against a real local server speaking the chat-completions stream."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from threadwire.runtime import AgentRegistry, InvalidInput
from threadwire.runtime.agents.chat import ChatAgent, ChatTool
from threadwire.store.base import RunRecord

from .conftest import RecordingCoordinator, SupervisorFactory
from .fake_openai import API_KEY, FakeOpenAI, serve_fake_openai
from .helpers import WAIT, assert_run_life


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with serve_fake_openai() as server:
        yield server


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def run_chat(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    thread_id: str,
    agent: ChatAgent,
    input: dict[str, Any],
) -> RunRecord:
    registry.register("chat", agent)
    supervisor = make_supervisor()
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="chat", input=input)
    return await supervisor.wait(run.run_id, timeout=WAIT)


def chat(fake: FakeOpenAI, model: str, **options: Any) -> ChatAgent:
    return ChatAgent(base_url=fake.base_url, api_key=API_KEY, model=model, max_retries=0, **options)


async def test_tokens_stream_as_agent_message_events(
    fake: FakeOpenAI,
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    final = await run_chat(
        make_supervisor, registry, thread_id, chat(fake, "text"), {"prompt": "say hello"}
    )
    assert final.status == "completed" and final.result == "Hello world"
    events = coordinator.of_run(final.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == [
        "run_queued",
        "agent_started",
        "agent_message",
        "agent_message",
        "agent_message",
        "agent_completed",
    ]
    assert [e.data["text"] for e in events[2:5]] == ["Hel", "lo", " world"]
    assert fake.requests[0]["messages"] == [{"role": "user", "content": "say hello"}]
    assert fake.requests[0]["stream"] is True and "tools" not in fake.requests[0]
    assert fake.auth == [f"Bearer {API_KEY}"]


async def test_streamed_tool_calls_run_python_tools_and_feed_the_model(
    fake: FakeOpenAI,
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    agent = chat(fake, "tools", tools=[add], system_prompt="be brief")
    final = await run_chat(make_supervisor, registry, thread_id, agent, {"prompt": "2+3?"})

    assert final.status == "completed" and final.result == "The sum is 5"
    events = coordinator.of_run(final.run_id)
    assert_run_life(events)
    types = [e.type for e in events]
    assert types[:4] == ["run_queued", "agent_started", "tool_executing", "tool_completed"]
    assert types[4:] == ["agent_message", "agent_message", "agent_completed"]
    assert events[2].data == {
        "tool": "add",
        "call": 1,
        "call_id": "call_1",
        "args": {"a": 2, "b": 3},
    }
    assert events[3].data["result"] == 5 and "error" not in events[3].data

    spec = fake.requests[0]["tools"][0]
    assert spec["function"]["name"] == "add"
    assert spec["function"]["description"] == "Add two integers."
    assert spec["function"]["parameters"]["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "integer"},
    }
    second = fake.requests[1]["messages"]
    assert second[0] == {"role": "system", "content": "be brief"}
    assert second[2]["role"] == "assistant" and second[2]["tool_calls"][0]["id"] == "call_1"
    assert second[3] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}


async def test_a_tool_the_agent_does_not_have_is_reported_to_the_model(
    fake: FakeOpenAI,
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    agent = chat(fake, "unknown-tool", tools=[ChatTool.from_function(add)])
    final = await run_chat(make_supervisor, registry, thread_id, agent, {"prompt": "?"})
    assert final.status == "completed"
    completed = [e for e in coordinator.of_run(final.run_id) if e.type == "tool_completed"]
    assert completed[0].data["error"] == "unknown tool 'nope'"
    assert '"error"' in fake.requests[1]["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("model", "emitted_before", "message"),
    [
        # HTTP 500 before any token
        ("error", [], "the chat endpoint answered HTTP 500"),
        # the connection drops mid-stream
        ("cut", ["agent_message"], "the connection to the chat endpoint failed mid-answer"),
        # the stream ends cleanly, but without a finish reason or [DONE]
        (
            "truncated",
            ["agent_message"],
            "the chat endpoint ended the stream before the answer was complete",
        ),
    ],
)
async def test_endpoint_failures_end_the_run_with_a_safe_agent_error(
    fake: FakeOpenAI,
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
    model: str,
    emitted_before: list[str],
    message: str,
) -> None:
    final = await run_chat(
        make_supervisor, registry, thread_id, chat(fake, model), {"prompt": "hi"}
    )

    assert final.status == "failed" and final.error is not None
    events = coordinator.of_run(final.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == [
        "run_queued",
        "agent_started",
        *emitted_before,
        "agent_error",
    ]
    error = events[-1].data
    assert error == final.error and error["code"] == "upstream_error"
    for leak in (API_KEY, "127.0.0.1", fake.base_url, "internal failure", "Traceback"):
        assert leak not in error["message"]
    assert error["message"] == message


async def test_an_unreachable_endpoint_is_a_safe_agent_error(
    make_supervisor: SupervisorFactory, registry: AgentRegistry, thread_id: str
) -> None:
    async with serve_fake_openai() as gone:
        base_url = gone.base_url  # a port nobody listens on once the block ends
    agent = ChatAgent(base_url=base_url, api_key=API_KEY, model="text", max_retries=0)
    final = await run_chat(make_supervisor, registry, thread_id, agent, {"prompt": "hi"})
    assert final.error == {
        "code": "upstream_error",
        "message": "the chat endpoint could not be reached",
    }


def test_input_is_a_prompt_or_a_list_of_messages() -> None:
    agent = ChatAgent()
    assert agent.validate_input({"prompt": "hi"}) == {
        "messages": [{"role": "user", "content": "hi"}]
    }
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u", "x": 1}]
    assert agent.validate_input({"messages": messages}) == {
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    }
    bad: dict[str, Any]
    for bad in (
        {},
        {"prompt": ""},
        {"prompt": 3},
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user", "content": None}]},
    ):
        with pytest.raises(InvalidInput):
            agent.validate_input(bad)


def test_tools_get_a_schema_from_their_signature() -> None:
    async def search(query: str, limit: int = 5, exact: bool = False) -> list[str]:
        """Search the index.

        Longer text that is not part of the description."""
        return []

    agent = ChatAgent()

    @agent.tool
    def weather(city: str, days: float) -> dict[str, Any]:
        return {}

    agent.add_tool(search)
    specs = {name: tool.spec()["function"] for name, tool in agent.tools.items()}
    assert specs["search"] == {
        "name": "search",
        "description": "Search the index.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer"},
                "exact": {"type": "boolean"},
            },
            "required": ["query"],
        },
    }
    assert specs["weather"]["parameters"]["required"] == ["city", "days"]
    assert "description" not in specs["weather"]


async def test_without_the_openai_package_the_run_fails_with_how_to_fix_it(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # what an absent package looks like
    final = await run_chat(make_supervisor, registry, thread_id, ChatAgent(), {"prompt": "hi"})
    assert final.error is not None and final.error["code"] == "not_configured"
    assert "threadwire[chat]" in final.error["message"]
