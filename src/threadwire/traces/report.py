"""`threadwire traces report`: per-agent run durations, tool latency and errors, events
per run and legacy-ID share, computed by ClickHouse from the trace tables.

Windows (`since`): runs by `created_at`, events and tool calls by `ts`.
Percentiles are exact with linear interpolation between ranks
(`quantilesExactInclusive`, numpy's default method), in milliseconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from threadwire.events import format_ts, utcnow
from threadwire.traces.schema import EVENTS, RUNS, TOOL_CALLS
from threadwire.traces.target import TraceTarget

QUANTILES: Final = (0.5, 0.95, 0.99)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SINCE_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> timedelta:
    """A window like `90s`, `15m`, `1h`, `7d`, `2w` or `1h30m` as a timedelta.

    >>> parse_since("1h30m")
    datetime.timedelta(seconds=5400)
    """
    cleaned = text.strip().lower()
    if not cleaned or _SINCE_PART.sub("", cleaned) != "":
        raise ValueError(f"invalid window {text!r}: expected e.g. 90s, 15m, 1h, 7d or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _SINCE_PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"invalid window {text!r}: it must be longer than zero")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50/p95/p99 in milliseconds (None when there is nothing to measure)."""

    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Any) -> Percentiles:
        """From ClickHouse's quantiles array (NaN or null for an empty set)."""
        clean = [_number(v) for v in (values or [])] + [None] * len(QUANTILES)
        return cls(*clean[: len(QUANTILES)])


@dataclass(frozen=True, slots=True)
class AgentStats:
    """One agent's runs (finished, created in the window) and events (in the window)."""

    agent: str
    runs: int
    completed: int
    failed: int
    cancelled: int
    error_rate: float | None
    """failed / finished runs."""
    duration_ms: Percentiles
    """From agent_started to the terminal event, over runs that started."""
    events: int
    runs_with_events: int
    events_per_run: float | None
    events_per_run_pct: Percentiles
    legacy_events: int
    legacy_event_share: float | None
    legacy_runs: int
    """Runs with at least one event that arrived under a legacy run ID."""
    legacy_run_share: float | None


@dataclass(frozen=True, slots=True)
class ToolStats:
    """One tool of one agent: completed calls in the window."""

    agent: str
    tool: str
    calls: int
    errors: int
    error_rate: float | None
    latency_ms: Percentiles


@dataclass(frozen=True, slots=True)
class TraceReport:
    """The whole report; `to_dict()` is the `--format json` body."""

    target: str
    since: datetime | None
    generated_at: datetime
    agents: list[AgentStats] = field(default_factory=list)
    tools: list[ToolStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps in wire form, percentiles as objects."""
        return {
            "target": self.target,
            "since": format_ts(self.since) if self.since else None,
            "generated_at": format_ts(self.generated_at),
            "agents": [asdict(a) for a in self.agents],
            "tools": [asdict(t) for t in self.tools],
        }


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _levels() -> str:
    return ", ".join(str(q) for q in QUANTILES)


def report_queries(database: str) -> dict[str, str]:
    """The three queries behind a report (`{since:String}` is the window start)."""
    since = "toDateTime64({since:String}, 3, 'UTC')"
    db = f"`{database}`"
    return {
        "runs": f"""
SELECT agent,
       count() AS runs,
       countIf(status = 'completed') AS completed,
       countIf(status = 'failed') AS failed,
       countIf(status = 'cancelled') AS cancelled,
       quantilesExactInclusive({_levels()})(duration_ms) AS duration
FROM {db}.`{RUNS.name}` FINAL
WHERE created_at >= {since}
GROUP BY agent ORDER BY agent""",
        "events": f"""
SELECT agent,
       sum(n) AS events,
       count() AS runs_with_events,
       quantilesExactInclusive({_levels()})(n) AS per_run,
       sum(legacy) AS legacy_events,
       countIf(legacy > 0) AS legacy_runs
FROM (
    SELECT agent, run_id, count() AS n, countIf(legacy_id = 1) AS legacy
    FROM {db}.`{EVENTS.name}` FINAL
    WHERE ts >= {since}
    GROUP BY agent, run_id
)
GROUP BY agent ORDER BY agent""",
        "tools": f"""
SELECT agent, tool,
       count() AS calls,
       countIf(is_error = 1) AS errors,
       quantilesExactInclusive({_levels()})(duration_ms) AS latency
FROM {db}.`{TOOL_CALLS.name}` FINAL
WHERE ts >= {since}
GROUP BY agent, tool ORDER BY agent, tool""",
    }


async def build_report(
    target: TraceTarget, *, since: timedelta | None = None, now: datetime | None = None
) -> TraceReport:
    """Compute the report on an open target, over the last `since` (all time when None)."""
    generated = now or utcnow()
    start = generated - since if since is not None else None
    params = {"since": (start or _EPOCH).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}
    queries = report_queries(target.database)
    runs = {r["agent"]: r for r in await target.query(queries["runs"], params)}
    events = {r["agent"]: r for r in await target.query(queries["events"], params)}
    tools = await target.query(queries["tools"], params)
    agents = []
    for agent in sorted(set(runs) | set(events)):
        r = runs.get(agent, {})
        e = events.get(agent, {})
        finished = int(r.get("runs", 0))
        failed = int(r.get("failed", 0))
        total_events = int(e.get("events", 0))
        with_events = int(e.get("runs_with_events", 0))
        legacy_events = int(e.get("legacy_events", 0))
        legacy_runs = int(e.get("legacy_runs", 0))
        agents.append(
            AgentStats(
                agent=agent,
                runs=finished,
                completed=int(r.get("completed", 0)),
                failed=failed,
                cancelled=int(r.get("cancelled", 0)),
                error_rate=_share(failed, finished),
                duration_ms=Percentiles.of(r.get("duration")),
                events=total_events,
                runs_with_events=with_events,
                events_per_run=_share(total_events, with_events),
                events_per_run_pct=Percentiles.of(e.get("per_run")),
                legacy_events=legacy_events,
                legacy_event_share=_share(legacy_events, total_events),
                legacy_runs=legacy_runs,
                legacy_run_share=_share(legacy_runs, with_events),
            )
        )
    tool_stats = [
        ToolStats(
            agent=t["agent"],
            tool=t["tool"],
            calls=int(t["calls"]),
            errors=int(t["errors"]),
            error_rate=_share(int(t["errors"]), int(t["calls"])),
            latency_ms=Percentiles.of(t.get("latency")),
        )
        for t in tools
    ]
    return TraceReport(target.url, start, generated, agents, tool_stats)
