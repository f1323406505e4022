"""The report's figures equal figures computed independently from the SQL store, for
the same generated workload, whether the traces came through the live sink or a
backfill, on the embedded engine and through clickhouse-connect."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.traces.conftest import TARGET_KINDS, make_target
from tests.traces.expected import expected_from_sqlite
from tests.traces.workload import AGENTS, Workload

from threadwire.traces.backfill import Backfill
from threadwire.traces.report import TraceReport, build_report, parse_since
from threadwire.traces.sink import TraceSink
from threadwire.traces.target import TraceTarget

Store = tuple[str, Path, Workload]


def assert_matches(report: TraceReport, db_path: Path, *, since: timedelta | None) -> None:
    """Every figure of `report` equals the independent computation."""
    expected = expected_from_sqlite(db_path, since=report.since)
    got_agents = {a.agent: asdict(a) for a in report.agents}
    assert set(got_agents) == set(expected.agents)
    for agent, want in expected.agents.items():
        assert got_agents[agent] == _approx(want), agent
    got_tools = {(t.agent, t.tool): asdict(t) for t in report.tools}
    assert set(got_tools) == set(expected.tools)
    for key, want in expected.tools.items():
        assert got_tools[key] == _approx(want), key
    if since is not None:
        assert report.since == report.generated_at - since


def _approx(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-6)
    return value


async def _live(target: TraceTarget, work: Workload) -> TraceSink:
    """Feed the workload through a sink as a node would: small submits, in emit order."""
    sink = TraceSink(target, batch_size=700, flush_interval=0.05)
    await sink.start()
    for i in range(0, len(work.events), 3):
        sink.submit(work.events[i : i + 3])
    await sink.flush()
    return sink


@pytest.mark.parametrize("kind", TARGET_KINDS)
async def test_report_from_live_sink_matches_the_sql_store(
    kind: str, chdb_path: Path, workload_store: Store
) -> None:
    _, db_path, work = workload_store
    assert len(work.events) > 3000 and len(work.runs) > 250  # a workload worth the name
    target = make_target(kind, chdb_path, f"tw_{secrets.token_hex(6)}")
    sink = await _live(target, work)
    try:
        assert sink.dropped == 0 and sink.written == len(work.events)
        full = await build_report(target, now=work.now)
        assert {a.agent for a in full.agents} == set(AGENTS)
        assert_matches(full, db_path, since=None)
        hour = parse_since("1h")
        recent = await build_report(target, since=hour, now=work.now)
        assert 0 < sum(a.runs for a in recent.agents) < sum(a.runs for a in full.agents)
        assert_matches(recent, db_path, since=hour)
    finally:
        await sink.close()


def test_the_workload_has_what_the_report_measures(workload_store: Store) -> None:
    _, db_path, _ = workload_store
    expected = expected_from_sqlite(db_path)
    agents = expected.agents
    assert all(a["failed"] > 0 for a in agents.values() if a["runs"] > 30)
    assert sum(a["cancelled"] for a in agents.values()) > 0
    assert sum(t["errors"] for t in expected.tools.values()) > 0
    assert agents["support"]["legacy_event_share"] > 0.3
    assert agents["coder"]["legacy_events"] == 0
    # runs still running have events but no run row
    assert sum(a["runs_with_events"] for a in agents.values()) > sum(
        a["runs"] for a in agents.values()
    )


async def test_backfill_report_matches_the_sql_store(
    target: TraceTarget, workload_store: Store
) -> None:
    url, db_path, work = workload_store
    job = Backfill(url, target, threads_per_chunk=7, page_size=500)
    plan = await job.plan()
    assert plan.resumed_after is None and plan.total_events == len(work.events)
    result = await job.run()
    assert result.events == len(work.events)
    assert_matches(await build_report(target, now=work.now), db_path, since=None)


async def test_backfill_resumes_after_an_interruption(
    chdb_path: Path, workload_store: Store
) -> None:
    url, db_path, work = workload_store
    database = f"tw_{secrets.token_hex(6)}"
    target = make_target("chdb", chdb_path, database)
    await target.open()
    try:
        first = Backfill(url, target, threads_per_chunk=5, page_size=200)
        await first.plan()
        seen = 0

        def crash_midway(n: int) -> None:
            nonlocal seen
            seen += n
            if seen > len(work.events) // 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await first.run(crash_midway)

        second = Backfill(url, target, threads_per_chunk=5, page_size=200)
        plan = await second.plan()
        assert plan.resumed_after is not None
        assert 0 < plan.done_events <= seen < plan.total_events
        result = await second.run()
        assert result.resumed_after == plan.resumed_after
        assert result.events == plan.total_events - plan.done_events
        assert_matches(await build_report(target, now=work.now), db_path, since=None)

        again = Backfill(url, target)
        plan = await again.plan()
        assert plan.done_events == plan.total_events
        assert (await again.run()).events == 0
    finally:
        await target.close()


async def test_backfill_beside_the_live_sink_counts_nothing_twice(
    chdb_path: Path, workload_store: Store
) -> None:
    url, db_path, work = workload_store
    target = make_target("chdb", chdb_path, f"tw_{secrets.token_hex(6)}")
    sink = await _live(target, work)
    try:
        job = Backfill(url, target, restart=True)
        await job.plan()
        await job.run()
        assert_matches(await build_report(target, now=work.now), db_path, since=None)
    finally:
        await sink.close()
