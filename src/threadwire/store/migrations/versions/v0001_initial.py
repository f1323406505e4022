"""Initial schema: threads, runs, events, ID aliases, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ALIASES = "threadwire_id_aliases"
_UNFINISHED = sa.text("status IN ('queued', 'running')")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("low_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("thread_id", name="pk_threads"),
    )
    op.create_index("ix_threads_owner_pos", "threads", ["owner", "pos"])

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(256), nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", _json(), nullable=False),
        sa.Column("result", _json(), nullable=True),
        sa.Column("error", _json(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("node_id", sa.String(128), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("pos", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_runs_status",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.thread_id"], name="fk_runs_thread_id_threads"
        ),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_thread_id_pos", "runs", ["thread_id", "pos"])
    op.create_index(
        "ix_runs_unfinished_node",
        "runs",
        ["node_id"],
        postgresql_where=_UNFINISHED,
        sqlite_where=_UNFINISHED,
    )

    op.create_table(
        "events",
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(256), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.thread_id"], name="fk_events_thread_id_threads"
        ),
        sa.PrimaryKeyConstraint("thread_id", "seq", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])

    # `threadwire db migrate-ids` may have created this table before the store existed.
    if not sa.inspect(op.get_bind()).has_table(_ALIASES):
        op.create_table(
            _ALIASES,
            sa.Column("legacy_id", sa.String(256), nullable=False),
            sa.Column("run_id", sa.String(256), nullable=False),
            sa.Column("thread_id", sa.String(128), nullable=False),
            sa.Column(
                "migrated_at",
                _ts(),
                server_default=sa.func.current_timestamp(),
                nullable=False,
            ),
            sa.PrimaryKeyConstraint("legacy_id", name=f"pk_{_ALIASES}"),
        )
        op.create_index(f"ix_{_ALIASES}_run_id", _ALIASES, ["run_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("event_ids", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.thread_id"], name="fk_idempotency_keys_thread_id_threads"
        ),
        sa.PrimaryKeyConstraint("thread_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("events")
    op.drop_table("runs")
    op.drop_table("threads")
    # The aliases table stays: old IDs must keep resolving, and migrate-ids owns it too.
