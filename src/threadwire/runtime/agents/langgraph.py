"""A compiled LangGraph graph as a threadwire agent: `--agent module:graph` just works.

The graph runs with LangGraph itself (`graph.astream`, modes updates + messages +
custom + values); what it streams becomes threadwire events, so the run is
persisted, resumable and isolated like any other:

- an AI message chunk (or a whole AI message) with text: `agent_message`
  `{"text", "message_id", "node"}`;
- a node's update: `graph_update` `{"node", "update"}` (the update as JSON);
- a tool call on an AI message of an update: `tool_executing`
  `{"tool", "call", "call_id", "args", "message_id"}`;
- a tool message of an update: `tool_completed`
  `{"tool", "call", "call_id", "result" or "error", "duration_ms"}`;
- a `get_stream_writer()` write: `custom` (a dict as it is, else `{"value": ...}`).

The run's result is the graph's final state as JSON. Nothing here imports langgraph:
the graph is duck-typed, so langgraph stays an optional extra (`threadwire[langgraph]`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from threadwire.runtime.errors import InvalidInput

if TYPE_CHECKING:
    from threadwire.runtime.context import RunContext

STREAM_MODES: Final = ("updates", "messages", "custom", "values")
_AI_TYPES: Final = frozenset({"ai", "AIMessageChunk"})
_DEPTH: Final = 64


def is_compiled_graph(obj: object) -> bool:
    """True for a compiled LangGraph graph (a Pregel), judged by its shape alone."""
    return (
        not callable(obj)
        and callable(getattr(obj, "astream", None))
        and callable(getattr(obj, "get_graph", None))
        and isinstance(getattr(obj, "channels", None), Mapping)
    )


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as JSON data: messages and other pydantic models dumped, dataclasses as
    dicts, containers recursed, anything else as its `str`."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if depth > _DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v, depth + 1) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_jsonable(dump(), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return to_jsonable(fields, depth + 1)
    return str(value)


def _get(message: Any, key: str) -> Any:
    return message.get(key) if isinstance(message, Mapping) else getattr(message, key, None)


def _kind(message: Any) -> str | None:
    kind = _get(message, "type") or _get(message, "role")
    return kind if isinstance(kind, str) else None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [_get(b, "text") for b in content if _get(b, "type") in ("text", None)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def _messages(update: Any) -> list[Any]:
    found = _get(update, "messages") if isinstance(update, Mapping) else None
    if found is None:
        return []
    return list(found) if isinstance(found, list | tuple) else [found]


class _Mapper:
    """Turns one run's LangGraph stream items into threadwire events."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.values: Any = None
        self._calls: dict[str, tuple[int, str, float]] = {}
        self._count = 0

    async def handle(self, mode: str, chunk: Any) -> None:
        if mode == "messages":
            await self._message(chunk)
        elif mode == "updates":
            for node, update in (chunk or {}).items():
                await self._update(str(node), update)
        elif mode == "custom":
            data = to_jsonable(chunk)
            await self.ctx.emit("custom", data if isinstance(data, dict) else {"value": data})
        elif mode == "values":
            self.values = chunk

    async def _message(self, chunk: Any) -> None:
        message, metadata = chunk if isinstance(chunk, tuple) else (chunk, {})
        if _kind(message) not in _AI_TYPES:
            return  # tool and input messages reach the events through the updates
        text = _text(_get(message, "content"))
        if text:
            data: dict[str, Any] = {"text": text, "message_id": _get(message, "id")}
            node = metadata.get("langgraph_node") if isinstance(metadata, Mapping) else None
            if isinstance(node, str):
                data["node"] = node
            await self.ctx.emit("agent_message", data)

    async def _update(self, node: str, update: Any) -> None:
        await self.ctx.emit("graph_update", {"node": node, "update": to_jsonable(update)})
        for message in _messages(update):
            kind = _kind(message)
            if kind in _AI_TYPES:
                for call in _get(message, "tool_calls") or ():
                    await self._tool_call(call, _get(message, "id"))
            elif kind == "tool":
                await self._tool_result(message)

    async def _tool_call(self, call: Any, message_id: Any) -> None:
        self._count += 1
        name = str(_get(call, "name"))
        call_id = _get(call, "id")
        key = str(call_id) if call_id is not None else f"#{self._count}"
        self._calls[key] = (self._count, name, time.monotonic())
        await self.ctx.emit(
            "tool_executing",
            {
                "tool": name,
                "call": self._count,
                "call_id": call_id,
                "args": to_jsonable(_get(call, "args") or {}),
                "message_id": message_id,
            },
        )

    async def _tool_result(self, message: Any) -> None:
        call_id = _get(message, "tool_call_id")
        index, name, started = self._calls.pop(
            str(call_id), (0, str(_get(message, "name")), time.monotonic())
        )
        data: dict[str, Any] = {
            "tool": name,
            "call": index,
            "call_id": call_id,
            "duration_ms": round((time.monotonic() - started) * 1000),
        }
        content = to_jsonable(_get(message, "content"))
        if _get(message, "status") == "error":
            data["error"] = content if isinstance(content, str) else str(content)
        else:
            data["result"] = content
        await self.ctx.emit("tool_completed", data)


class GraphAgent:
    """A compiled LangGraph graph, run by LangGraph, as a threadwire agent."""

    is_langgraph_graph: Final = True
    """How the LangGraph API tells a graph agent (its node updates are its own)."""

    def __init__(self, graph: Any) -> None:
        if not is_compiled_graph(graph):
            raise TypeError(f"not a compiled LangGraph graph: {graph!r}")
        self.graph = graph
        self.__name__ = str(getattr(graph, "name", "graph"))

    def validate_input(self, input: dict[str, Any]) -> dict[str, Any]:
        """The graph's input: `{"prompt": "..."}` becomes one user message when the graph
        keeps `messages` (and has no `prompt` of its own)."""
        channels = self.graph.channels
        prompt = input.get("prompt")
        if "messages" not in input and "messages" in channels and "prompt" not in channels:
            if not isinstance(prompt, str):
                raise InvalidInput("give 'messages' (a list) or 'prompt' (a string)")
            rest = {k: v for k, v in input.items() if k != "prompt"}
            return {**rest, "messages": [{"role": "user", "content": prompt}]}
        return input

    async def __call__(self, ctx: RunContext, input: dict[str, Any]) -> Any:
        """Stream the graph; the thread is its `thread_id` (a checkpointer keeps state)."""
        mapper = _Mapper(ctx)
        config = {
            "configurable": {"thread_id": ctx.thread_id},
            "metadata": {"threadwire_run_id": ctx.run_id, "threadwire_user": ctx.user_id},
        }
        async for mode, chunk in self.graph.astream(input, config, stream_mode=list(STREAM_MODES)):
            await mapper.handle(mode, chunk)
        return to_jsonable(mapper.values)
