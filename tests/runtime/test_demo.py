"""The built-in `demo` agent, exactly as protocol spec 5 defines it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from threadwire.events import Event
from threadwire.runtime import AgentRegistry, InvalidInput
from threadwire.runtime.agents.demo import demo, demo_result, validate_demo_input

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT, assert_run_life

VALID: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # defaults filled in
    ({"prompt": "hi"}, {"prompt": "hi", "steps": 3, "delay_ms": 50}),
    # bounds are inclusive
    (
        {"prompt": "", "steps": 0, "delay_ms": 0},
        {"prompt": "", "steps": 0, "delay_ms": 0},
    ),
    (
        {"prompt": "x", "steps": 1000, "delay_ms": 60000},
        {"prompt": "x", "steps": 1000, "delay_ms": 60000},
    ),
    # unknown keys are ignored, not passed on
    ({"prompt": "x", "extra": 1}, {"prompt": "x", "steps": 3, "delay_ms": 50}),
]

INVALID: list[dict[str, Any]] = [
    {},  # prompt missing
    {"prompt": None},  # prompt null
    {"prompt": 7},  # prompt not a string
    {"prompt": "x", "steps": -1},  # below range
    {"prompt": "x", "steps": 1001},  # above range
    {"prompt": "x", "steps": 2.0},  # a float, even a whole one
    {"prompt": "x", "steps": "3"},  # a numeric string
    {"prompt": "x", "steps": True},  # a bool is not an int here
    {"prompt": "x", "steps": None},  # null
    {"prompt": "x", "delay_ms": -1},  # below range
    {"prompt": "x", "delay_ms": 60001},  # above range
    {"prompt": "x", "delay_ms": 1.5},  # not an integer
]


@pytest.mark.parametrize(("given", "expected"), VALID)
def test_valid_input_is_normalised(given: dict[str, Any], expected: dict[str, Any]) -> None:
    assert validate_demo_input(given) == expected


@pytest.mark.parametrize("given", INVALID)
def test_invalid_input_is_refused(given: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_demo_input(given)
    assert raised.value.code == "invalid_input"


def test_result_is_a_non_empty_string_derived_from_the_prompt() -> None:
    assert demo_result("hello") == demo_result("hello") != demo_result("other")
    assert "hello" in demo_result("hello")
    assert demo_result("")


async def _run(supervisor: Any, thread_id: str, input: dict[str, Any]) -> Any:
    run = await supervisor.submit(user_id="u", thread_id=thread_id, agent="demo", input=input)
    return await supervisor.wait(run.run_id, timeout=WAIT)


async def test_zero_steps_gives_one_message_and_the_result(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    registry.register("demo", demo)
    final = await _run(make_supervisor(), thread_id, {"prompt": "p", "steps": 0})
    assert coordinator.types(final.run_id) == [
        "run_queued",
        "agent_started",
        "agent_message",
        "agent_completed",
    ]
    assert set(coordinator.of_run(final.run_id)[2].data) == {"text"}
    assert final.result == demo_result("p")


async def test_runs_are_deterministic_apart_from_timing(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    registry.register("demo", demo)
    supervisor = make_supervisor()
    input = {"prompt": "a long prompt " * 20, "steps": 4, "delay_ms": 0}
    first = await _run(supervisor, thread_id, input)
    second = await _run(supervisor, thread_id, input)

    def shape(run_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (e.type, {k: v for k, v in e.data.items() if k != "duration_ms"})
            for e in coordinator.of_run(run_id)
        ]

    assert shape(first.run_id) == shape(second.run_id)
    assert len(shape(first.run_id)) == 2 + 3 * 4 + 2
    for run in (first, second):
        assert_run_life(coordinator.of_run(run.run_id))
        pairs = [e for e in coordinator.of_run(run.run_id) if e.type.startswith("tool_")]
        assert [e.type for e in pairs] == ["tool_executing", "tool_completed"] * 4
        assert all(e.data["tool"] == "search" for e in pairs)


async def test_cancel_interrupts_a_long_delay_promptly(
    make_supervisor: SupervisorFactory,
    registry: AgentRegistry,
    coordinator: RecordingCoordinator,
    thread_id: str,
) -> None:
    registry.register("demo", demo)
    began = asyncio.Event()

    def listener(event: Event) -> None:
        if event.type == "tool_executing":
            began.set()

    await coordinator.bus.subscribe(thread_id, listener)
    supervisor = make_supervisor()
    run = await supervisor.submit(
        user_id="u",
        thread_id=thread_id,
        agent="demo",
        input={"prompt": "slow", "steps": 1000, "delay_ms": 60000},
    )
    await asyncio.wait_for(began.wait(), WAIT)
    t0 = time.monotonic()
    final = await supervisor.cancel(run.run_id)
    assert time.monotonic() - t0 < 5  # the 60 s delay did not have to run out
    assert final.status == "cancelled"
    assert coordinator.types(run.run_id) == [
        "run_queued",
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "run_cancelled",
    ]
    assert coordinator.of_run(run.run_id)[4].data["error"] == "cancelled"
