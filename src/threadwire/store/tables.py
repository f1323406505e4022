"""The SQL schema (SQLAlchemy Core): threads, runs, events, ID aliases, idempotency keys.

Alembic migrations in `migrations/versions/` create exactly this; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.types import TypeDecorator

ALIASES_TABLE: Final = "threadwire_id_aliases"
"""Shared with `threadwire db migrate-ids` (migrate spec 1): one table of old -> new IDs."""

UNFINISHED: Final = ("queued", "running")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite (no zone support) stores naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_json = JSON(none_as_null=True)

threads = Table(
    "threads",
    metadata,
    Column("thread_id", String(128), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("metadata", _json, nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("low_seq", BigInteger, nullable=False, server_default=text("0")),
    # Newest-first listing order; per owner, MAX + 1 at insert (ties broken by ID).
    Column("pos", BigInteger, nullable=False),
    Index(None, "owner", "pos"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(256), primary_key=True),
    Column("thread_id", String(128), ForeignKey("threads.thread_id"), nullable=False),
    Column("agent", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input", _json, nullable=False),
    Column("result", _json, nullable=True),
    Column("error", _json, nullable=True),
    Column("owner", String(128), nullable=True),
    Column("node_id", String(128), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    # The seq of the run's terminal event, set by the append that stores it, in the same
    # transaction: appends refuse the run's events from then on (decision 0111). 0 marks
    # a run that ended before the column existed and whose terminal event is not stored.
    Column("ended_seq", BigInteger, nullable=True),
    # Newest-first listing order within a thread; MAX + 1 at insert.
    Column("pos", BigInteger, nullable=False),
    CheckConstraint(
        "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')", name="status"
    ),
    Index(None, "thread_id", "pos"),
    Index(
        "ix_runs_unfinished_node",
        "node_id",
        postgresql_where=text("status IN ('queued', 'running')"),
        sqlite_where=text("status IN ('queued', 'running')"),
    ),
)

events = Table(
    "events",
    metadata,
    Column("thread_id", String(128), ForeignKey("threads.thread_id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False, unique=True),
    # No foreign key: migrate-ids rewrites runs and events independently, and an
    # event's run may be recorded by a later call of the same transaction's caller.
    Column("run_id", String(256), nullable=False),
    Column("type", String(64), nullable=False),
    Column("ts", UtcDateTime(), nullable=False),
    Column("data", _json, nullable=False),
    PrimaryKeyConstraint("thread_id", "seq"),
    Index(None, "run_id"),
)

id_aliases = Table(
    ALIASES_TABLE,
    metadata,
    Column("legacy_id", String(256), primary_key=True),
    Column("run_id", String(256), nullable=False),
    Column("thread_id", String(128), nullable=False),
    Column("migrated_at", UtcDateTime(), nullable=False, server_default=func.current_timestamp()),
    Index(None, "run_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("thread_id", String(128), ForeignKey("threads.thread_id"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("event_ids", _json, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("thread_id", "key"),
    Index(None, "created_at"),
)
