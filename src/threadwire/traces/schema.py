"""The ClickHouse trace schema: three MergeTree tables and the backfill checkpoint table.

Every statement here is plain ClickHouse SQL shared by both targets, so the tests on
chDB run exactly the DDL a ClickHouse server receives.

- `runs`: one row per finished run, ordered for per-agent time ranges.
- `events`: one row per stored event, ordered for per-thread time ranges.
- `tool_calls`: one row per completed tool call, ordered for per-tool time ranges.

All are ReplacingMergeTree: the live sink and a backfill may write the same event
twice, and the sort key (which names the event or run exactly) collapses the copies.
Queries that must count exactly read with `FINAL`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_DATABASE: Final = "threadwire"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

TS: Final = "DateTime64(3, 'UTC')"
"""Millisecond UTC timestamps, the precision the wire carries."""


def check_identifier(name: str) -> str:
    """Return `name` when it is a plain ClickHouse identifier (we interpolate it into SQL)."""
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise ValueError(
            f"invalid ClickHouse database name {name!r}: expected letters, digits and '_'"
        )
    return name


@dataclass(frozen=True, slots=True)
class TraceTable:
    """One table: its columns (name, ClickHouse type) in row order and its engine clauses."""

    name: str
    columns: tuple[tuple[str, str], ...]
    order_by: tuple[str, ...]
    partition_by: str
    indexes: tuple[str, ...] = ()
    engine: str = "ReplacingMergeTree"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in the order rows carry their values."""
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> tuple[str, ...]:
        """ClickHouse type names in row order (the server target sends them with inserts)."""
        return tuple(kind for _, kind in self.columns)

    def ddl(self, database: str) -> str:
        """`CREATE TABLE IF NOT EXISTS` for this table in `database`."""
        order = self.order_by[0] if len(self.order_by) == 1 else f"({', '.join(self.order_by)})"
        body = ",\n    ".join(
            [f"`{name}` {kind}" for name, kind in self.columns] + list(self.indexes)
        )
        return (
            f"CREATE TABLE IF NOT EXISTS `{check_identifier(database)}`.`{self.name}` (\n"
            f"    {body}\n) ENGINE = {self.engine}\n"
            f"PARTITION BY {self.partition_by}\n"
            f"ORDER BY {order}"
        )


RUNS = TraceTable(
    name="runs",
    columns=(
        ("run_id", "String"),
        ("thread_id", "String"),
        ("agent", "LowCardinality(String)"),
        ("status", "LowCardinality(String)"),
        ("created_at", TS),
        ("started_at", f"Nullable({TS})"),
        ("finished_at", TS),
        ("duration_ms", "Nullable(Float64)"),
        ("queue_ms", "Nullable(Float64)"),
        ("is_error", "UInt8"),
        ("error", "String"),
        ("legacy_id", "UInt8"),
    ),
    order_by=("agent", "created_at", "run_id"),
    partition_by="toYYYYMM(created_at)",
    indexes=("INDEX thread_idx thread_id TYPE bloom_filter GRANULARITY 4",),
)

EVENTS = TraceTable(
    name="events",
    columns=(
        ("thread_id", "String"),
        ("ts", TS),
        ("seq", "UInt64"),
        ("event_id", "String"),
        ("run_id", "String"),
        ("type", "LowCardinality(String)"),
        ("agent", "LowCardinality(String)"),
        ("tool", "LowCardinality(String)"),
        ("is_error", "UInt8"),
        ("legacy_id", "UInt8"),
        ("legacy_run_id", "String"),
    ),
    order_by=("thread_id", "ts", "seq"),
    partition_by="toYYYYMM(ts)",
    indexes=(
        "INDEX run_idx run_id TYPE bloom_filter GRANULARITY 4",
        "INDEX agent_idx agent TYPE set(256) GRANULARITY 4",
    ),
)

TOOL_CALLS = TraceTable(
    name="tool_calls",
    columns=(
        ("tool", "LowCardinality(String)"),
        ("ts", TS),
        ("event_id", "String"),
        ("thread_id", "String"),
        ("run_id", "String"),
        ("seq", "UInt64"),
        ("agent", "LowCardinality(String)"),
        ("call_id", "String"),
        ("duration_ms", "Nullable(Float64)"),
        ("is_error", "UInt8"),
        ("error", "String"),
        ("legacy_id", "UInt8"),
    ),
    order_by=("tool", "ts", "event_id"),
    partition_by="toYYYYMM(ts)",
    indexes=("INDEX agent_idx agent TYPE set(256) GRANULARITY 4",),
)

CHECKPOINTS = TraceTable(
    name="backfill_checkpoints",
    columns=(
        ("source", "String"),
        ("thread_id", "String"),
        ("threads", "UInt64"),
        ("events", "UInt64"),
        ("updated_at", TS),
    ),
    order_by=("source",),
    partition_by="tuple()",
    engine="ReplacingMergeTree(updated_at)",
)

DATA_TABLES: Final = (RUNS, EVENTS, TOOL_CALLS)
ALL_TABLES: Final = (*DATA_TABLES, CHECKPOINTS)


def schema_statements(database: str) -> list[str]:
    """Every statement that brings `database` up to this schema (idempotent)."""
    return [f"CREATE DATABASE IF NOT EXISTS `{check_identifier(database)}`"] + [
        table.ddl(database) for table in ALL_TABLES
    ]
