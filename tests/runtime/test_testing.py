"""`threadwire.testing.AgentHarness`: what a user tests their own agent with."""

from __future__ import annotations

import asyncio
from typing import Any

from threadwire.runtime import RunContext, default_registry
from threadwire.testing import AgentHarness

from .helpers import WAIT, assert_run_life


async def greet(ctx: RunContext, input: dict[str, Any]) -> str:
    await ctx.thinking("choosing words")
    async with ctx.tool("lookup", {"name": input["name"]}) as call:
        call.result = "friend"
    await ctx.message(f"Hello, {input['name']}!")
    return "greeted"


async def test_the_docstring_example_works() -> None:
    async with AgentHarness(greet) as h:
        run = await h.run("greet", {"name": "Ada"})
        assert run.status == "completed" and run.result == "greeted"
        assert h.types(run.run_id) == [
            "run_queued",
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_message",
            "agent_completed",
        ]
        assert h.text(run.run_id) == "Hello, Ada!"


async def test_delivered_events_match_the_stored_ones_per_run() -> None:
    async with AgentHarness(default_registry()) as h:
        thread = await h.thread("my-thread", user_id="ada")
        first = await h.run("demo", {"prompt": "a", "delay_ms": 0}, thread_id=thread)
        second = await h.run(greet, {"name": "B"}, user_id="ada", thread_id=thread)
        assert_run_life(h.events(first.run_id))
        assert_run_life(h.events(second.run_id))
        assert h.events() == await h.stored_events(thread)
        assert second.thread_id == first.thread_id == "my-thread"


async def test_a_run_can_be_cancelled_through_the_harness() -> None:
    started = asyncio.Event()

    async def slow(ctx: RunContext, input: dict[str, Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    async with AgentHarness({"slow": slow}) as h:
        run = await h.submit("slow")
        await asyncio.wait_for(started.wait(), WAIT)
        assert (await h.cancel(run.run_id)).status == "cancelled"
        assert h.types(run.run_id) == ["run_queued", "agent_started", "run_cancelled"]


async def test_leaving_the_harness_ends_unfinished_runs() -> None:
    async def forever(ctx: RunContext, input: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    async with AgentHarness({"forever": forever}) as h:
        run = await h.submit("forever")
    assert h.types(run.run_id)[-1] == "run_cancelled"
