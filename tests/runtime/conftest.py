"""Runtime fixtures: an in-memory store and bus behind a Coordinator that remembers every
event it let through, so each test can also check that every run ID was canonical."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from threadwire.bus.memory import MemoryBus
from threadwire.events import Event, NewEvent
from threadwire.ids import parse_run_id
from threadwire.runtime import AgentRegistry, Coordinator, Supervisor
from threadwire.store import Store, create_store
from threadwire.store.base import RunRecord

from .helpers import WAIT


class RecordingCoordinator(Coordinator):
    """The real Coordinator, keeping a copy of every stored event in emit order."""

    def __init__(self, store: Store, bus: MemoryBus) -> None:
        super().__init__(store, bus)
        self.emitted: list[Event] = []

    async def emit(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        stored = await super().emit(events, idempotency_key=idempotency_key)
        self.emitted.extend(stored)
        return stored

    def of_run(self, run_id: str) -> list[Event]:
        return [e for e in self.emitted if e.run_id == run_id]

    def types(self, run_id: str) -> list[str]:
        return [e.type for e in self.of_run(run_id)]


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store of each embedded backend: the runtime must hold on every one."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'rt.db'}"
    opened = create_store(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def coordinator(store: Store) -> AsyncIterator[RecordingCoordinator]:
    bus = MemoryBus()
    coordinator = RecordingCoordinator(store, bus)
    yield coordinator
    for event in coordinator.emitted:  # protocol spec 1: never a non-canonical run ID
        assert parse_run_id(event.run_id).is_canonical, event


@pytest.fixture
def registry() -> AgentRegistry:
    return AgentRegistry()


SupervisorFactory = Callable[..., Supervisor]


@pytest.fixture
async def make_supervisor(
    store: Store, coordinator: RecordingCoordinator, registry: AgentRegistry
) -> AsyncIterator[SupervisorFactory]:
    """Supervisors over the shared store; each is shut down after the test."""
    made: list[Supervisor] = []

    def make(**options: Any) -> Supervisor:
        supervisor = Supervisor(store, coordinator, registry, **options)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        await supervisor.shutdown(grace=0)


@pytest.fixture
async def thread_id(store: Store) -> str:
    await store.create_thread("thread_abc_123", "alice")
    return "thread_abc_123"


RunAgent = Callable[..., Awaitable[RunRecord]]


@pytest.fixture
def run_agent(
    make_supervisor: SupervisorFactory, registry: AgentRegistry, thread_id: str
) -> RunAgent:
    """Register `fn`, run it once on a fresh supervisor (`options`), return the final run."""

    async def run(
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        input: dict[str, Any] | None = None,
        user_id: str = "u",
        **options: Any,
    ) -> RunRecord:
        agent = name or fn.__name__
        registry.register(agent, fn)
        supervisor = make_supervisor(**options)
        run = await supervisor.submit(
            user_id=user_id, thread_id=thread_id, agent=agent, input=input or {}
        )
        return await supervisor.wait(run.run_id, timeout=WAIT)

    return run
