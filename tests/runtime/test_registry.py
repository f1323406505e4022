"""The agent registry: decorator, `module:callable`, entry points, built-ins."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from threadwire.config import Settings
from threadwire.runtime import (
    AgentRegistry,
    InvalidInput,
    RunContext,
    UnknownAgent,
    default_registry,
    registry_from_settings,
)
from threadwire.runtime import registry as registry_module
from threadwire.runtime.agents.chat import ChatAgent

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT, assert_run_life


async def _noop(ctx: RunContext, input: dict[str, Any]) -> None:
    return None


def test_decorator_registers_under_the_given_or_the_function_name() -> None:
    registry = AgentRegistry()

    @registry.agent("named")
    async def first(ctx: RunContext, input: dict[str, Any]) -> None:
        return None

    @registry.agent()
    async def second(ctx: RunContext, input: dict[str, Any]) -> None:
        return None

    assert registry.names() == ["named", "second"]
    assert registry.get("named").fn is first
    assert "second" in registry and len(registry) == 2


def test_get_of_an_unknown_name_raises_unknown_agent() -> None:
    with pytest.raises(UnknownAgent) as raised:
        AgentRegistry().get("ghost")
    assert raised.value.code == "unknown_agent" and "'ghost'" in str(raised.value)


def test_register_refuses_what_is_not_an_agent() -> None:
    registry = AgentRegistry()
    with pytest.raises(TypeError):
        registry.register("x", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        registry.register("", _noop)


def test_validator_comes_from_register_or_the_validate_input_attribute() -> None:
    registry = AgentRegistry()

    def only_a(input: dict[str, Any]) -> dict[str, Any]:
        if set(input) != {"a"}:
            raise ValueError("exactly the key 'a'")
        return input

    spec = registry.register("v", _noop, validate=only_a)
    assert spec.check_input({"a": 1}) == {"a": 1}
    with pytest.raises(InvalidInput) as bad:
        spec.check_input({"b": 1})
    assert "exactly the key 'a'" in str(bad.value)
    loaded = registry.load("examples.my_agent:echo")
    assert loaded.validate is not None
    assert loaded.check_input({"text": "hi"}) == {"text": "hi", "shout": False}


def test_load_module_callable_names_it_after_the_callable_or_as_asked() -> None:
    registry = AgentRegistry()
    assert registry.load("examples.my_agent:echo").name == "echo"
    assert registry.load("shout=examples.my_agent:echo").name == "shout"
    assert registry.load("examples.my_agent:echo", name="other").name == "other"
    demo = registry.load("threadwire.runtime.agents.demo:demo")  # an instance: no __name__
    assert demo.name == "demo" and demo.validate is not None
    for bad in ("examples.my_agent", "examples.my_agent:", ":echo"):
        with pytest.raises(ValueError):
            registry.load(bad)
    with pytest.raises(ValueError, match="no attribute"):
        registry.load("examples.my_agent:missing")
    with pytest.raises(ModuleNotFoundError):
        registry.load("no_such_module_xyz:agent")


def test_entry_points_register_by_name_and_a_broken_plugin_is_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    group = registry_module.ENTRY_POINT_GROUP
    found = [
        EntryPoint("plugged", "examples.my_agent:echo", group),
        EntryPoint("broken", "no_such_module_xyz:agent", group),
    ]

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        assert group == registry_module.ENTRY_POINT_GROUP
        return found

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    registry = AgentRegistry()
    assert registry.load_entry_points() == ["plugged"]
    assert registry.names() == ["plugged"]
    assert "broken" in caplog.text


def test_default_registry_has_demo_and_chat_configured_by_settings() -> None:
    assert default_registry().names() == ["chat", "demo"]
    settings = Settings(chat_base_url="http://127.0.0.1:9/v1", chat_model="m1")
    chat = default_registry(settings).get("chat").fn
    assert isinstance(chat, ChatAgent)
    assert chat.base_url == "http://127.0.0.1:9/v1" and chat.model == "m1"


def test_registry_from_settings_loads_agent_flags() -> None:
    registry = registry_from_settings(Settings(agents=("examples.my_agent:echo",)))
    assert {"demo", "chat", "echo"} <= set(registry.names())


async def test_a_users_agent_from_another_module_runs_by_module_callable(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    registry.load("examples.my_agent:echo")
    supervisor = make_supervisor()
    run = await supervisor.submit(
        user_id="u", thread_id=thread_id, agent="echo", input={"text": "hi there", "shout": True}
    )
    final = await supervisor.wait(run.run_id, timeout=WAIT)

    assert final.status == "completed"
    assert final.result == {"echo": "HI THERE", "words": 2}
    events = coordinator.of_run(run.run_id)
    assert_run_life(events)
    assert [e.type for e in events] == [
        "run_queued",
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_message",
        "my_agent.note",
        "agent_completed",
    ]
    with pytest.raises(InvalidInput):
        await supervisor.submit(user_id="u", thread_id=thread_id, agent="echo", input={})


def test_load_finds_modules_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tw_cwd_agent.py").write_text(
        "async def helper(ctx, input):\n    return 'from cwd'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "tw_cwd_agent", raising=False)
    spec = AgentRegistry().load("tw_cwd_agent:helper")
    assert spec.name == "helper"
    monkeypatch.delitem(sys.modules, "tw_cwd_agent")
