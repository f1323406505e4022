"""The built-in `chat` agent: any OpenAI-compatible chat-completions endpoint, streamed.

Tokens become `agent_message` events as they arrive; tool calls the model streams are
run (user-supplied Python callables) inside `ctx.tool`, so they show as
`tool_executing`/`tool_completed` pairs, and their results go back to the model until
it answers. Endpoint failures end the run with `agent_error`, code `upstream_error`,
and a message that names the failure but never the endpoint's URL, key or body.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from threadwire.events import AGENT_MESSAGE
from threadwire.runtime.context import RunContext, check_json
from threadwire.runtime.errors import AgentError, InvalidInput

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from threadwire.config import Settings

UPSTREAM_ERROR: Final = "upstream_error"
DEFAULT_MODEL: Final = "gpt-4o-mini"
_ROLES: Final = frozenset({"system", "user", "assistant"})
_JSON_TYPES: Final[dict[Any, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


@dataclass(frozen=True, slots=True)
class ChatTool:
    """A Python callable the model may call, with the JSON schema of its arguments."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> ChatTool:
        """A tool from `fn` (sync or async): its name, docstring and, unless given, a
        schema from its signature (str/int/float/bool/list/dict annotations)."""
        doc = inspect.getdoc(fn) or ""
        return cls(
            name=name or str(getattr(fn, "__name__", "tool")),
            fn=fn,
            description=description if description is not None else doc.split("\n\n")[0],
            parameters=parameters if parameters is not None else _schema_of(fn),
        )

    def spec(self) -> dict[str, Any]:
        """The tool as the chat-completions `tools` list wants it."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    async def invoke(self, args: dict[str, Any]) -> Any:
        """Call the function with `args`; a sync one runs in a worker thread."""
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**args)
        result = await asyncio.to_thread(self.fn, **args)
        if inspect.isawaitable(result):
            result = await result
        return result


def _schema_of(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: describe the names only
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(param.name)
        kind = _JSON_TYPES.get(typing.get_origin(hint) or hint)
        properties[param.name] = {"type": kind} if kind else {}
        if param.default is param.empty:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ChatAgent:
    """An agent for an OpenAI-compatible endpoint; input `{"prompt": str}` or
    `{"messages": [{"role", "content"}, ...]}`.

    >>> agent = ChatAgent(base_url="http://127.0.0.1:11434/v1", model="llama3")
    >>> @agent.tool
    ... def add(a: int, b: int) -> int:
    ...     "Add two integers."
    ...     return a + b
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        tools: Iterable[ChatTool | Callable[..., Any]] = (),
        system_prompt: str | None = None,
        max_tool_rounds: int = 8,
        timeout: float = 60.0,
        max_retries: int = 2,
        client_factory: Callable[[], AsyncOpenAI] | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.system_prompt = system_prompt
        self.max_tool_rounds = max_tool_rounds
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._client_factory = client_factory
        self.tools: dict[str, ChatTool] = {}
        for tool in tools:
            self.add_tool(tool)

    @classmethod
    def from_settings(cls, settings: Settings | None, **options: Any) -> ChatAgent:
        """The agent configured by `chat_base_url`, `chat_api_key` and `chat_model`."""
        if settings is None:
            return cls(**options)
        return cls(
            base_url=settings.chat_base_url,
            api_key=settings.chat_api_key,
            model=settings.chat_model,
            **options,
        )

    def add_tool(self, tool: ChatTool | Callable[..., Any]) -> ChatTool:
        """Offer `tool` (a ChatTool or a plain function) to the model."""
        made = tool if isinstance(tool, ChatTool) else ChatTool.from_function(tool)
        self.tools[made.name] = made
        return made

    def tool(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator form of :meth:`add_tool`; returns the function unchanged."""
        self.add_tool(fn)
        return fn

    def validate_input(self, input: dict[str, Any]) -> dict[str, Any]:
        """`{"messages": [...]}` from either input shape; raises InvalidInput."""
        if "messages" in input:
            messages = input["messages"]
            if not isinstance(messages, list) or not messages:
                raise InvalidInput("'messages' must be a non-empty list")
            for i, m in enumerate(messages):
                if (
                    not isinstance(m, dict)
                    or m.get("role") not in _ROLES
                    or not isinstance(m.get("content"), str)
                ):
                    raise InvalidInput(
                        f"messages[{i}] must be {{'role': system|user|assistant, 'content': str}}"
                    )
            return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
        prompt = input.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInput("'prompt' must be a non-empty string (or give 'messages')")
        return {"messages": [{"role": "user", "content": prompt}]}

    def _client(self) -> AsyncOpenAI:
        if self._client_factory is not None:
            return self._client_factory()
        try:
            from openai import AsyncOpenAI
        except ModuleNotFoundError:
            raise AgentError(
                "the chat agent needs the openai package: pip install 'threadwire[chat]'",
                code="not_configured",
            ) from None

        # Local OpenAI-compatible servers need no key; the client insists on one.
        key = self._api_key or os.environ.get("OPENAI_API_KEY") or "unset"
        return AsyncOpenAI(
            api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
        )

    async def __call__(self, ctx: RunContext, input: dict[str, Any]) -> str:
        """Stream the model's answer; run the tools it calls; return its final text."""
        messages: list[dict[str, Any]] = list(self.validate_input(input)["messages"])
        if self.system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        async with self._client() as client:
            for _ in range(self.max_tool_rounds + 1):
                text, calls = await self._stream_once(ctx, client, messages)
                if not calls:
                    return text
                messages.append(_assistant_turn(text, calls))
                for call in calls:
                    content = await self._run_tool(ctx, call)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        raise AgentError(
            f"the model kept calling tools after {self.max_tool_rounds} rounds", code="tool_loop"
        )

    async def _stream_once(
        self, ctx: RunContext, client: AsyncOpenAI, messages: list[dict[str, Any]]
    ) -> tuple[str, list[_PendingCall]]:
        """One streamed completion: its text (already emitted) and the tool calls it asks."""
        import openai

        # Plain dicts on the wire; the client's TypedDicts would add nothing here.
        specs: Any = [t.spec() for t in self.tools.values()] or openai.omit
        history: Any = messages
        parts: list[str] = []
        pending: dict[int, _PendingCall] = {}
        finish: str | None = None
        try:
            stream = await client.chat.completions.create(
                model=self.model,
                messages=history,
                stream=True,
                tools=specs,
            )
            async with stream:
                async for chunk in stream:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    delta = choice.delta
                    if delta.content:
                        parts.append(delta.content)
                        # Tokens stream at the model's pace, not one commit each.
                        ctx.emit_nowait(AGENT_MESSAGE, {"text": delta.content})
                    for tc in delta.tool_calls or ():
                        call = pending.setdefault(tc.index, _PendingCall())
                        call.id += tc.id or ""
                        if tc.function is not None:
                            call.name += tc.function.name or ""
                            call.arguments += tc.function.arguments or ""
                    finish = choice.finish_reason or finish
        except openai.APIStatusError as exc:
            raise AgentError(
                f"the chat endpoint answered HTTP {exc.status_code}", code=UPSTREAM_ERROR
            ) from None
        except openai.APITimeoutError:
            raise AgentError(
                "the chat endpoint did not answer in time", code=UPSTREAM_ERROR
            ) from None
        except openai.APIConnectionError:
            raise AgentError(
                "the connection to the chat endpoint failed mid-answer"
                if parts or pending
                else "the chat endpoint could not be reached",
                code=UPSTREAM_ERROR,
            ) from None
        except (openai.OpenAIError, ValueError):
            raise AgentError(
                "the chat endpoint sent an invalid answer", code=UPSTREAM_ERROR
            ) from None
        if finish is None:
            raise AgentError(
                "the chat endpoint ended the stream before the answer was complete",
                code=UPSTREAM_ERROR,
            )
        return "".join(parts), [pending[i] for i in sorted(pending)]

    async def _run_tool(self, ctx: RunContext, call: _PendingCall) -> str:
        """Run one requested tool inside `ctx.tool`; the answer for the model, as text."""
        try:
            args = json.loads(call.arguments or "{}")
        except ValueError:
            args = None
        shown = args if isinstance(args, dict) else {"arguments": call.arguments[:1000]}
        async with ctx.tool(call.name, shown, call_id=call.id or None) as record:
            tool = self.tools.get(call.name)
            if tool is None:
                record.set_error(f"unknown tool {call.name[:64]!r}")
            elif not isinstance(args, dict):
                record.set_error("the arguments are not a JSON object")
            else:
                try:
                    result = await tool.invoke(args)
                except Exception as exc:
                    record.set_error(f"tool failed ({exc.__class__.__name__})")
                else:
                    try:
                        check_json(result, "tool result")
                    except TypeError:
                        result = repr(result)
                    record.result = result
        if record.error is not None:
            return json.dumps({"error": record.error})
        return record.result if isinstance(record.result, str) else json.dumps(record.result)


def _assistant_turn(text: str, calls: list[_PendingCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for c in calls
        ],
    }


def tools_from(mapping: Mapping[str, Callable[..., Any]]) -> list[ChatTool]:
    """ChatTools named by the keys of `mapping`."""
    return [ChatTool.from_function(fn, name=name) for name, fn in mapping.items()]
