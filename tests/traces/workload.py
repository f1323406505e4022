"""A realistic generated workload, written through the real SQL store.

Several agents with different tool mixes; tools with log-normal latencies and their
own failure rates; runs that complete, fail (agent errors, timeouts) or are cancelled
(before or after starting); runs still running; and legacy traffic as a half-migrated
platform sends it (external workers whose events carry `data.legacy_run_id`). The
event data has exactly the shapes the runtime and the ingest path write.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from threadwire.events import (
    AGENT_COMPLETED,
    AGENT_ERROR,
    AGENT_MESSAGE,
    AGENT_STARTED,
    AGENT_THINKING,
    RUN_CANCELLED,
    RUN_QUEUED,
    TOOL_COMPLETED,
    TOOL_EXECUTING,
    Event,
    NewEvent,
    utcnow,
)
from threadwire.ids import new_event_id, new_run_id
from threadwire.store.base import RunRecord, Store

TOOLS: dict[str, tuple[float, float, float]] = {
    # tool: (median latency ms, log-normal sigma, failure rate)
    "search": (120.0, 0.5, 0.03),
    "fetch_url": (800.0, 0.8, 0.12),
    "code_exec": (400.0, 0.6, 0.08),
    "db_query": (60.0, 0.4, 0.02),
    "send_email": (250.0, 0.3, 0.05),
}


@dataclass(frozen=True)
class AgentProfile:
    """How one agent behaves."""

    tools: tuple[str, ...]
    tool_calls: tuple[int, int]
    fail_rate: float
    cancel_rate: float
    legacy_share: float
    """Share of its runs sent by a legacy external worker."""


AGENTS: dict[str, AgentProfile] = {
    "researcher": AgentProfile(("search", "fetch_url"), (1, 6), 0.05, 0.03, 0.0),
    "coder": AgentProfile(("code_exec", "search", "db_query"), (2, 8), 0.10, 0.02, 0.0),
    "support": AgentProfile(("db_query", "send_email", "search"), (0, 3), 0.04, 0.05, 0.6),
    "summarizer": AgentProfile((), (0, 0), 0.02, 0.01, 0.2),
    "planner": AgentProfile(("search", "db_query"), (0, 2), 0.08, 0.04, 0.3),
}


@dataclass
class Workload:
    """What was written: events in the order a live node would have emitted them."""

    now: datetime
    events: list[Event] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)


def _ms(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(milliseconds=rng.randint(int(low), int(high)))


class _RunWriter:
    def __init__(self, rng: random.Random, run_id: str, thread_id: str, legacy_id: str | None):
        self.rng = rng
        self.run_id = run_id
        self.thread_id = thread_id
        self.legacy_id = legacy_id
        self.events: list[NewEvent] = []

    def add(self, type_: str, ts: datetime, data: dict[str, Any]) -> None:
        # a half-migrated worker: most, not all, of its events use the legacy ID
        if self.legacy_id is not None and (type_ == RUN_QUEUED or self.rng.random() < 0.8):
            data = {**data, "legacy_run_id": self.legacy_id}
        self.events.append(NewEvent(new_event_id(), self.thread_id, self.run_id, type_, ts, data))


def _plan_run(
    rng: random.Random, writer: _RunWriter, agent: str, start: datetime, finish: bool
) -> tuple[datetime, str, datetime | None]:
    """Events of one run from `start`; returns (end, status, started_at)."""
    profile = AGENTS[agent]
    t = start
    writer.add(RUN_QUEUED, t, {"agent": agent})
    if finish and rng.random() < profile.cancel_rate / 2:  # cancelled while queued
        t += _ms(rng, 10, 3000)
        writer.add(RUN_CANCELLED, t, {"reason": "cancelled by user"})
        return t, "cancelled", None
    t += _ms(rng, 2, 250)
    started = t
    writer.add(AGENT_STARTED, t, {"agent": agent})
    for _ in range(rng.randint(0, 2)):
        t += _ms(rng, 50, 900)
        writer.add(AGENT_THINKING, t, {"text": "considering the request"})
    failed_tool = False
    for call in range(1, rng.randint(*profile.tool_calls) + 1):
        tool = rng.choice(profile.tools)
        median, sigma, fail = TOOLS[tool]
        duration = round(median * rng.lognormvariate(0, sigma), 3)
        t += _ms(rng, 1, 40)
        head: dict[str, Any] = {"tool": tool, "call": call}
        if rng.random() < 0.5:
            head["call_id"] = f"call_{rng.getrandbits(40):010x}"
        writer.add(TOOL_EXECUTING, t, {**head, "args": {"q": f"query {call}"}})
        t += timedelta(milliseconds=int(duration) + 1)
        if rng.random() < fail:
            writer.add(TOOL_COMPLETED, t, {**head, "duration_ms": duration, "error": "timeout"})
            failed_tool = True
        else:
            writer.add(TOOL_COMPLETED, t, {**head, "duration_ms": duration, "result": {"n": 3}})
    if not finish:
        return t, "running", started
    for _ in range(rng.randint(1, 8)):
        t += _ms(rng, 5, 120)
        writer.add(AGENT_MESSAGE, t, {"text": "chunk "})
    t += _ms(rng, 1, 50)
    roll = rng.random()
    if roll < profile.cancel_rate / 2:
        writer.add(RUN_CANCELLED, t, {"reason": "cancelled by user"})
        return t, "cancelled", started
    if roll < profile.cancel_rate / 2 + profile.fail_rate + (0.1 if failed_tool else 0.0):
        code = rng.choice(["agent_exception", "timeout", "tool_failed"])
        writer.add(AGENT_ERROR, t, {"code": code, "message": f"the run failed ({code})"})
        return t, "failed", started
    writer.add(AGENT_COMPLETED, t, {"result": {"answer": "done"}})
    return t, "completed", started


async def generate(
    store: Store, *, seed: int = 9, threads: int = 48, runs_per_thread: tuple[int, int] = (3, 10)
) -> Workload:
    """Write the workload into `store` (open, empty); runs span the last three hours."""
    rng = random.Random(seed)
    now = utcnow()
    work = Workload(now=now)
    window = timedelta(hours=3)
    for n in range(threads):
        thread_id = f"t{n:03d}_{rng.getrandbits(32):08x}"
        await store.create_thread(thread_id, owner=f"user_{n % 7}")
        t = now - window + timedelta(seconds=rng.uniform(0, 600))
        count = rng.randint(*runs_per_thread)
        for i in range(count):
            agent = rng.choice(sorted(AGENTS))
            run_id = new_run_id(thread_id)
            legacy = rng.random() < AGENTS[agent].legacy_share
            legacy_id = f"run_{thread_id}_{rng.getrandbits(32):08x}" if legacy else None
            writer = _RunWriter(rng, run_id, thread_id, legacy_id)
            # the newest run of some threads is still running
            finish = not (i == count - 1 and rng.random() < 0.15)
            end, status, started = _plan_run(rng, writer, agent, t, finish)
            record = RunRecord(run_id, thread_id, agent, "queued", created_at=t)
            if legacy_id is not None:
                await store.ensure_run(record, legacy_id=legacy_id)
            else:
                await store.create_run(record)
            work.events.extend(await store.append(writer.events))
            work.runs.append(
                await store.update_run(
                    run_id,
                    status=status,
                    started_at=started,
                    finished_at=end if status != "running" else None,
                )
            )
            t = end + timedelta(seconds=rng.uniform(5, 1500))
            if t > now - timedelta(minutes=1):
                break
    # the order a live node emits them in: by time, each thread in seq order
    work.events.sort(key=lambda e: (e.ts, e.thread_id, e.seq))
    return work
