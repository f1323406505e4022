"""threadwire events as LangGraph stream parts: `custom` as the spec fixes it, and the
`values`, `updates` and `messages` modes derived from a run's events.

`RunView` folds one run's events, in seq order, into the chat a LangGraph client
expects: the input as human messages, `agent_message` chunks as one AI message,
`tool_executing` as tool calls on an AI message, `tool_completed` as tool messages,
and the result. Every derived part carries the seq of the event it came from, so a
stream resumed after seq N is primed with the run's events up to N and then sends
exactly what the uninterrupted stream would have sent after N. docs/langgraph.md
lists the rules; docs/decisions/0092 says why they are these.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Final

from threadwire.events import (
    AGENT_COMPLETED,
    AGENT_ERROR,
    AGENT_MESSAGE,
    AGENT_STARTED,
    TOOL_COMPLETED,
    TOOL_EXECUTING,
    Event,
    dumps,
)
from threadwire.store import RunRecord

VALUES: Final = "values"
UPDATES: Final = "updates"
MESSAGES: Final = "messages"
MESSAGES_TUPLE: Final = "messages-tuple"
CUSTOM: Final = "custom"

SUPPORTED_MODES: Final = (VALUES, UPDATES, MESSAGES, MESSAGES_TUPLE, CUSTOM)
DEFAULT_MODES: Final = (VALUES,)
"""What runs.stream sends when no mode is asked for (the SDK's default too)."""
JOIN_FALLBACK_MODES: Final = (VALUES, UPDATES, MESSAGES_TUPLE, CUSTOM)
"""What join_stream sends without `stream_mode` for a run whose modes this node does not
know (not started through /lg here): LangGraph's "union of all modes"."""

GRAPH_UPDATE: Final = "graph_update"
"""Event type of a LangGraph node's update (runtime/agents/langgraph.py): the update part."""
TOOLS_NODE: Final = "tools"

_ROLES: Final = {
    "user": "human",
    "human": "human",
    "assistant": "ai",
    "ai": "ai",
    "system": "system",
    "tool": "tool",
}


class UnsupportedMode(ValueError):
    """A stream mode threadwire does not produce; the message names it."""

    def __init__(self, mode: object) -> None:
        supported = ", ".join(SUPPORTED_MODES)
        super().__init__(f"stream_mode {mode!r} is not supported; supported: {supported}")
        self.mode = mode


def parse_modes(raw: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The requested modes, deduplicated in order; `()` when none were given.

    Accepts a mode, a list of modes, or (as LangGraph's server does for query
    parameters) a JSON array in a string. Raises UnsupportedMode.

    >>> parse_modes(["custom", '["values","custom"]', ""])
    ('custom', 'values')
    """
    items: list[str] = []
    for value in [raw] if isinstance(raw, str) else list(raw or ()):
        if not isinstance(value, str):
            raise UnsupportedMode(value)
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise UnsupportedMode(text) from None
            if not isinstance(parsed, list):
                raise UnsupportedMode(text)
            items.extend(parsed)
        elif text:
            items.append(text)
    modes: list[str] = []
    for mode in items:
        if mode not in SUPPORTED_MODES:
            raise UnsupportedMode(mode)
        if mode not in modes:
            modes.append(mode)
    return tuple(modes)


@dataclass(frozen=True, slots=True)
class Part:
    """One SSE part: `event:` name, `data:` JSON, `id:` seq; `mode` None = always sent."""

    event: str
    data: Any
    seq: int
    mode: str | None = None

    def encode(self) -> bytes:
        """The SSE record."""
        return (
            b"event: "
            + self.event.encode()
            + b"\ndata: "
            + dumps(self.data)
            + b"\nid: "
            + str(self.seq).encode()
            + b"\n\n"
        )


def metadata_part(run_id: str, seq: int) -> Part:
    """The stream's first part: `{"run_id", "attempt": 1}` with the seq the run began after."""
    return Part("metadata", {"run_id": run_id, "attempt": 1}, seq)


def custom_part(event: Event) -> Part:
    """A threadwire event as one `custom` part."""
    data = {"type": event.type, "data": event.data, "seq": event.seq}
    return Part(CUSTOM, data, event.seq, CUSTOM)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _message(kind: str, content: Any, msg_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "content": content,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": kind,
        "name": None,
        "id": msg_id,
    }
    body.update(extra)
    return body


def _ai(msg_id: str, content: str = "") -> dict[str, Any]:
    return _message(
        "ai", content, msg_id, tool_calls=[], invalid_tool_calls=[], usage_metadata=None
    )


def input_messages(run: RunRecord) -> list[dict[str, Any]]:
    """The run's input as messages: its `messages`, else its `prompt` as a human message."""
    raw = run.input.get("messages")
    out: list[dict[str, Any]] = []
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, str):
                item = {"role": "user", "content": item}
            if not isinstance(item, dict):
                continue
            role = str(item.get("role") or item.get("type") or "user")
            given = item.get("id")
            msg_id = given if isinstance(given, str) else f"{run.run_id}-in-{i}"
            kind = _ROLES.get(role, role)
            extra = {"tool_call_id": item.get("tool_call_id")} if kind == "tool" else {}
            out.append(_message(kind, item.get("content", ""), msg_id, **extra))
        return out
    prompt = run.input.get("prompt")
    if isinstance(prompt, str):
        out.append(_message("human", prompt, f"{run.run_id}-in-0", example=False))
    return out


def message_text(input: dict[str, Any]) -> str | None:
    """The text of the last user message of a `messages` input (for agents that take a
    `prompt`), else None."""
    messages = input.get("messages")
    if not isinstance(messages, list):
        return None
    for item in reversed(messages):
        if isinstance(item, str):
            return item
        if isinstance(item, dict) and _ROLES.get(str(item.get("role") or item.get("type"))) in (
            "human",
            None,
        ):
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [b.get("text", "") for b in content if isinstance(b, dict)]
                return "".join(t for t in texts if isinstance(t, str))
    return None


class RunView:
    """One run's events folded into LangGraph state, and the parts each event yields."""

    def __init__(self, run: RunRecord, *, graph: bool = False) -> None:
        self.run_id = run.run_id
        self.thread_id = run.thread_id
        self.node = run.agent
        self.graph = graph
        """True for a LangGraph graph agent: its `graph_update` events are the updates."""
        self.messages = input_messages(run)
        self.result: Any = None
        self._open: dict[str, Any] | None = None
        self._open_node = run.agent
        self._open_streamed = False
        self._seen: set[str] = set()
        self._calls: dict[str, str] = {}
        self._count = 0

    def values(self) -> dict[str, Any]:
        """The state now: `{"messages": [...], "result": ...}` (a deep copy)."""
        messages = [*self.messages, *([self._open] if self._open is not None else [])]
        return {"messages": copy.deepcopy(messages), "result": copy.deepcopy(self.result)}

    def final(self, run: RunRecord) -> dict[str, Any]:
        """What runs.wait answers for a finished run: its values, or `__error__`."""
        if run.status == "failed":
            error = run.error or {}
            return {"__error__": {"error": error.get("code"), "message": error.get("message")}}
        return self.snapshot(run)

    def snapshot(self, run: RunRecord) -> dict[str, Any]:
        """The values as they stand once the events so far are in (the thread's state)."""
        if run.finished:
            self._flush_quietly()
        if run.status == "completed":
            self.result = run.result
        return self.values()

    def apply(self, event: Event) -> list[Part]:
        """Fold in the run's next event; the derived parts it yields, in order."""
        out: list[Part] = []
        seq, data = event.seq, event.data
        changed = False
        if event.type == AGENT_STARTED:
            changed = True
        elif event.type == AGENT_MESSAGE:
            changed = self._on_message(seq, data, out)
        elif event.type == TOOL_EXECUTING:
            changed = self._on_tool_call(seq, data, out)
        elif event.type == TOOL_COMPLETED:
            changed = self._flush(seq, out)
            self._on_tool_result(seq, data, out)
            changed = True
        elif event.type == GRAPH_UPDATE and self.graph:
            changed = self._flush(seq, out)
            node = str(data.get("node"))
            out.append(Part(UPDATES, {node: data.get("update")}, seq, UPDATES))
        elif event.type == AGENT_COMPLETED:
            self._flush(seq, out)
            self.result = data.get("result")
            changed = True
        elif event.type == AGENT_ERROR:
            error = {"error": data.get("code"), "message": data.get("message")}
            out.append(Part("error", error, seq))
        if changed:
            out.append(Part(VALUES, self.values(), seq, VALUES))
        return out

    def _next_id(self, kind: str) -> str:
        self._count += 1
        return f"{self.run_id}-{kind}-{self._count}"

    def _meta(self, node: str) -> dict[str, Any]:
        return {
            "langgraph_node": node,
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "graph_id": self.node,
        }

    def _announce(self, msg_id: str, node: str, seq: int, out: list[Part]) -> None:
        if msg_id not in self._seen:
            self._seen.add(msg_id)
            meta = {msg_id: {"metadata": self._meta(node)}}
            out.append(Part("messages/metadata", meta, seq, MESSAGES))

    def _on_message(self, seq: int, data: dict[str, Any], out: list[Part]) -> bool:
        text = _str(data.get("text")) or ""
        msg_id = _str(data.get("message_id"))
        node = _str(data.get("node")) or self.node
        flushed = False
        if self._open is None or (msg_id is not None and self._open["id"] != msg_id):
            flushed = self._flush(seq, out)
            self._open = _ai(msg_id or self._next_id("ai"))
            self._open_node, self._open_streamed = node, False
        self._open["content"] += text
        self._open_streamed = True
        msg_id = self._open["id"]
        self._announce(msg_id, self._open_node, seq, out)
        out.append(Part("messages/partial", [copy.deepcopy(self._open)], seq, MESSAGES))
        chunk = _message(
            "AIMessageChunk",
            text,
            msg_id,
            tool_calls=[],
            invalid_tool_calls=[],
            usage_metadata=None,
            tool_call_chunks=[],
        )
        out.append(Part("messages", [chunk, self._meta(self._open_node)], seq, MESSAGES_TUPLE))
        return flushed

    def _call_id(self, data: dict[str, Any]) -> str:
        call_id = data.get("call_id")
        return call_id if isinstance(call_id, str) else f"{self.run_id}-call-{data.get('call')}"

    def _on_tool_call(self, seq: int, data: dict[str, Any], out: list[Part]) -> bool:
        msg_id = _str(data.get("message_id"))
        call_id = self._call_id(data)
        self._calls[str(data.get("call"))] = call_id
        call = {"name": data.get("tool"), "args": data.get("args", {}), "id": call_id}
        call["type"] = "tool_call"
        if msg_id is not None and self._open is None:
            for message in reversed(self.messages):  # already flushed by its node's update
                if message.get("id") == msg_id and message["type"] == "ai":
                    message["tool_calls"].append(call)
                    return True
        flushed = False
        if self._open is None or (msg_id is not None and self._open["id"] != msg_id):
            flushed = self._flush(seq, out)
            self._open = _ai(msg_id or self._next_id("ai"))
            self._open_node, self._open_streamed = self.node, False
        self._open["tool_calls"].append(call)
        return flushed

    def _on_tool_result(self, seq: int, data: dict[str, Any], out: list[Part]) -> None:
        call_id = self._calls.get(str(data.get("call"))) or self._call_id(data)
        error = data.get("error")
        result = data.get("result")
        if error is not None:
            content = str(error)
        else:
            content = result if isinstance(result, str) else json.dumps(result)
        msg = _message(
            "tool",
            content,
            f"{self.run_id}-tool-{data.get('call')}",
            tool_call_id=call_id,
            artifact=None,
            status="error" if error is not None else "success",
        )
        msg["name"] = data.get("tool")
        self.messages.append(msg)
        self._announce(msg["id"], TOOLS_NODE, seq, out)
        out.append(Part("messages/complete", [copy.deepcopy(msg)], seq, MESSAGES))
        pair = [copy.deepcopy(msg), self._meta(TOOLS_NODE)]
        out.append(Part("messages", pair, seq, MESSAGES_TUPLE))
        if not self.graph:
            update = {TOOLS_NODE: {"messages": [copy.deepcopy(msg)]}}
            out.append(Part(UPDATES, update, seq, UPDATES))

    def _flush(self, seq: int, out: list[Part]) -> bool:
        """Close the AI message being built: it joins the state; its parts follow."""
        msg = self._open
        if msg is None:
            return False
        self._open = None
        self.messages.append(msg)
        if not self._open_streamed:
            self._announce(msg["id"], self._open_node, seq, out)
            out.append(Part("messages/complete", [copy.deepcopy(msg)], seq, MESSAGES))
            meta = self._meta(self._open_node)
            out.append(Part("messages", [copy.deepcopy(msg), meta], seq, MESSAGES_TUPLE))
        if not self.graph:
            update = {self._open_node: {"messages": [copy.deepcopy(msg)]}}
            out.append(Part(UPDATES, update, seq, UPDATES))
        return True

    def _flush_quietly(self) -> None:
        if self._open is not None:
            self.messages.append(self._open)
            self._open = None
