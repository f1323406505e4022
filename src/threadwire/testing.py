"""Helpers to unit-test your own agents against threadwire, in-process and offline.

`AgentHarness` wires an in-memory store and bus, the Coordinator and a Supervisor
around your agent, runs it to its end and hands you the events it produced, exactly as
a subscriber would have received them:

    from threadwire.testing import AgentHarness

    async def greet(ctx, input):
        await ctx.thinking("choosing words")
        async with ctx.tool("lookup", {"name": input["name"]}) as call:
            call.result = "friend"
        await ctx.message(f"Hello, {input['name']}!")
        return "greeted"

    async def test_greet() -> None:
        async with AgentHarness(greet) as h:
            run = await h.run("greet", {"name": "Ada"})
            assert run.status == "completed" and run.result == "greeted"
            assert h.types(run.run_id) == [
                "run_queued", "agent_started", "agent_thinking",
                "tool_executing", "tool_completed", "agent_message", "agent_completed",
            ]
            assert h.text(run.run_id) == "Hello, Ada!"
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from threadwire.bus.memory import MemoryBus
from threadwire.events import AGENT_MESSAGE, Event
from threadwire.ids import new_thread_id
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.registry import AgentRegistry
from threadwire.runtime.supervisor import Supervisor
from threadwire.store.base import RunRecord
from threadwire.store.memory import MemoryStore

__all__ = ["AgentHarness"]


class AgentHarness:
    """An in-memory threadwire around your agents; use it as an async context manager.

    `agents` is a registry, one agent callable (registered under its `__name__`), or a
    mapping of names to agents. Limits and the run timeout are the Supervisor's.
    """

    def __init__(
        self,
        agents: AgentRegistry | Callable[..., Any] | dict[str, Callable[..., Any]] | None = None,
        *,
        max_concurrent_runs: int = 64,
        max_runs_per_user: int = 8,
        run_timeout: float = 60.0,
        cancel_grace: float = 5.0,
    ) -> None:
        if isinstance(agents, AgentRegistry):
            self.registry = agents
        else:
            self.registry = AgentRegistry()
            if isinstance(agents, dict):
                for name, fn in agents.items():
                    self.registry.register(name, fn)
            elif agents is not None:
                self.register(agents)
        self.store = MemoryStore()
        self.bus = MemoryBus()
        self.coordinator = Coordinator(self.store, self.bus)
        self.supervisor = Supervisor(
            self.store,
            self.coordinator,
            self.registry,
            max_concurrent_runs=max_concurrent_runs,
            max_runs_per_user=max_runs_per_user,
            run_timeout=run_timeout,
            cancel_grace=cancel_grace,
        )
        self.received: list[Event] = []
        """Every event the bus delivered, in delivery order."""
        self._threads: set[str] = set()

    def register(self, agent: Callable[..., Any], name: str | None = None) -> str:
        """Register `agent` (under `name`, else its `__name__`); returns the name."""
        chosen = name or getattr(agent, "__name__", None) or agent.__class__.__name__
        self.registry.register(chosen, agent)
        return chosen

    async def __aenter__(self) -> AgentHarness:
        await self.store.open()
        await self.bus.open()
        await self.supervisor.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.supervisor.shutdown(grace=0)
        await self.bus.close()
        await self.store.close()

    async def thread(self, thread_id: str | None = None, *, user_id: str = "test-user") -> str:
        """A thread owned by `user_id` (created when new), its events collected."""
        thread_id = thread_id or new_thread_id()
        if await self.store.get_thread(thread_id) is None:
            await self.store.create_thread(thread_id, user_id)
        if thread_id not in self._threads:
            self._threads.add(thread_id)
            await self.bus.subscribe(thread_id, self.received.append)
        return thread_id

    async def submit(
        self,
        agent: str | Callable[..., Any],
        input: dict[str, Any] | None = None,
        *,
        user_id: str = "test-user",
        thread_id: str | None = None,
    ) -> RunRecord:
        """Start a run without waiting for it (for cancel and concurrency tests)."""
        name = agent if isinstance(agent, str) else self.register(agent)
        thread_id = await self.thread(thread_id, user_id=user_id)
        return await self.supervisor.submit(
            user_id=user_id, thread_id=thread_id, agent=name, input=input or {}
        )

    async def run(
        self,
        agent: str | Callable[..., Any],
        input: dict[str, Any] | None = None,
        *,
        user_id: str = "test-user",
        thread_id: str | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 (a deadline for the test, not for the run)
    ) -> RunRecord:
        """Run `agent` (a registered name or a callable) to its end; the final run record."""
        run = await self.submit(agent, input, user_id=user_id, thread_id=thread_id)
        return await self.supervisor.wait(run.run_id, timeout=timeout)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a queued or running run (see Supervisor.cancel)."""
        return await self.supervisor.cancel(run_id)

    def events(self, run_id: str | None = None) -> list[Event]:
        """The delivered events (of one run, when given), in seq order per thread."""
        return [e for e in self.received if run_id is None or e.run_id == run_id]

    def types(self, run_id: str | None = None) -> list[str]:
        """The `type` of each event of :meth:`events`."""
        return [e.type for e in self.events(run_id)]

    def text(self, run_id: str) -> str:
        """The run's `agent_message` chunks joined: the message as a user reads it."""
        return "".join(
            str(e.data.get("text", "")) for e in self.events(run_id) if e.type == AGENT_MESSAGE
        )

    async def stored_events(self, thread_id: str) -> list[Event]:
        """Every stored event of `thread_id`, from the store (not the bus)."""
        out: list[Event] = []
        while True:
            page = await self.store.read_events(
                thread_id, after_seq=out[-1].seq if out else 0, limit=1000
            )
            if not page:
                return out
            out.extend(page)
