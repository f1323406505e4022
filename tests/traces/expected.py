"""The report's figures computed independently: plain SQL on the SQLite store file
(stdlib sqlite3, not SQLAlchemy, not the trace code) and Python arithmetic."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TERMINAL = {"agent_completed": "completed", "agent_error": "failed", "run_cancelled": "cancelled"}


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def pcts(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 of `values`."""
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99)}


def _ts(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class _Run:
    agent: str
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    status: str | None = None
    seen_start: bool = False
    seen_queued: bool = False


@dataclass
class Expected:
    """Per agent and per (agent, tool) figures, shaped like the report's JSON."""

    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    tools: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def expected_from_sqlite(db_path: Path, *, since: datetime | None = None) -> Expected:
    """What the report must say for the store at `db_path`, over events/runs >= since."""
    floor = since or datetime(1970, 1, 1, tzinfo=UTC)
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute(
            "SELECT e.run_id, e.type, e.ts, e.data, r.agent, r.created_at, r.started_at "
            "FROM events e "
            "JOIN runs r ON r.run_id = e.run_id ORDER BY e.thread_id, e.seq"
        ).fetchall()
    finally:
        con.close()
    runs: dict[str, _Run] = {}
    per_run_events: dict[tuple[str, str], list[bool]] = defaultdict(list)
    tool_latency: dict[tuple[str, str], list[float]] = defaultdict(list)
    tool_errors: dict[tuple[str, str], int] = defaultdict(int)
    for run_id, type_, ts_text, data_text, agent, record_created, record_started in rows:
        ts = _ts(ts_text)
        data = json.loads(data_text)
        # a run with no run_queued / agent_started (an external worker's) was created
        # and started when the store first recorded it
        run = runs.setdefault(
            run_id,
            _Run(agent, created=_ts(record_created),
                 started=_ts(record_started) if record_started else None),
        )
        if type_ == "run_queued" and not run.seen_queued:
            run.created, run.seen_queued = ts, True
        elif type_ == "agent_started" and not run.seen_start:
            run.started, run.seen_start = ts, True
        elif type_ in TERMINAL:
            run.finished, run.status = ts, TERMINAL[type_]
        if ts < floor:
            continue
        per_run_events[(agent, run_id)].append("legacy_run_id" in data)
        if type_ == "tool_completed":
            key = (agent, data["tool"])
            tool_latency[key].append(float(data["duration_ms"]))
            tool_errors[key] += data.get("error") is not None
    out = Expected()
    agents = {r.agent for r in runs.values()}
    for agent in sorted(agents):
        finished = [
            r for r in runs.values()
            if r.agent == agent and r.status is not None and r.created and r.created >= floor
        ]
        durations = [
            (r.finished - r.started) / timedelta(milliseconds=1)
            for r in finished if r.started is not None and r.finished is not None
        ]
        counts = {k: v for k, v in per_run_events.items() if k[0] == agent}
        sizes = [float(len(v)) for v in counts.values()]
        legacy_events = sum(sum(v) for v in counts.values())
        legacy_runs = sum(1 for v in counts.values() if any(v))
        total = int(sum(sizes))
        failed = sum(1 for r in finished if r.status == "failed")
        if not finished and not counts:
            continue
        out.agents[agent] = {
            "agent": agent,
            "runs": len(finished),
            "completed": sum(1 for r in finished if r.status == "completed"),
            "failed": failed,
            "cancelled": sum(1 for r in finished if r.status == "cancelled"),
            "error_rate": failed / len(finished) if finished else None,
            "duration_ms": pcts(durations),
            "events": total,
            "runs_with_events": len(counts),
            "events_per_run": total / len(counts) if counts else None,
            "events_per_run_pct": pcts(sizes),
            "legacy_events": legacy_events,
            "legacy_event_share": legacy_events / total if total else None,
            "legacy_runs": legacy_runs,
            "legacy_run_share": legacy_runs / len(counts) if counts else None,
        }
    for key in sorted(tool_latency):
        calls = len(tool_latency[key])
        out.tools[key] = {
            "agent": key[0],
            "tool": key[1],
            "calls": calls,
            "errors": tool_errors[key],
            "error_rate": tool_errors[key] / calls,
            "latency_ms": pcts(tool_latency[key]),
        }
    return out
