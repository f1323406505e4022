"""Trace analytics: runs, events and tool calls exported to ClickHouse for operators.

The system of record stays the SQL store; this package copies what operators query
(durations, tool latency and errors, events per run, legacy-ID traffic) into
ClickHouse, batched and off the event path. Targets are chosen by URL: `chdb://PATH`
(embedded) or `clickhouse(s)://HOST:PORT/DB` (a server).
"""

from __future__ import annotations

from threadwire.traces.sink import RunLookup, TraceSink, create_trace_sink
from threadwire.traces.target import TraceTarget, TraceTargetError, create_trace_target

__all__ = [
    "RunLookup",
    "TraceSink",
    "TraceTarget",
    "TraceTargetError",
    "create_trace_sink",
    "create_trace_target",
]
