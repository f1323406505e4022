"""From stored events to trace rows: one `events` row each, a `tool_calls` row per
completed tool call, a `runs` row when a run's terminal event arrives.

The live sink and the backfill feed the same RunTracker, so both write identical rows
for the same events (and the ReplacingMergeTree tables collapse the copies).

Definitions (docs/traces.md):
- run `created_at`: its `run_queued` event (else the run record, else its first event);
  `started_at`: its `agent_started` event (else the run record's `started_at`: an
  external worker's run starts when threadwire first saw it); `finished_at`: its
  terminal event; `duration_ms` = finished - started (None when it never started).
- tool `duration_ms`: `data.duration_ms` of `tool_completed`, else the time since the
  matching `tool_executing` (same `call_id`, else same tool name, oldest first).
- legacy: the event carries `data.legacy_run_id` (a producer used a legacy run ID).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from threadwire.events import (
    AGENT_ERROR,
    AGENT_STARTED,
    RUN_QUEUED,
    TERMINAL_TYPES,
    TOOL_COMPLETED,
    TOOL_EXECUTING,
    Event,
)
from threadwire.store.base import STATUS_OF_TERMINAL, RunRecord
from threadwire.traces.schema import EVENTS, RUNS, TOOL_CALLS

MAX_ERROR_CHARS: Final = 1000


@dataclass(slots=True)
class TraceRows:
    """Rows for each data table, values in the table's column order."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    tool_calls: list[tuple[Any, ...]] = field(default_factory=list)
    runs: list[tuple[Any, ...]] = field(default_factory=list)

    def by_table(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...], list[tuple[Any, ...]]]]:
        """(table, columns, types, rows) for each table with rows."""
        pairs = ((EVENTS, self.events), (TOOL_CALLS, self.tool_calls), (RUNS, self.runs))
        return [(t.name, t.column_names, t.column_types, rows) for t, rows in pairs if rows]

    def extend(self, other: TraceRows) -> None:
        """Append `other`'s rows to these."""
        self.events.extend(other.events)
        self.tool_calls.extend(other.tool_calls)
        self.runs.extend(other.runs)

    def __len__(self) -> int:
        return len(self.events) + len(self.tool_calls) + len(self.runs)


@dataclass(slots=True)
class _OpenRun:
    thread_id: str
    first_ts: datetime
    created_at: datetime | None = None
    started_at: datetime | None = None
    legacy: bool = False
    tools: list[tuple[tuple[str, object], str, datetime]] = field(default_factory=list)
    """Tool calls begun and not yet completed: (pairing key, tool, ts)."""


@dataclass(frozen=True, slots=True)
class _Known:
    agent: str
    created_at: datetime | None
    started_at: datetime | None
    from_record: bool


def error_text(value: object) -> str:
    """A short text for an error: a string as is, an object's `code` (else `message`),
    anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, dict):
        for key in ("code", "message", "type"):
            if isinstance(value.get(key), str):
                return str(value[key])[:MAX_ERROR_CHARS]
    if isinstance(value, str):
        return value[:MAX_ERROR_CHARS]
    return json.dumps(value, default=str)[:MAX_ERROR_CHARS]


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000.0


class RunTracker:
    """Turns events, in per-thread order, into trace rows; keeps what a run's row needs
    until its terminal event (bounded: the least recently active runs are forgotten)."""

    def __init__(self, *, max_open_runs: int = 100_000, max_known_runs: int = 200_000) -> None:
        self._open: OrderedDict[str, _OpenRun] = OrderedDict()
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self.max_open_runs = max_open_runs
        self.max_known_runs = max_known_runs
        self.evicted = 0
        """Open runs forgotten to stay within `max_open_runs` (their rows lack a start)."""

    def note_run(self, run: RunRecord) -> None:
        """Remember a run's agent and times (from the store or the runtime)."""
        self._remember(run.run_id, _Known(run.agent, run.created_at, run.started_at, True))

    def _remember(self, run_id: str, known: _Known) -> None:
        self._known[run_id] = known
        self._known.move_to_end(run_id)
        while len(self._known) > self.max_known_runs:
            self._known.popitem(last=False)

    def agent_of(self, run_id: str) -> str | None:
        """The agent of `run_id` when known."""
        known = self._known.get(run_id)
        return known.agent if known else None

    def unknown_runs(self, events: Iterable[Event]) -> set[str]:
        """Run IDs among `events` whose record the rows need and the tracker lacks: the
        agent is named by no event, or the run ends with no `agent_started` seen (its
        start then comes from the record, as a backfill would take it)."""
        need: set[str] = set()
        named: set[str] = set()
        started: set[str] = set()
        for e in events:
            known = self._known.get(e.run_id)
            if known is not None and known.from_record:
                continue
            if _agent_in(e) is not None:
                named.add(e.run_id)
            if e.type == AGENT_STARTED:
                started.add(e.run_id)
            if known is None and e.run_id not in named:
                need.add(e.run_id)
            elif e.type in TERMINAL_TYPES and e.run_id not in started:
                run = self._open.get(e.run_id)
                if run is None or run.started_at is None:
                    need.add(e.run_id)
        return need

    def rows(self, events: Iterable[Event]) -> TraceRows:
        """The rows for `events` (given in each thread's seq order)."""
        out = TraceRows()
        for event in events:
            self._one(event, out)
        return out

    def _one(self, event: Event, out: TraceRows) -> None:
        data = event.data
        named = _agent_in(event)
        if named is not None and self.agent_of(event.run_id) != named:
            old = self._known.get(event.run_id) or _Known("", None, None, False)
            self._remember(event.run_id, replace(old, agent=named))
        agent = self.agent_of(event.run_id) or ""
        legacy_run_id = data.get("legacy_run_id")
        legacy = isinstance(legacy_run_id, str) and legacy_run_id != ""
        tool = data.get("tool") if event.type in (TOOL_EXECUTING, TOOL_COMPLETED) else None
        tool = tool if isinstance(tool, str) else ""
        failed_tool = event.type == TOOL_COMPLETED and data.get("error") is not None
        is_error = event.type == AGENT_ERROR or failed_tool
        out.events.append(
            (
                event.thread_id,
                event.ts,
                event.seq,
                event.event_id,
                event.run_id,
                event.type,
                agent,
                tool,
                int(is_error),
                int(legacy),
                legacy_run_id if legacy else "",
            )
        )
        run = self._touch(event)
        run.legacy = run.legacy or legacy
        if event.type == RUN_QUEUED and run.created_at is None:
            run.created_at = event.ts
        elif event.type == AGENT_STARTED and run.started_at is None:
            run.started_at = event.ts
        elif event.type == TOOL_EXECUTING:
            run.tools.append((_call_key(data, tool), tool, event.ts))
        elif event.type == TOOL_COMPLETED:
            out.tool_calls.append(self._tool_row(event, run, agent, tool, failed_tool, legacy))
        if event.type in TERMINAL_TYPES:
            out.runs.append(self._run_row(event, run, agent))
            del self._open[event.run_id]

    def _touch(self, event: Event) -> _OpenRun:
        run = self._open.get(event.run_id)
        if run is None:
            run = self._open[event.run_id] = _OpenRun(event.thread_id, event.ts)
            while len(self._open) > self.max_open_runs:
                self._open.popitem(last=False)
                self.evicted += 1
        else:
            self._open.move_to_end(event.run_id)
        return run

    def _tool_row(
        self, event: Event, run: _OpenRun, agent: str, tool: str, failed: bool, legacy: bool
    ) -> tuple[Any, ...]:
        data = event.data
        begun = _pop_call(run, _call_key(data, tool), tool)
        reported = data.get("duration_ms")
        if isinstance(reported, int | float) and not isinstance(reported, bool):
            duration: float | None = float(reported)
        else:
            duration = _ms(event.ts, begun) if begun is not None else None
        return (
            tool,
            event.ts,
            event.event_id,
            event.thread_id,
            event.run_id,
            event.seq,
            agent,
            _call_id(data),
            duration,
            int(failed),
            error_text(data.get("error")) if failed else "",
            int(legacy),
        )

    def _run_row(self, event: Event, run: _OpenRun, agent: str) -> tuple[Any, ...]:
        known = self._known.get(event.run_id)
        created = run.created_at or (known.created_at if known else None) or run.first_ts
        started = run.started_at or (known.started_at if known else None)
        status = STATUS_OF_TERMINAL[event.type]
        return (
            event.run_id,
            run.thread_id,
            agent,
            status,
            created,
            started,
            event.ts,
            _ms(event.ts, started) if started is not None else None,
            _ms(started, created) if started is not None else None,
            int(status == "failed"),
            _run_error(event.data) if status == "failed" else "",
            int(run.legacy),
        )


def _run_error(data: dict[str, Any]) -> str:
    """`agent_error` carries {"code", "message"} (the runtime) or {"error": ...}."""
    return error_text(data["error"] if data.get("error") is not None else data)


def _agent_in(event: Event) -> str | None:
    if event.type in (RUN_QUEUED, AGENT_STARTED):
        agent = event.data.get("agent")
        if isinstance(agent, str) and agent:
            return agent
    return None


def _call_id(data: dict[str, Any]) -> str:
    call_id = data.get("call_id")
    return call_id if isinstance(call_id, str) else ""


def _call_key(data: dict[str, Any], tool: str) -> tuple[str, object]:
    """What pairs a tool_completed with its tool_executing: the runtime's per-run call
    index, else the producer's call_id, else the tool name (oldest open call first)."""
    index = data.get("call")
    if isinstance(index, int) and not isinstance(index, bool):
        return ("call", index)
    call_id = _call_id(data)
    return ("id", call_id) if call_id else ("tool", tool)


def _pop_call(run: _OpenRun, key: tuple[str, object], tool: str) -> datetime | None:
    """The start of the open call that `key` names (by tool name when none does)."""
    for wanted in (key, ("tool", tool)):
        for i, (begun_key, begun_tool, ts) in enumerate(run.tools):
            if begun_key == wanted or (wanted[0] == "tool" and begun_tool == tool):
                del run.tools[i]
                return ts
    return None
