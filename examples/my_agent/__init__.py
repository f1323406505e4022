"""A tiny user agent, loaded by `threadwire serve --agent examples.my_agent:echo`.

It lives outside the threadwire package on purpose: it proves that an agent from any
importable module runs by `module:callable`.
"""

from __future__ import annotations

from typing import Any

from threadwire.runtime import InvalidInput, RunContext


def validate_input(input: dict[str, Any]) -> dict[str, Any]:
    """`{"text": str, "shout": bool = False}`."""
    text = input.get("text")
    if not isinstance(text, str):
        raise InvalidInput("'text' must be a string")
    shout = input.get("shout", False)
    if not isinstance(shout, bool):
        raise InvalidInput("'shout' must be true or false")
    return {"text": text, "shout": shout}


async def echo(ctx: RunContext, input: dict[str, Any]) -> dict[str, Any]:
    """Say the text back, after counting its words with a tool call."""
    await ctx.thinking("counting words")
    async with ctx.tool("count_words", {"text": input["text"]}) as call:
        call.result = len(input["text"].split())
    reply = input["text"].upper() if input["shout"] else input["text"]
    await ctx.message(reply)
    await ctx.emit("my_agent.note", {"words": call.result})
    return {"echo": reply, "words": call.result}


echo.validate_input = validate_input  # type: ignore[attr-defined]
