"""The load: users and their threads, demo runs started over HTTP, and legacy-ID runs
ingested through `POST /v1/events` as a half-migrated platform would send them.

Every run's events are known in advance: a demo run of `steps` steps emits
`run_queued`, `agent_started`, per step `agent_thinking` + `tool_executing` +
`tool_completed`, one `agent_message` and `agent_completed` (4 + 3*steps); an
ingested run sends the same types itself.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from threadwire.verify.api import Deployment, Unreachable, sign_token
from threadwire.verify.config import VerifyConfig

CANONICAL: Final = "canonical"
TERMINAL: Final = frozenset({"agent_completed", "agent_error", "run_cancelled"})
LEGACY_AGENT: Final = "verify-legacy"


def run_types(steps: int) -> list[str]:
    """The event types of one demo run of `steps` steps, in order."""
    middle = ["agent_thinking", "tool_executing", "tool_completed"] * steps
    return ["run_queued", "agent_started", *middle, "agent_message", "agent_completed"]


def _legacy_run(thread_id: str) -> str:
    return f"run_{thread_id}_{secrets.token_hex(4)}"


def _legacy_run_ts(thread_id: str) -> str:
    # `legacy_run` reads this as thread `{thread_id}_{ms}`, which does not exist: only
    # the store can settle which thread it is.
    return f"run_{thread_id}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def _uuid(thread_id: str) -> str:
    del thread_id  # a bare UUID names no thread: the first event must
    value = uuid.uuid4()
    return str(value) if value.int % 2 else value.hex


LEGACY_MAKERS: Final[dict[str, Callable[[str], str]]] = {
    "legacy_run": _legacy_run,
    "legacy_run_ts": _legacy_run_ts,
    "uuid": _uuid,
}
"""How to make an ID of each built-in legacy format; others are reported as not sent."""


@dataclass(slots=True)
class User:
    """A user of the run, its token and its threads."""

    name: str
    token: str
    threads: list[str]


@dataclass(slots=True)
class Population:
    """Everyone the run made: users, their threads, a spy, and a service token."""

    prefix: str
    users: list[User]
    spy_token: str
    service_token: str
    owner: dict[str, User] = field(default_factory=dict)

    def threads(self) -> list[str]:
        """Every thread of every user."""
        return list(self.owner)


async def create_population(dep: Deployment, config: VerifyConfig, prefix: str) -> Population:
    """Create the users' threads. Thread IDs end in `_<digits>` so that, with
    `legacy_run_ts` enabled, `legacy_run` IDs of them are ambiguous too (store-resolved)."""
    secret = config.token_secret
    users = []
    for u in range(config.users):
        name = f"{prefix}-u{u}"
        users.append(User(name, sign_token(secret, name), []))
    population = Population(
        prefix,
        users,
        spy_token=sign_token(secret, f"{prefix}-spy"),
        service_token=sign_token(secret, f"{prefix}-worker", service=True),
    )

    async def make(user: User, t: int) -> None:
        thread_id = f"{user.name}-t{t}_{1000 + t}"
        body = {"thread_id": thread_id, "metadata": {"verify": prefix}}
        await dep.json("POST", "/v1/threads", user.token, expect=201, json=body)
        user.threads.append(thread_id)

    await asyncio.gather(*(make(user, t) for user in users for t in range(config.threads)))
    for user in users:
        user.threads.sort()
        for thread_id in user.threads:
            population.owner[thread_id] = user
    return population


@dataclass(slots=True)
class Run:
    """One run of the workload and what became of it."""

    index: int
    kind: str
    """`canonical` (a demo run started over HTTP) or a legacy format name (ingested)."""
    thread_id: str
    user: User
    offset: float
    run_id: str | None = None
    legacy_id: str | None = None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    refused: list[str] = field(default_factory=list)
    status: str = "planned"
    """The verifier's view: planned, started, ended, start_failed, refused, unfinished."""
    server_status: str | None = None
    """The deployment's run status once it ended (completed, failed, cancelled)."""
    error: str | None = None


def plan_runs(
    config: VerifyConfig,
    population: Population,
    legacy_formats: tuple[str, ...],
    rng: random.Random,
) -> list[Run]:
    """Spread `config.runs` runs over the threads and over `config.duration`; a
    `legacy_share` of them are ingested with legacy IDs, cycling through the formats."""
    threads = population.threads()
    formats = [f for f in legacy_formats if f in LEGACY_MAKERS]
    legacy = round(config.runs * config.legacy_share) if formats else 0
    kinds = [formats[i % len(formats)] for i in range(legacy)] + [CANONICAL] * (
        config.runs - legacy
    )
    rng.shuffle(kinds)
    runs = []
    for index, kind in enumerate(kinds):
        thread_id = threads[index % len(threads)]
        offset = rng.uniform(0, config.duration * 0.8)
        runs.append(Run(index, kind, thread_id, population.owner[thread_id], offset))
    return runs


class Workload:
    """Starts the planned runs at their offsets; waits for the demo runs to end."""

    def __init__(
        self, dep: Deployment, config: VerifyConfig, population: Population, runs: list[Run]
    ) -> None:
        self.dep = dep
        self.config = config
        self.population = population
        self.runs = runs

    async def drive(self, started: float) -> None:
        """Start every run at `started + offset` (monotonic clock)."""
        await asyncio.gather(*(self._one(run, started) for run in self.runs))

    async def _one(self, run: Run, started: float) -> None:
        await asyncio.sleep(max(0.0, started + run.offset - time.monotonic()))
        try:
            if run.kind == CANONICAL:
                await self._start_demo(run)
            else:
                await self._ingest(run)
        except (Unreachable, RuntimeError) as exc:
            run.status = "start_failed"
            run.error = str(exc)[:300]

    async def _start_demo(self, run: Run) -> None:
        body = {
            "agent": "demo",
            "input": {
                "prompt": f"verify {run.index}",
                "steps": self.config.steps,
                "delay_ms": self.config.delay_ms,
            },
        }
        path = f"/v1/threads/{run.thread_id}/runs"
        answer = await self.dep.json("POST", path, run.user.token, expect=202, json=body)
        run.run_id = answer["run_id"]
        run.status = "started"

    async def _ingest(self, run: Run) -> None:
        """Post the run's events one request at a time, as a worker would."""
        run.legacy_id = LEGACY_MAKERS[run.kind](run.thread_id)
        run.status = "started"
        token = self.population.service_token
        for i, type_ in enumerate(run_types(self.config.steps)):
            if type_ == "tool_completed" and self.config.delay_ms:
                await asyncio.sleep(self.config.delay_ms / 1000)
            event: dict[str, Any] = {
                "run_id": run.legacy_id,
                "type": type_,
                "data": {"verify": run.index, "i": i},
                "idempotency_key": f"{self.population.prefix}:{run.index}:{i}",
            }
            if type_ == "run_queued":
                event["data"]["agent"] = LEGACY_AGENT
            if i == 0 and run.kind == "uuid":
                event["thread_id"] = run.thread_id  # teaches the store the run's thread
            run.sent += 1
            answer = await self.dep.request("POST", "/v1/events", token, json=event)
            if answer.status_code != 202:
                run.refused.append(f"{type_}: {answer.status_code} {answer.text[:200]}")
                continue
            accepted = answer.json()["accepted"][0]
            run.accepted.append(accepted)
            run.run_id = accepted["run_id"]
        run.status = "ended" if not run.refused else "refused"

    async def wait_for_runs(self, deadline: float) -> None:
        """Poll demo runs until each has ended, or until `deadline` (monotonic)."""
        pending = [r for r in self.runs if r.kind == CANONICAL and r.status == "started"]
        while pending and time.monotonic() < deadline:
            still = []
            for run in pending:
                try:
                    answer = await self.dep.request(
                        "GET", f"/v1/runs/{run.run_id}", run.user.token, deadline=2.0
                    )
                except Unreachable:
                    still.append(run)
                    continue
                status = answer.json().get("status") if answer.status_code == 200 else None
                if status in ("completed", "failed", "cancelled"):
                    run.status = "ended"
                    run.server_status = str(status)
                else:
                    still.append(run)
            pending = still
            if pending:
                await asyncio.sleep(0.2)
        for run in pending:
            run.status = "unfinished"
