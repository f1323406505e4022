"""Stored-ID migration: rewrite legacy run IDs in a team's SQL tables, resolve old IDs.

`migrate_ids` and `resolve_ids` return values; `threadwire db migrate-ids` and
`threadwire ids resolve` (in `threadwire.cli.migrate`) print them.
"""

from __future__ import annotations

from threadwire.migrate.stored.database import ALIASES_TABLE, MigrationError
from threadwire.migrate.stored.resolve import Resolution, resolve_ids
from threadwire.migrate.stored.run import (
    DEFAULT_BATCH_SIZE,
    MigrationSummary,
    Unresolvable,
    migrate_ids,
)

__all__ = [
    "ALIASES_TABLE",
    "DEFAULT_BATCH_SIZE",
    "MigrationError",
    "MigrationSummary",
    "Resolution",
    "Unresolvable",
    "migrate_ids",
    "resolve_ids",
]
