"""Foreign keys around the rewritten columns, found by inspection before anything changes.

A key between two listed columns is fine when it cascades updates (the tool updates
the parent first and the database carries the change) or when it is deferrable with
no action (checked at commit, once the batch has rewritten both sides). Anything else
would reject the rewrite half-way, so the migration refuses to start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadwire.migrate.stored.sqlite_keys import sqlite_foreign_keys

ColumnKey = tuple[str, str, str]
"""(schema, table, column), normalised so reflected names compare equal."""


@dataclass(frozen=True, slots=True)
class Cascade:
    """A listed column whose rows the database updates when a listed parent changes."""

    child: ColumnKey
    parent: ColumnKey


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """A foreign key that would reject the rewrite of any of `triggers`."""

    table: str
    message: str
    triggers: frozenset[ColumnKey]


@dataclass(frozen=True, slots=True)
class KeyReport:
    """What the keys mean for the run: the order to update in, cascades, refusals."""

    order: list[ColumnKey]
    cascades: list[Cascade]
    problems: list[KeyProblem]


def column_key(conn: Connection, column: sa.Column[Any]) -> ColumnKey:
    """The normalised key of a reflected column."""
    table = column.table
    assert isinstance(table, sa.Table)
    return _key(conn, table.schema, table.name, column.name)


def _key(conn: Connection, schema: str | None, table: str, column: str) -> ColumnKey:
    default = conn.dialect.default_schema_name or ""
    key = (schema or default, table, column)
    # SQLite names are case-insensitive, and its DDL text may spell them either way.
    return (
        (key[0].lower(), key[1].lower(), key[2].lower()) if conn.dialect.name == "sqlite" else key
    )


def inspect_keys(conn: Connection, listed: Sequence[ColumnKey]) -> KeyReport:
    """Every foreign key touching a listed column, in the schemas of the listed tables."""
    inspector = sa.inspect(conn)
    wanted = set(listed)
    cascades: list[Cascade] = []
    edges: list[tuple[ColumnKey, ColumnKey]] = []
    problems: list[KeyProblem] = []
    schemas = {k[0] for k in listed}
    default = conn.dialect.default_schema_name
    for schema in sorted(schemas):
        for table, keys in _foreign_keys(conn, inspector, None if schema == default else schema):
            for fk in keys:
                referred = list(fk["referred_columns"]) or _primary_key(
                    inspector, fk["referred_table"], fk.get("referred_schema")
                )
                for child_col, parent_col in zip(fk["constrained_columns"], referred, strict=False):
                    child = _key(conn, schema, table, child_col)
                    parent = _key(
                        conn, fk.get("referred_schema") or schema, fk["referred_table"], parent_col
                    )
                    if child not in wanted and parent not in wanted:
                        continue
                    verdict = _judge(child, parent, dict(fk.get("options") or {}), wanted)
                    if isinstance(verdict, KeyProblem):
                        problems.append(verdict)
                    elif verdict is not None:
                        edges.append((parent, child))
                        if verdict:
                            cascades.append(Cascade(child, parent))
    return KeyReport(_order(listed, edges), cascades, problems)


def _foreign_keys(
    conn: Connection, inspector: sa.Inspector, schema: str | None
) -> list[tuple[str, list[Any]]]:
    """(table, its reflected foreign keys) for every table of `schema`."""
    if conn.dialect.name == "sqlite":
        names = inspector.get_table_names(schema=schema)
        return [(name, sqlite_foreign_keys(conn, name)) for name in sorted(names)]
    reflected = inspector.get_multi_foreign_keys(schema=schema)
    return sorted(((table, list(keys)) for (_, table), keys in reflected.items()))


def _primary_key(inspector: sa.Inspector, table: str, schema: str | None) -> list[str]:
    return list(inspector.get_pk_constraint(table, schema=schema)["constrained_columns"])


def _judge(
    child: ColumnKey, parent: ColumnKey, options: dict[str, Any], wanted: set[ColumnKey]
) -> KeyProblem | bool | None:
    """A problem; True for a cascade edge, False for a deferred edge; None: no edge needed."""
    action = str(options.get("onupdate") or "NO ACTION").upper()
    deferrable = bool(options.get("deferrable"))
    shown = f"foreign key {child[1]}({child[2]}) -> {parent[1]}({parent[2]})"
    if action == "CASCADE":
        if child in wanted and parent not in wanted:
            return KeyProblem(
                child[1],
                f"table {child[1]}: {shown} refers to a column that is not listed; "
                f"add --column {parent[1]}.{parent[2]}",
                frozenset({child}),
            )
        return True if child in wanted else None
    if child in wanted and parent in wanted and deferrable and action == "NO ACTION":
        return False
    if child in wanted and parent in wanted:
        why = "it is neither deferrable nor ON UPDATE CASCADE"
        if action != "NO ACTION":
            why = f"its ON UPDATE {action} acts at once, before the batch rewrites both sides"
        return KeyProblem(
            child[1],
            f"table {child[1]}: {shown} would reject the rewrite: {why}",
            frozenset({child, parent}),
        )
    if parent in wanted:
        return KeyProblem(
            child[1],
            f"table {child[1]}: {shown} would reject the rewrite of a listed column; "
            f"add --column {child[1]}.{child[2]} (and make the key deferrable) or give it "
            "ON UPDATE CASCADE",
            frozenset({parent}),
        )
    return KeyProblem(
        child[1],
        f"table {child[1]}: {shown} refers to a column that is not listed; "
        f"add --column {parent[1]}.{parent[2]}",
        frozenset({child}),
    )


def _order(
    listed: Sequence[ColumnKey], edges: list[tuple[ColumnKey, ColumnKey]]
) -> list[ColumnKey]:
    """Listed columns with every parent before its children, else in the order given."""
    pending = list(dict.fromkeys(listed))
    parents = {c: {p for p, ch in edges if ch == c and p != c} for c in pending}
    order: list[ColumnKey] = []
    while pending:
        ready = next((c for c in pending if not parents[c] - set(order)), pending[0])
        order.append(ready)
        pending.remove(ready)
    return order
