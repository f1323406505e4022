"""The trace sink's Prometheus metrics: one home for their names.

They live in prometheus-client's default registry, which the gateway's `/metrics`
serves. The gauge is incremented and decremented (not set) so that several sinks in
one process (tests) add up instead of overwriting each other.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

TRACE_EVENTS_WRITTEN_TOTAL: Final = "threadwire_trace_events_written_total"
TRACE_EVENTS_DROPPED_TOTAL: Final = "threadwire_trace_events_dropped_total"
TRACE_WRITE_ERRORS_TOTAL: Final = "threadwire_trace_write_errors_total"
TRACE_BUFFERED_EVENTS: Final = "threadwire_trace_buffered_events"

DROP_REASONS: Final = ("buffer_full", "rejected", "shutdown", "error")
"""buffer_full: the bounded buffer was full (target down or too slow); rejected: the
target answered pings but kept refusing the batch; shutdown: still buffered when
close() gave up; error: a bug turning events into rows (logged with its traceback)."""

events_written = Counter(TRACE_EVENTS_WRITTEN_TOTAL, "Events exported to the trace target.")
events_dropped = Counter(
    TRACE_EVENTS_DROPPED_TOTAL,
    "Events the trace sink dropped rather than block the event path, by reason "
    "(buffer_full, rejected, shutdown, error); the store still has them: backfill.",
    ["reason"],
)
write_errors = Counter(
    TRACE_WRITE_ERRORS_TOTAL, "Failed writes to the trace target (each retry counts)."
)
buffered_events = Gauge(
    TRACE_BUFFERED_EVENTS, "Events accepted by trace sinks and not yet written or dropped."
)
for _reason in DROP_REASONS:
    events_dropped.labels(_reason)
