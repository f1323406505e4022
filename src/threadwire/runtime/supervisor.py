"""The supervisor: runs agents as tasks under concurrency limits, a timeout and cancel.

Every run's events are `run_queued`, `agent_started`, the agent's own, then exactly one
terminal event (`agent_completed`, `agent_error` or `run_cancelled`), whatever happens:
the agent runs in a task of its own, and a driver task that is never cancelled by the
supervisor writes the terminal event and the run's final status.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from threadwire.bus.base import Bus
from threadwire.events import (
    AGENT_COMPLETED,
    AGENT_ERROR,
    AGENT_STARTED,
    RUN_CANCELLED,
    RUN_QUEUED,
    Event,
    utcnow,
)
from threadwire.ids import new_run_id
from threadwire.runtime import metrics
from threadwire.runtime.context import RunContext, check_json, new_event
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.errors import AgentError, RunElsewhere, RunFinished, ShuttingDown
from threadwire.runtime.registry import AgentRegistry, AgentSpec
from threadwire.runtime.settle import settle, terminal_events
from threadwire.store.base import (
    STATUS_OF_TERMINAL,
    EventsGone,
    NotFound,
    RunEnded,
    RunRecord,
    RunStatus,
    Store,
)

if TYPE_CHECKING:
    from threadwire.config import Settings

log = logging.getLogger("threadwire.runtime")

DEFAULT_NODE_ID: Final = "local"
WATCH_RECHECK: Final = 5.0
"""Seconds between store checks while waiting for another node's run to end."""
RECENT_EVENTS: Final = 200
SETTLE_POLL: Final = 0.02
StopReason = Literal["cancelled", "shutdown"]

RemoteCancel = Callable[[str, str], Awaitable[RunRecord]]
"""Cancel `run_id` on node `node_id` (cluster mode); returns the run once cancelled, raises
runtime refusals (RunFinished, NotFound, CancelNotDelivered)."""


@dataclass(eq=False)
class _Run:
    """A run this node owns, from submit until its terminal event is written."""

    record: RunRecord
    spec: AgentSpec
    ctx: RunContext
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: StopReason = "cancelled"
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final: RunRecord | None = None
    task: asyncio.Task[None] | None = None
    started: float | None = None

    @property
    def user(self) -> str:
        return self.record.owner or ""


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: RunStatus
    type: str
    data: dict[str, Any]
    result: Any = None
    error: dict[str, Any] | None = None


class Supervisor:
    """Runs agents: global and per-user limits (FIFO queue), timeout, cancel, shutdown."""

    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        registry: AgentRegistry,
        *,
        max_concurrent_runs: int = 64,
        max_runs_per_user: int = 8,
        run_timeout: float = 600.0,
        node_id: str | None = None,
        cancel_grace: float = 5.0,
    ) -> None:
        if max_concurrent_runs < 1 or max_runs_per_user < 1:
            raise ValueError("run limits must be at least 1")
        if run_timeout <= 0 or cancel_grace < 0:
            raise ValueError("run_timeout must be positive and cancel_grace not negative")
        self.store = store
        self.coordinator = coordinator
        self.registry = registry
        self.max_concurrent_runs = max_concurrent_runs
        self.max_runs_per_user = max_runs_per_user
        self.run_timeout = run_timeout
        self.cancel_grace = cancel_grace
        """How long a cancelled or timed-out agent gets to unwind before its run ends."""
        self.node_id = node_id or DEFAULT_NODE_ID
        self.remote_cancel: RemoteCancel | None = None
        """Set in cluster mode: how `cancel` reaches the node that executes a run; unset,
        cancelling another node's run raises RunElsewhere."""
        self._runs: dict[str, _Run] = {}
        self._queue: deque[_Run] = deque()
        self._running = 0
        self._per_user: dict[str, int] = {}
        self._closing = False
        self.stopping = asyncio.Event()
        """Set when shutdown begins (the node stops accepting runs)."""
        self._drivers: set[asyncio.Task[None]] = set()
        # Runs take their slots in queue order; this lock (FIFO in asyncio) keeps their
        # `agent_started` events in that order too, whatever the store's latency.
        self._starting = asyncio.Lock()
        self._stragglers: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_settings(
        cls, store: Store, coordinator: Coordinator, registry: AgentRegistry, settings: Settings
    ) -> Supervisor:
        """A supervisor with the limits of `settings` (`--max-concurrent-runs`,
        `--max-runs-per-user`, `--run-timeout`) and its `node_id`."""
        return cls(
            store,
            coordinator,
            registry,
            max_concurrent_runs=settings.max_concurrent_runs,
            max_runs_per_user=settings.max_runs_per_user,
            run_timeout=settings.run_timeout,
            node_id=settings.node_id,
        )

    @property
    def running_count(self) -> int:
        """Runs executing now on this node."""
        return self._running

    @property
    def queued_count(self) -> int:
        """Runs waiting for a slot on this node."""
        return len(self._queue)

    @property
    def accepting(self) -> bool:
        """False once shutdown began."""
        return not self._closing

    async def start(self) -> list[RunRecord]:
        """End the runs a previous process of this node left unfinished (`agent_error`,
        code `interrupted`), so every run still gets its one terminal event. Returns them.

        A run whose terminal event is stored already (the process died between writing
        it and recording the status) only gets that status recorded."""
        by_thread: dict[str, list[RunRecord]] = {}
        for record in await self.store.list_unfinished_runs(node_id=self.node_id):
            if record.run_id not in self._runs:
                by_thread.setdefault(record.thread_id, []).append(record)
        recovered = []
        error = {"code": "interrupted", "message": "the node stopped before the run ended"}
        for thread_id, records in by_thread.items():
            ended = await terminal_events(self.store, thread_id, (r.run_id for r in records))
            for record in records:
                terminal = ended.get(record.run_id)
                if terminal is not None:
                    recovered.append(await settle(self.store, record, terminal))
                    continue
                outcome = _Outcome("failed", AGENT_ERROR, error, None, error)
                try:
                    recovered.append(await self._end_unowned(record, outcome))
                except RunEnded as refused:
                    recovered.append(await self._settle_ended(record, refused))
        return recovered

    async def submit(
        self, *, user_id: str, thread_id: str, agent: str, input: dict[str, Any]
    ) -> RunRecord:
        """Check the agent and its input, record a queued run, emit `run_queued`, schedule.

        Raises UnknownAgent, InvalidInput (before anything is created), NotFound for a
        missing thread, ShuttingDown once shutdown began. Returns the queued run.
        """
        if self._closing:
            raise ShuttingDown()
        spec = self.registry.get(agent)
        checked = spec.check_input(input)
        if await self.store.get_thread(thread_id) is None:
            raise NotFound(thread_id)
        run_id = new_run_id(thread_id)
        record = RunRecord(
            run_id=run_id,
            thread_id=thread_id,
            agent=spec.name,
            status="queued",
            created_at=utcnow(),
            input=checked,
            owner=user_id,
            node_id=self.node_id,
        )
        ctx = RunContext(
            self.coordinator, user_id=user_id, thread_id=thread_id, run_id=run_id, agent=spec.name
        )
        run = _Run(record, spec, ctx)
        self._runs[run_id] = run
        # Shielded: a caller that goes away mid-submit leaves a run that is queued and
        # announced, or one that never existed; never a half-made one.
        await asyncio.shield(self._enqueue(run))
        return record

    async def _enqueue(self, run: _Run) -> None:
        async with run.lock:
            try:
                await self.store.create_run(run.record)
            except BaseException:
                del self._runs[run.record.run_id]
                run.done.set()  # final stays None: the run never existed
                raise
            try:
                await run.ctx._emit(RUN_QUEUED, {"agent": run.spec.name})
            except BaseException:
                log.exception("run %s: run_queued could not be stored", run.record.run_id)
                error = {"code": "internal", "message": "the run could not be queued"}
                await self._finalize(run, _Outcome("failed", AGENT_ERROR, error, None, error))
                raise
            if self._closing:
                await self._finalize(run, _cancelled("shutdown"))
                return
            self._queue.append(run)
            metrics.runs_queued.inc()
            self._pump()

    def _pump(self) -> None:
        """Start queued runs, oldest first, while the limits allow; a user at their
        limit does not hold up the users behind them."""
        if self._closing:
            return
        for run in list(self._queue):
            if self._running >= self.max_concurrent_runs:
                break
            if self._per_user.get(run.user, 0) >= self.max_runs_per_user:
                continue
            self._queue.remove(run)
            metrics.runs_queued.dec()
            self._running += 1
            self._per_user[run.user] = self._per_user.get(run.user, 0) + 1
            metrics.runs_running.inc()
            run.task = asyncio.create_task(self._drive(run), name=f"run {run.record.run_id}")
            self._drivers.add(run.task)
            run.task.add_done_callback(self._drivers.discard)

    def _release(self, run: _Run) -> None:
        self._running -= 1
        left = self._per_user[run.user] - 1
        if left:
            self._per_user[run.user] = left
        else:
            del self._per_user[run.user]
        metrics.runs_running.dec()

    async def _drive(self, run: _Run) -> None:
        """Run the agent and write its one terminal event; the slot is freed only after
        it, so events never show more concurrent runs than the limits allow."""
        try:
            try:
                if run.stop.is_set():
                    outcome = _cancelled(run.stop_reason)
                else:
                    outcome = await self._execute(run)
            except RunEnded:
                # Another writer ended the run before it started: the cluster, which took
                # this node for dead (0064). `_finalize` finds that end and records it.
                error = {"code": "ended_elsewhere", "message": "the run was ended elsewhere"}
                outcome = _Outcome("failed", AGENT_ERROR, error, None, error)
            except Exception:
                log.exception("run %s: the runtime failed to run the agent", run.record.run_id)
                error = {"code": "internal", "message": "the run could not be executed"}
                outcome = _Outcome("failed", AGENT_ERROR, error, None, error)
            await self._finalize(run, outcome)
        except Exception:  # the store failed us; start() ends the run after a restart
            log.exception("run %s: the terminal event could not be stored", run.record.run_id)
        finally:
            self._release(run)
            self._pump()

    async def _execute(self, run: _Run) -> _Outcome:
        async with self._starting:
            if run.stop.is_set():  # cancelled while waiting for its turn to start
                return _cancelled(run.stop_reason)
            run.started = time.monotonic()
            await self.store.update_run(run.record.run_id, status="running", started_at=utcnow())
            await run.ctx._emit(AGENT_STARTED, {"agent": run.spec.name})
        agent = asyncio.create_task(self._call(run), name=f"agent {run.record.run_id}")
        stopped = asyncio.create_task(run.stop.wait())
        try:
            await asyncio.wait(
                {agent, stopped}, timeout=self.run_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        if agent.done():
            return self._outcome_of(run, agent)
        if run.stop.is_set():
            outcome = _cancelled(run.stop_reason)
        else:
            message = f"the run took longer than its limit of {self.run_timeout:g} s"
            error = {"code": "timeout", "message": message}
            outcome = _Outcome("failed", AGENT_ERROR, error, None, error)
        await self._stop_agent(run, agent)
        return outcome

    async def _call(self, run: _Run) -> Any:
        result = run.spec.fn(run.ctx, copy.deepcopy(run.record.input))
        if inspect.isawaitable(result):
            result = await result
        # An event emitted without waiting that could not be stored fails the run here,
        # before its outcome is decided, rather than end as a quiet gap.
        await run.ctx.flush()
        return result

    async def _stop_agent(self, run: _Run, agent: asyncio.Task[Any]) -> None:
        """Cancel the agent's task and give it `cancel_grace` to unwind (its last
        events land before the terminal one); one that ignores it is left behind."""
        run.ctx.cancelled.set()
        agent.cancel()
        await asyncio.wait({agent}, timeout=self.cancel_grace)
        if not agent.done():
            log.warning("run %s: agent ignored cancellation; ending the run", run.record.run_id)
            self._stragglers.add(agent)
        agent.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._stragglers.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it

    def _outcome_of(self, run: _Run, agent: asyncio.Task[Any]) -> _Outcome:
        if run.stop.is_set() and agent.cancelled():
            return _cancelled(run.stop_reason)
        exc = asyncio.CancelledError() if agent.cancelled() else agent.exception()
        if exc is None:
            result = agent.result()
            try:
                check_json(result, "the result")
            except TypeError:
                message = f"the agent returned a {result.__class__.__name__}, which is not JSON"
                error = {"code": "invalid_result", "message": message}
                return _Outcome("failed", AGENT_ERROR, error, None, error)
            return _Outcome("completed", AGENT_COMPLETED, {"result": result}, result)
        if isinstance(exc, AgentError):
            error = {"code": exc.code, "message": exc.message}
        else:
            log.error("run %s: agent %r raised", run.record.run_id, run.spec.name, exc_info=exc)
            message = f"the agent failed ({exc.__class__.__name__})"
            error = {"code": "agent_exception", "message": message}
        return _Outcome("failed", AGENT_ERROR, error, None, error)

    async def _finalize(self, run: _Run, outcome: _Outcome) -> RunRecord:
        """Write the terminal event, then record the final status: exactly once per run.

        Event first (ADR 0066): a crash between the two leaves a run still unfinished in
        the store, which recovery finds, sees the event, and only settles. The other
        order could leave a finished run without a terminal event, which nothing finds.
        A terminal event that cannot be stored leaves the status unfinished too, so the
        node's next start (or the cluster, if the node dies) ends the run. One the store
        refuses because the run has ended already (the cluster ended it, taking this node
        for dead: 0064, 0111) is dropped, and the run gets the status of its stored end."""
        changes: dict[str, Any] = {
            "status": outcome.status,
            "finished_at": utcnow(),
            "result": outcome.result,
            "error": outcome.error,
        }
        final = run.record.evolve(**changes)
        try:
            try:
                terminal = await run.ctx._finish(outcome.type, outcome.data)
            except RunEnded as refused:
                final = await self._settle_ended(run.record, refused)
            else:
                changes["finished_at"] = terminal.ts
                try:
                    final = await self.store.update_run(run.record.run_id, **changes)
                except Exception:
                    log.exception(
                        "run %s: final status could not be stored after its terminal event; "
                        "recovery will record it",
                        run.record.run_id,
                    )
                    final = run.record.evolve(**changes)
        finally:
            run.final = final
            self._runs.pop(run.record.run_id, None)
            run.done.set()
            metrics.runs_total.labels(agent=run.spec.name, status=final.status).inc()
            if run.started is not None:
                elapsed = time.monotonic() - run.started
                metrics.run_duration_seconds.labels(agent=run.spec.name).observe(elapsed)
        return final

    async def _settle_ended(self, record: RunRecord, refused: RunEnded) -> RunRecord:
        """The run as its stored end says, after the store refused this node's end of it."""
        log.warning(
            "run %s ended before this node could end it (the cluster took the node for "
            "dead, or its worker ended it); the stored end stands",
            record.run_id,
        )
        if refused.terminal is not None:
            return await settle(self.store, record, refused.terminal)
        return await self.store.get_run(record.run_id) or record

    async def _end_unowned(self, record: RunRecord, outcome: _Outcome) -> RunRecord:
        """End a run no task of this process owns (an orphan, an external worker's):
        the terminal event first, then the status (ADR 0066)."""
        [terminal] = await self.coordinator.emit(
            [new_event(record.run_id, record.thread_id, outcome.type, outcome.data)]
        )
        changes = {"status": outcome.status, "finished_at": terminal.ts, "error": outcome.error}
        final = await self.store.update_run(record.run_id, **changes)
        metrics.runs_total.labels(agent=record.agent, status=outcome.status).inc()
        return final

    async def cancel(self, run_id: str, *, route: bool = True) -> RunRecord:
        """Cancel a queued or running run; returns it `cancelled` once `run_cancelled` is
        written. Raises RunFinished for a finished run, NotFound for an unknown one.

        A run of another node goes to that node through `remote_cancel` (when set and
        `route`; the owner's own handler passes `route=False`, so a request never bounces
        between nodes), else raises RunElsewhere."""
        run = self._runs.get(run_id)
        if run is None:
            record = await self.store.get_run(run_id)
            if record is None:
                raise NotFound(run_id)
            run = self._runs.get(record.run_id)
            if run is None:
                return await self._cancel_unowned(record, route=route)
        async with run.lock:  # a submit still announcing the run finishes first
            pass
        if run in self._queue:
            self._queue.remove(run)
            metrics.runs_queued.dec()
            await self._finalize(run, _cancelled("cancelled"))
        elif run.task is not None and not run.stop.is_set():
            run.stop_reason = "cancelled"
            run.stop.set()
        await run.done.wait()
        final = run.final
        if final is None:
            raise NotFound(run_id)
        if final.status != "cancelled":
            raise RunFinished(final.run_id, final.status)
        return final

    async def _cancel_unowned(self, record: RunRecord, *, route: bool) -> RunRecord:
        if record.finished:
            raise RunFinished(record.run_id, record.status)
        if record.node_id is not None and record.node_id != self.node_id:
            if route and self.remote_cancel is not None:
                return await self.remote_cancel(record.run_id, record.node_id)
            raise RunElsewhere(record.run_id, record.node_id)
        try:
            return await self._end_unowned(record, _cancelled("cancelled"))
        except RunEnded as refused:  # it ended meanwhile (its worker, the cluster)
            final = await self._settle_ended(record, refused)
            raise RunFinished(final.run_id, final.status) from None

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:  # noqa: ASYNC109
        """The run once it reached a final status (TimeoutError after `timeout` seconds).

        Runs of this node are awaited directly; others (external workers') by watching
        the bus for their terminal event.
        """
        run = self._runs.get(run_id)
        if run is not None:
            return await self._wait_owned(run, timeout)
        record = await self.store.get_run(run_id)
        if record is None:
            raise NotFound(run_id)
        if record.finished:
            return record
        run = self._runs.get(record.run_id)
        if run is not None:
            return await self._wait_owned(run, timeout)
        return await asyncio.wait_for(self._watch(record, self.coordinator.bus), timeout)

    async def settled(self, run_id: str, within: float) -> RunRecord | None:
        """The run once the store records its final status, which follows the terminal
        event by one write (ADR 0066); None if it does not within `within` seconds.

        For readers that promise "the run reads finished once its events ended" (the
        LangGraph stream). This node's runs are awaited; another node's status has no
        announcement of its own, so the store is read again every 20 ms."""
        run = self._runs.get(run_id)
        if run is not None:
            try:
                await asyncio.wait_for(run.done.wait(), within)
            except TimeoutError:
                return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            record = await self.store.get_run(run_id)
            if record is None or record.finished:
                return record
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(SETTLE_POLL)

    async def _wait_owned(self, run: _Run, within: float | None) -> RunRecord:
        await asyncio.wait_for(run.done.wait(), within)
        if run.final is None:
            raise NotFound(run.record.run_id)
        return run.final

    async def _watch(self, record: RunRecord, bus: Bus) -> RunRecord:
        """Wait for a run of another node or worker to end: its terminal event on the bus,
        or, since the bus is only a doorbell (a Redis outage loses announcements), in
        the store, checked at once and every `WATCH_RECHECK` seconds."""
        ended: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def listener(event: Event) -> None:
            if event.run_id == record.run_id and event.is_terminal and not ended.done():
                ended.set_result(event)

        await bus.subscribe(record.thread_id, listener)
        try:
            while True:
                latest = await self.store.get_run(record.run_id)
                if latest is not None and latest.finished:
                    return latest
                event = await self._recent_terminal(record)
                if event is not None:
                    break
                try:
                    event = await asyncio.wait_for(asyncio.shield(ended), WATCH_RECHECK)
                    break
                except TimeoutError:
                    continue
        finally:
            await bus.unsubscribe(record.thread_id, listener)
        latest = await self.store.get_run(record.run_id) or record
        if latest.finished:
            return latest
        # Writers store the event before the status (ADR 0066); this status is not in yet.
        return latest.evolve(status=STATUS_OF_TERMINAL[event.type], finished_at=event.ts)

    async def _recent_terminal(self, record: RunRecord) -> Event | None:
        """The run's terminal event among the thread's latest events, if stored there.

        Writers store the event a moment before the status, so a run whose status is not
        final yet has its terminal event, if any, near the head of its thread."""
        head = await self.store.head_seq(record.thread_id)
        try:
            tail = await self.store.read_events(
                record.thread_id, after_seq=max(0, head - RECENT_EVENTS), limit=RECENT_EVENTS
            )
        except EventsGone:
            return None
        for event in tail:
            if event.run_id == record.run_id and event.is_terminal:
                return event
        return None

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; cancel queued runs; give running ones `grace` seconds to end,
        then cancel them. Returns once every run has its terminal event and status."""
        self._closing = True
        self.stopping.set()
        queued = list(self._queue)
        self._queue.clear()
        metrics.runs_queued.dec(len(queued))
        for run in queued:
            await self._finalize(run, _cancelled("shutdown"))
        await _wait_done(list(self._runs.values()), grace)
        for run in list(self._runs.values()):
            if not run.stop.is_set():
                run.stop_reason = "shutdown"
                run.stop.set()
        await _wait_done(list(self._runs.values()), None)
        if self._drivers:
            await asyncio.gather(*self._drivers, return_exceptions=True)


def _cancelled(reason: StopReason) -> _Outcome:
    return _Outcome("cancelled", RUN_CANCELLED, {"reason": reason})


async def _wait_done(runs: list[_Run], within: float | None) -> None:
    if not runs:
        return
    waiters = [asyncio.create_task(r.done.wait()) for r in runs]
    try:
        await asyncio.wait(waiters, timeout=within)
    finally:
        for waiter in waiters:
            waiter.cancel()
