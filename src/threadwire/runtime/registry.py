"""Agents by name: registered with a decorator, by `module:callable`, or by entry point.

An agent is a plain async callable `agent(ctx, input) -> result`. It may validate its
input before any run is created: a `validate_input(input) -> dict` attribute, or the
`validate=` argument of `register`, raising `InvalidInput`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from threadwire.runtime.errors import InvalidInput, UnknownAgent

if TYPE_CHECKING:
    from threadwire.config import Settings
    from threadwire.runtime.context import RunContext

ENTRY_POINT_GROUP: Final = "threadwire.agents"

log = logging.getLogger("threadwire.runtime")

Validator = Callable[[dict[str, Any]], dict[str, Any]]
"""Checks an agent's input and returns it normalised (defaults filled); raises InvalidInput."""


@runtime_checkable
class Agent(Protocol):
    """What threadwire runs: an async callable of a run's context and its input."""

    async def __call__(self, ctx: RunContext, input: dict[str, Any]) -> Any:
        """Do the work, emitting events through `ctx`; the return value is the result."""
        ...


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A registered agent: its name, the callable, and its input validator (if any)."""

    name: str
    fn: Agent
    validate: Validator | None = None

    def check_input(self, input: object) -> dict[str, Any]:
        """The input as the agent will receive it; raises InvalidInput."""
        if not isinstance(input, dict):
            raise InvalidInput(f"input must be a JSON object, not {input.__class__.__name__}")
        if self.validate is None:
            return input
        try:
            return self.validate(input)
        except InvalidInput:
            raise
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidInput(f"invalid input for agent {self.name!r}: {exc}") from None


class AgentRegistry:
    """Agents by name, for the supervisor to look up when a run is submitted."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentSpec] = {}

    def register(
        self, name: str, fn: Agent | Callable[..., Any], *, validate: Validator | None = None
    ) -> AgentSpec:
        """Register `fn` as `name` (replacing an agent of that name)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"an agent name must be a non-empty string, not {name!r}")
        fn = _graph_as_agent(fn)
        if not callable(fn):
            raise TypeError(f"agent {name!r} is not callable: {fn!r}")
        validator = validate if validate is not None else getattr(fn, "validate_input", None)
        if validator is not None and not callable(validator):
            raise TypeError(f"validate_input of agent {name!r} is not callable")
        spec = AgentSpec(name, fn, validator)
        self._agents[name] = spec
        return spec

    def agent(
        self, name: str | None = None, *, validate: Validator | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: `@registry.agent("echo")` registers the function (name defaults to
        the function's own)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name or fn.__name__, fn, validate=validate)
            return fn

        return decorate

    def load(self, target: str, *, name: str | None = None) -> AgentSpec:
        """Import and register `"module:callable"` (or `"name=module:callable"`).

        The name is, in order: `name`, the `name=` prefix, the callable's `__name__`,
        the part after the colon.
        """
        prefix, sep, ref = target.partition("=")
        if not sep:
            prefix, ref = "", target
        module_name, colon, attr = ref.strip().partition(":")
        if not colon or not module_name or not attr:
            raise ValueError(f"expected 'module:callable', got {target!r}")
        obj: Any = _import(module_name)
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
        chosen = name or prefix.strip() or getattr(obj, "__name__", None) or attr.split(".")[-1]
        return self.register(chosen, obj)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every agent of the `threadwire.agents` entry-point group by its name.

        A plugin that fails to import is logged and skipped: an installed package must
        not keep the node from starting.
        """
        loaded: list[str] = []
        for ep in entry_points(group=group):
            try:
                self.register(ep.name, ep.load())
            except Exception:
                log.exception("agent entry point %r (%s) failed to load", ep.name, ep.value)
                continue
            loaded.append(ep.name)
        return loaded

    def get(self, name: str) -> AgentSpec:
        """The agent registered as `name`; raises UnknownAgent."""
        spec = self._agents.get(name) if isinstance(name, str) else None
        if spec is None:
            raise UnknownAgent(name)
        return spec

    def names(self) -> list[str]:
        """Registered agent names, sorted."""
        return sorted(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __len__(self) -> int:
        return len(self._agents)


def _graph_as_agent(obj: Any) -> Any:
    """A compiled LangGraph graph wrapped as an agent (threadwire.runtime.agents.langgraph, imported
    only then: langgraph stays optional); anything else as it is."""
    if callable(obj) or not callable(getattr(obj, "astream", None)):
        return obj
    from threadwire.runtime.agents.langgraph import GraphAgent, is_compiled_graph

    return GraphAgent(obj) if is_compiled_graph(obj) else obj


def _import(module_name: str) -> Any:
    """Import `module_name`, also from the working directory, as `uvicorn main:app` does:
    the `threadwire` script's own directory, not the user's, heads `sys.path`."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        top = module_name.partition(".")[0]
        if exc.name != top or cwd in sys.path or not _findable(top, cwd):
            raise
    sys.path.insert(0, cwd)
    return importlib.import_module(module_name)


def _findable(top: str, directory: str) -> bool:
    base = os.path.join(directory, top)
    return os.path.isdir(base) or os.path.isfile(base + ".py")


def default_registry(settings: Settings | None = None) -> AgentRegistry:
    """A registry with the built-in agents `demo` and `chat` (chat configured by settings)."""
    from threadwire.runtime.agents.chat import ChatAgent
    from threadwire.runtime.agents.demo import demo

    registry = AgentRegistry()
    registry.register("demo", demo)
    registry.register("chat", ChatAgent.from_settings(settings))
    return registry


def registry_from_settings(settings: Settings) -> AgentRegistry:
    """The built-ins, then entry-point agents, then `settings.agents` (`--agent`), later
    ones replacing earlier ones of the same name."""
    registry = default_registry(settings)
    registry.load_entry_points()
    for target in settings.agents:
        registry.load(target)
    return registry
