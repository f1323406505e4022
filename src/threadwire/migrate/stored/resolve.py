"""`resolve_ids`: what an old or new run ID names after migration (migrate spec 2).

Aliases first (the mapping a migration recorded), then the parse. A database without
`threadwire_id_aliases` simply has no aliases yet.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from threadwire.ids import InvalidIdError, Resolver
from threadwire.migrate.stored.database import (
    Catalog,
    ColumnRef,
    MigrationError,
    aliases_table,
    connect,
    has_aliases,
    load_aliases,
    one_line,
)
from threadwire.migrate.stored.plan import registry_with, resolver_from


@dataclass(frozen=True, slots=True)
class Resolution:
    """One ID's answer: its canonical run ID (None when not migrated yet) and thread,
    or the ID error code."""

    id: str
    run_id: str | None = None
    thread_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON line of `threadwire ids resolve`."""
        if self.error is not None:
            return {"id": self.id, "error": self.error}
        return {"id": self.id, "run_id": self.run_id, "thread_id": self.thread_id}


def resolve_ids(
    database_url: str,
    ids: Sequence[str],
    *,
    enable_formats: Sequence[str] = (),
    threads: str | None = None,
) -> list[Resolution]:
    """Resolve each of `ids` through the recorded aliases, then by parsing it.

    Raises MigrationError when the database cannot be reached or `threads` names no
    column. Reads only.
    """
    registry = registry_with(enable_formats)
    with connect(database_url, read_only=True) as conn:
        try:
            with conn.begin():
                resolver = _resolver(conn, threads)
                aliases = {}
                if has_aliases(conn):
                    aliases = load_aliases(conn, aliases_table(sa.MetaData()), ids)
                answers: list[Resolution] = []
                for run_id in ids:
                    alias = aliases.get(run_id)
                    if alias is not None:
                        answers.append(Resolution(run_id, alias.run_id, alias.thread_id))
                        continue
                    try:
                        parsed = registry.parse(run_id, resolver=resolver)
                    except InvalidIdError as error:
                        answers.append(Resolution(run_id, error=error.code))
                        continue
                    if parsed.thread_id is None:
                        answers.append(Resolution(run_id, error="unknown_run"))
                    else:
                        canonical = run_id if parsed.is_canonical else None
                        answers.append(Resolution(run_id, canonical, parsed.thread_id))
                return answers
        except SQLAlchemyError as exc:
            raise MigrationError(f"database error: {one_line(exc)}") from None


def _resolver(conn: Connection, threads: str | None) -> Resolver | None:
    if threads is None:
        return None
    column = Catalog(conn).column(ColumnRef.parse(threads, "--threads"))

    def existing(candidates: Collection[str]) -> set[str]:
        raw = sa.type_coerce(column, sa.types.NullType())
        query = sa.select(raw).where(sa.cast(column, sa.String).in_(list(candidates)))
        values: list[object] = list(conn.execute(query).scalars())
        return {str(v) for v in values}

    return resolver_from(existing)
