"""runs.ended_seq: the seq of a run's terminal event, set by the append that stores it.

Appends refuse a run's events after its terminal event (docs/decisions/0111). Runs that
ended before this revision are marked from their stored terminal event, or with 0 when
their status is final but the event is not stored (pruned).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_BACKFILL = sa.text(
    """
    UPDATE runs SET ended_seq = COALESCE(
        (SELECT MIN(events.seq) FROM events
         WHERE events.run_id = runs.run_id
           AND events.type IN ('agent_completed', 'agent_error', 'run_cancelled')),
        CASE WHEN runs.status IN ('completed', 'failed', 'cancelled') THEN 0 END
    )
    """
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("ended_seq", sa.BigInteger(), nullable=True))
    op.execute(_BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("ended_seq")
