"""Prometheus metrics of the runtime: run outcomes and durations, queue depth, ingest refusals.

Every metric name is a constant here, the one home for these wire names. The metrics
live in prometheus-client's default registry, which the gateway's `/metrics` serves.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

RUNS_TOTAL: Final = "threadwire_runs_total"
RUN_DURATION_SECONDS: Final = "threadwire_run_duration_seconds"
RUNS_QUEUED: Final = "threadwire_runs_queued"
RUNS_RUNNING: Final = "threadwire_runs_running"
INGEST_EVENTS_TOTAL: Final = "threadwire_ingest_events_total"
INGEST_REFUSALS_TOTAL: Final = "threadwire_ingest_refusals_total"

runs_total = Counter(
    RUNS_TOTAL,
    "Runs that reached a final status, by agent and status.",
    ["agent", "status"],
)
run_duration_seconds = Histogram(
    RUN_DURATION_SECONDS,
    "Time from a run's start to its final status, by agent.",
    ["agent"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
runs_queued = Gauge(RUNS_QUEUED, "Runs waiting for a slot on this node.")
runs_running = Gauge(RUNS_RUNNING, "Runs executing on this node.")
ingest_events_total = Counter(INGEST_EVENTS_TOTAL, "Events accepted from external workers.")
ingest_refusals_total = Counter(
    INGEST_REFUSALS_TOTAL,
    "Ingest requests refused, by error code (nothing of a refused batch is stored).",
    ["code"],
)


def count_ingest_refusal(code: str) -> None:
    """Count one refused ingest request (the gateway calls it for its own 413s too)."""
    ingest_refusals_total.labels(code=code).inc()
