"""One verification run, start to end: `await verify(config)` returns a `Report`.

Phases: (spawn nodes), create users and threads, connect subscribers and the spy,
start runs over `duration` while faults are injected, stop the faults, wait for every
run to end, read the store's events back (the ground truth), let every subscriber
catch up to each thread's head, stop, and judge. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from threadwire.verify.api import Deployment
from threadwire.verify.checks import Truth, check_store, fault_impact, judge_all
from threadwire.verify.config import VerifyConfig, legacy_formats_default
from threadwire.verify.faults import FaultInjector
from threadwire.verify.ledger import Examples, Latencies
from threadwire.verify.report import Latency, Report
from threadwire.verify.spawn import LocalCluster
from threadwire.verify.subscriber import Spy, Subscriber
from threadwire.verify.workload import Population, Run, Workload, create_population, plan_runs

TICK = 0.25
GAP_GRACE = 1.0
"""Seconds a subscriber that reached every head gets for an open gap to fill."""


@dataclass(slots=True)
class Progress:
    """A snapshot for a live display."""

    phase: str
    elapsed: float
    runs_started: int
    runs_total: int
    events_received: int
    reconnects: int
    lagging_closes: int
    faults: int


ProgressFn = Callable[[Progress], None]


class _Run:
    """The state of one verification run (internal to `verify`)."""

    def __init__(self, config: VerifyConfig, on_progress: ProgressFn | None) -> None:
        self.config = config
        self.on_progress = on_progress
        self.rng = random.Random(config.seed)
        self.prefix = config.prefix or f"vf{secrets.token_hex(3)}"
        self.examples = Examples()
        self.latencies = Latencies(random.Random(self.rng.random()))
        self.subscribers: list[Subscriber] = []
        self.spy: Spy | None = None
        self.runs: list[Run] = []
        self.injector: FaultInjector | None = None
        self.phase = "starting"
        self.t0 = time.monotonic()
        self.notes: list[str] = []
        self.keep_logs = True
        """Keep the spawned nodes' logs (a failed or aborted run); else removed."""

    def progress(self) -> Progress:
        subs = self.subscribers
        return Progress(
            self.phase,
            time.monotonic() - self.t0,
            sum(r.status != "planned" for r in self.runs),
            len(self.runs),
            sum(s.counters.events for s in subs),
            sum(s.counters.reconnects for s in subs),
            sum(s.counters.lagging_closes for s in subs),
            len(self.injector.faults) if self.injector else 0,
        )

    async def ticker(self) -> None:
        while self.on_progress is not None:
            self.on_progress(self.progress())
            await asyncio.sleep(TICK)


async def verify(config: VerifyConfig, on_progress: ProgressFn | None = None) -> Report:
    """Drive the configured load against the deployment and judge every delivery."""
    config.check()
    state = _Run(config, on_progress)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    ticker = asyncio.create_task(state.ticker())
    try:
        async with _target(config, state) as (urls, cluster):
            report = await _drive(state, urls, cluster)
            state.keep_logs = not report.ok
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    report.started_at = started_at
    report.elapsed_s = round(time.monotonic() - state.t0, 2)
    report.notes.extend(state.notes)
    return report


@contextlib.asynccontextmanager
async def _target(
    config: VerifyConfig, state: _Run
) -> AsyncIterator[tuple[list[str], LocalCluster | None]]:
    """The deployment's URLs; with `--spawn`, nodes started here and stopped after."""
    if not config.spawn:
        yield list(config.urls), None
        return
    state.phase = "spawning"
    workdir = Path(tempfile.mkdtemp(prefix="threadwire-verify-"))
    cluster = LocalCluster(
        config.spawn,
        workdir,
        secret=config.token_secret,
        database_url=config.database_url,
        bus_url=config.bus_url,
        spawn_redis=config.spawn_redis,
        extra_args=config.node_args,
    )
    try:
        await cluster.start()
        yield cluster.urls, cluster
    finally:
        statuses = await cluster.stop()
        bad = {name: code for name, code in statuses.items() if code not in (0, None)}
        if bad:
            state.notes.append(f"spawned processes exited with {bad} on SIGTERM")
        if bad or state.keep_logs:
            state.notes.append(f"logs of the spawned processes: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _drive(state: _Run, urls: list[str], cluster: LocalCluster | None) -> Report:
    config = state.config
    dep = Deployment(urls)
    stop_clients = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        state.phase = "setting up"
        population = await create_population(dep, config, state.prefix)
        _make_clients(state, population, dep)
        tasks = [asyncio.create_task(s.run(stop_clients)) for s in state.subscribers]
        if state.spy is not None:
            tasks.append(asyncio.create_task(state.spy.run(stop_clients)))
        await _wait_all([s.subscribed for s in state.subscribers], 15.0)
        formats = config.legacy_formats or legacy_formats_default(all_registered=bool(cluster))
        state.runs = plan_runs(config, population, formats, state.rng)
        workload = Workload(dep, config, population, state.runs)
        await _load(state, workload, cluster)
        state.phase = "waiting for runs"
        await workload.wait_for_runs(time.monotonic() + config.settle_timeout)
        state.phase = "reading the store"
        truth = await _read_truth(dep, population)
        state.phase = "settling"
        heads = {t: len(events) for t, events in truth.items()}
        for sub in state.subscribers:
            sub.settle(heads)
        reached = await _wait_all([s.reached for s in state.subscribers], config.settle_timeout)
        # A gap can still fill (late, out of order) once the head arrived; one that has
        # not within the grace never will on a working server: it is judged lost.
        gaps_closed = await _wait_all([s.caught_up for s in state.subscribers], GAP_GRACE)
        caught_up = reached and gaps_closed
    finally:
        stop_clients.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dep.aclose()
    state.phase = "judging"
    return _judge(state, truth, caught_up, urls)


def _make_clients(state: _Run, population: Population, dep: Deployment) -> None:
    config = state.config
    ws_urls = dep.ws_urls()
    for user in population.users:
        owned = frozenset(user.threads)
        for i in range(config.subscribers):
            rng = random.Random(state.rng.random())
            state.subscribers.append(
                Subscriber(
                    f"{user.name}/s{i}", user.token, user.threads, owned, ws_urls,
                    config.chaos, rng, state.latencies, state.examples,
                )
            )  # fmt: skip
    if config.spy:
        state.spy = Spy(population.spy_token, population.threads(), ws_urls)


async def _load(state: _Run, workload: Workload, cluster: LocalCluster | None) -> None:
    """Start the runs over `duration`, injecting server faults meanwhile."""
    config = state.config
    state.phase = "load"
    stop_faults = asyncio.Event()
    injector_task = None
    if cluster is not None and config.chaos.server_side:
        state.injector = FaultInjector(cluster, config.chaos, random.Random(state.rng.random()))
        injector_task = asyncio.create_task(state.injector.run(stop_faults))
    started = time.monotonic()
    try:
        async with asyncio.timeout(config.duration + config.settle_timeout):
            await workload.drive(started)
            await asyncio.sleep(max(0.0, started + config.duration - time.monotonic()))
    except TimeoutError:
        state.notes.append("the load phase overran its deadline; unstarted runs were skipped")
    finally:
        stop_faults.set()
        if injector_task is not None:
            await injector_task


async def _read_truth(dep: Deployment, population: Population) -> Truth:
    async def read(thread_id: str) -> tuple[str, list[dict[str, object]]]:
        token = population.owner[thread_id].token
        return thread_id, await dep.thread_events(thread_id, token)

    pairs = await asyncio.gather(*(read(t) for t in population.threads()))
    return dict(pairs)


async def _wait_all(events: list[asyncio.Event], limit: float) -> bool:
    """Wait until every event is set; False if `limit` seconds passed first."""
    try:
        async with asyncio.timeout(limit):
            for event in events:
                await event.wait()
    except TimeoutError:
        return False
    return True


def _judge(state: _Run, truth: Truth, caught_up: bool, urls: list[str]) -> Report:
    config = state.config
    store_problems, outcomes = check_store(truth, state.runs, config.steps)
    tally, forms, lost_at = judge_all(state.subscribers, truth, state.runs, state.examples)
    faults = state.injector.faults if state.injector else []
    fault_impact(faults, state.subscribers, truth, lost_at, config.delay_threshold_ms)
    counters = [s.counters for s in state.subscribers]
    connections = {
        name: sum(getattr(c, name) for c in counters)
        for name in (
            "lagging_closes", "reconnects", "drops", "rewinds", "slow_sessions",
            "connect_failures", "refused", "frames",
        )
    }  # fmt: skip
    spy = state.spy
    spy_counts = {
        "expected": len(spy.victims) if spy else 0,
        "refusals": spy.refusals if spy else 0,
        "breaches": spy.breaches if spy else 0,
        "events": spy.events if spy else 0,
    }
    examples = state.examples.items + (spy.examples.items if spy else [])
    fatal = [s.fatal for s in state.subscribers if s.fatal]
    behind = [s.name for s in state.subscribers if not s.reached.is_set()]
    if behind:
        state.notes.append(f"{len(behind)} subscribers had not caught up by the deadline")
    return Report(
        target=urls,
        spawned=config.spawn,
        chaos=config.chaos.describe(),
        started_at="",
        elapsed_s=0.0,
        users=config.users,
        threads=len(truth),
        subscribers=len(state.subscribers),
        runs=dict(outcomes),
        events_stored=sum(len(e) for e in truth.values()),
        tally=tally,
        latency_ms=Latency.of(state.latencies.samples, state.latencies.count),
        connections=connections,
        spy=spy_counts,
        forms=forms,
        faults=faults,
        store_problems=store_problems + fatal,
        examples=examples,
        caught_up=caught_up,
    )
