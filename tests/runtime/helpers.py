"""Shared checks and controllable agents for the runtime tests."""

from __future__ import annotations

import asyncio
from typing import Any

from threadwire.events import TERMINAL_TYPES, Event
from threadwire.runtime import RunContext

LIFE_START = ["run_queued", "agent_started"]
WAIT = 30.0
"""Generous bound for awaiting a condition that a correct runtime meets at once."""


def assert_run_life(events: list[Event]) -> None:
    """One run's events: run_queued first, exactly one terminal event, last; seq rising."""
    types = [e.type for e in events]
    assert types[0] == "run_queued", types
    terminals = [t for t in types if t in TERMINAL_TYPES]
    assert len(terminals) == 1 and types[-1] == terminals[0], types
    if len(types) > 2:
        assert types[1] == "agent_started", types
    assert "agent_started" not in types[2:], types
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert len({e.run_id for e in events}) == 1


class Gate:
    """Agents that block until the test lets them go, and tell the test they started."""

    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.active: dict[str, str] = {}
        """run_id -> user_id of the agents running now."""
        self.max_active = 0
        self.max_active_by_user: dict[str, int] = {}
        self.order: list[str] = []
        self.changed = asyncio.Condition()
        self.cancelled: set[str] = set()

    def _event(self, table: dict[str, asyncio.Event], run_id: str) -> asyncio.Event:
        return table.setdefault(run_id, asyncio.Event())

    async def agent(self, ctx: RunContext, input: dict[str, Any]) -> str:
        """Blocks until released; records how many ran at once (overall and per user)."""
        async with self.changed:
            self.active[ctx.run_id] = ctx.user_id
            self.order.append(ctx.run_id)
            self.max_active = max(self.max_active, len(self.active))
            mine = sum(1 for user in self.active.values() if user == ctx.user_id)
            seen = self.max_active_by_user.get(ctx.user_id, 0)
            self.max_active_by_user[ctx.user_id] = max(seen, mine)
            self.changed.notify_all()
        self._event(self.started, ctx.run_id).set()
        try:
            await self._event(self.release, ctx.run_id).wait()
        except asyncio.CancelledError:
            self.cancelled.add(ctx.run_id)
            raise
        finally:
            async with self.changed:
                self.active.pop(ctx.run_id, None)
                self.changed.notify_all()
        return "released"

    async def wait_started(self, run_id: str) -> None:
        await asyncio.wait_for(self._event(self.started, run_id).wait(), WAIT)

    def let_go(self, run_id: str) -> None:
        self._event(self.release, run_id).set()

    async def wait_active(self, count: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.active) == count), WAIT)
