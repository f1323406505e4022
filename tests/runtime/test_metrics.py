"""Runtime metrics: outcomes by agent and status, durations, queue gauges, refusals."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from threadwire.runtime import RunContext, metrics
from threadwire.testing import AgentHarness


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_outcomes_durations_and_gauges_are_counted() -> None:
    async def ok(ctx: RunContext, input: dict[str, Any]) -> int:
        return 1

    async def bad(ctx: RunContext, input: dict[str, Any]) -> None:
        raise ValueError("x")

    done = {"agent": "metrics_ok", "status": "completed"}
    failed = {"agent": "metrics_bad", "status": "failed"}
    before = (
        sample(metrics.RUNS_TOTAL, done),
        sample(metrics.RUNS_TOTAL, failed),
        sample(f"{metrics.RUN_DURATION_SECONDS}_count", {"agent": "metrics_ok"}),
    )
    queued = sample(metrics.RUNS_QUEUED)
    running = sample(metrics.RUNS_RUNNING)
    async with AgentHarness({"metrics_ok": ok, "metrics_bad": bad}) as h:
        await h.run("metrics_ok")
        await h.run("metrics_ok")
        await h.run("metrics_bad")
    after = (
        sample(metrics.RUNS_TOTAL, done),
        sample(metrics.RUNS_TOTAL, failed),
        sample(f"{metrics.RUN_DURATION_SECONDS}_count", {"agent": "metrics_ok"}),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 2]
    assert sample(metrics.RUNS_QUEUED) == queued and sample(metrics.RUNS_RUNNING) == running


def test_metric_names_are_the_documented_constants() -> None:
    assert metrics.RUNS_TOTAL == "threadwire_runs_total"
    assert metrics.RUN_DURATION_SECONDS == "threadwire_run_duration_seconds"
    assert metrics.RUNS_QUEUED == "threadwire_runs_queued"
    assert metrics.RUNS_RUNNING == "threadwire_runs_running"
    assert metrics.INGEST_REFUSALS_TOTAL == "threadwire_ingest_refusals_total"
