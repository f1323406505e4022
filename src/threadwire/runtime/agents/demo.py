"""The built-in `demo` agent (protocol spec 5): a deterministic run with tool calls, offline.

Input `{"prompt": str, "steps": int = 3 (0..1000), "delay_ms": int = 50 (0..60000)}`.
Events: per step `agent_thinking`, then a `tool_executing`/`tool_completed` pair (the
delay is the tool's latency), then one `agent_message`; the result is derived from
the prompt. The same input always gives the same events, apart from timing.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from threadwire.runtime.context import RunContext
from threadwire.runtime.errors import InvalidInput

MAX_STEPS: Final = 1000
MAX_DELAY_MS: Final = 60000
DEFAULT_STEPS: Final = 3
DEFAULT_DELAY_MS: Final = 50
TOOL_NAME: Final = "search"
_QUOTE_LIMIT: Final = 60


def validate_demo_input(input: dict[str, Any]) -> dict[str, Any]:
    """The demo's input with defaults filled in; raises InvalidInput naming the bad field.

    >>> validate_demo_input({"prompt": "hi"})
    {'prompt': 'hi', 'steps': 3, 'delay_ms': 50}
    """
    prompt = input.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput(f"'prompt' must be a string, got {_kind(prompt)}")
    steps = _bounded_int(input, "steps", DEFAULT_STEPS, MAX_STEPS)
    delay_ms = _bounded_int(input, "delay_ms", DEFAULT_DELAY_MS, MAX_DELAY_MS)
    return {"prompt": prompt, "steps": steps, "delay_ms": delay_ms}


def _bounded_int(input: dict[str, Any], key: str, default: int, high: int) -> int:
    value: object = input.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key!r} must be an integer from 0 to {high}, got {_kind(value)}")
    if not 0 <= value <= high:
        raise InvalidInput(f"{key!r} must be from 0 to {high}, got {value}")
    return value


def _kind(value: object) -> str:
    return "null" if value is None else value.__class__.__name__


def demo_result(prompt: str) -> str:
    """The demo's result for `prompt`: never empty, the same for the same prompt."""
    return f"Demo answer to: {prompt}" if prompt else "Demo answer to an empty prompt"


class DemoAgent:
    """The `demo` agent; an instance is registered as `demo`."""

    def validate_input(self, input: dict[str, Any]) -> dict[str, Any]:
        """See :func:`validate_demo_input`."""
        return validate_demo_input(input)

    async def __call__(self, ctx: RunContext, input: dict[str, Any]) -> str:
        """Think, call the fake tool and wait `delay_ms`, per step; then answer."""
        checked = validate_demo_input(input)
        prompt: str = checked["prompt"]
        steps: int = checked["steps"]
        delay = checked["delay_ms"] / 1000
        quoted = prompt if len(prompt) <= _QUOTE_LIMIT else prompt[:_QUOTE_LIMIT] + "..."
        for step in range(1, steps + 1):
            await ctx.thinking(f"Step {step} of {steps}: looking into {quoted!r}")
            async with ctx.tool(TOOL_NAME, {"query": quoted, "step": step}) as call:
                if delay:
                    await asyncio.sleep(delay)  # cancellation interrupts this at once
                call.result = f"Result {step} for {quoted!r}"
        await ctx.message(f"Here is what I found about {quoted!r} in {steps} steps.")
        return demo_result(prompt)


demo = DemoAgent()
"""The built-in `demo` agent."""
