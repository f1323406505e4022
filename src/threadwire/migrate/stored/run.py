"""`migrate_ids`: rewrite legacy run IDs in place, batch by batch, resumable (migrate spec 1).

The run has two phases. Planning reads everything it needs in one transaction and
changes nothing: the listed columns, the foreign keys around them, the aliases already
recorded, and from those the mapping old -> new and the counts. A dry run stops there,
so it reports exactly what the real run would. Executing then rewrites the IDs in
batches: each batch is one transaction that records its mappings in
`threadwire_id_aliases` and rewrites every occurrence of its legacy IDs in every
listed column. A kill at any moment leaves each legacy ID either wholly old or wholly
new, with its alias recorded whenever any row uses the new ID; the next run plans
again from what is there, reusing the recorded aliases, and finishes the work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from threadwire.ids import FormatRegistry, Resolver
from threadwire.migrate.stored.database import (
    CHUNK,
    WRITES,
    Alias,
    Catalog,
    ColumnRef,
    MigrationError,
    aliases_table,
    begin_snapshot,
    connect,
    defer_constraints,
    has_aliases,
    load_aliases,
    one_line,
    record_aliases,
)
from threadwire.migrate.stored.keys import ColumnKey, KeyReport, column_key, inspect_keys
from threadwire.migrate.stored.plan import (
    Plan,
    PrimaryRow,
    make_plan,
    registry_with,
    resolver_from,
)
from threadwire.migrate.stored.times import truncate_ms

DEFAULT_BATCH_SIZE = 1000

Progress = Callable[[int, int], None]
"""Called after each committed batch with (rows done, rows in all)."""


@dataclass(frozen=True, slots=True)
class Unresolvable:
    """A distinct stored value the migration cannot map, with its ID error code."""

    id: str
    code: str


@dataclass(frozen=True, slots=True)
class MigrationSummary:
    """What a run did (or, dry, would do); `columns` maps each listed column to rows changed."""

    migrated: int
    already_canonical: int
    unresolvable: list[Unresolvable]
    columns: dict[str, int]
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """0 when everything resolved, 1 when some value is unresolvable."""
        return 1 if self.unresolvable else 0

    def to_json(self) -> dict[str, Any]:
        """The `--json` object of migrate spec 1, exactly."""
        return {
            "migrated": self.migrated,
            "already_canonical": self.already_canonical,
            "unresolvable": [{"id": u.id, "code": u.code} for u in self.unresolvable],
            "columns": dict(self.columns),
        }


@dataclass
class _Target:
    """A listed column, its reflected form, and its non-NULL values with row counts."""

    ref: ColumnRef
    column: sa.Column[Any]
    key: ColumnKey
    counts: Counter[object] = field(default_factory=Counter)


def migrate_ids(
    database_url: str,
    columns: Sequence[str],
    *,
    thread_column: str | None = None,
    created_at_column: str | None = None,
    threads: str | None = None,
    enable_formats: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> MigrationSummary:
    """Rewrite the legacy run IDs in `columns` (the first is the primary) to canonical ones.

    Raises MigrationError (nothing written) for bad arguments, an unreachable database
    or a foreign key that would reject the rewrite.
    """
    if not columns:
        raise MigrationError("--column: give at least one TABLE.COLUMN (the first is the primary)")
    if batch_size < 1:
        raise MigrationError(f"--batch-size {batch_size}: must be at least 1")
    moment = truncate_ms(now or datetime.now(UTC))
    registry = registry_with(enable_formats)
    with connect(database_url, read_only=dry_run) as conn:
        try:
            with conn.begin():
                begin_snapshot(conn)
                targets, plan, keys = _plan(
                    conn, registry, columns, thread_column, created_at_column, threads, moment
                )
            _refuse_breaking_keys(targets, plan, keys)
            _check_lengths(conn, targets, plan)
            if dry_run:
                changed = _predict(targets, plan, keys)
            else:
                changed = _execute(conn, targets, plan, keys, batch_size, moment, progress)
        except SQLAlchemyError as exc:
            raise MigrationError(f"database error: {one_line(exc)}") from None
    return MigrationSummary(
        migrated=len(plan.mapping),
        already_canonical=len(plan.canonical),
        unresolvable=[Unresolvable(v, c) for v, c in sorted(plan.unresolvable.items())],
        columns={t.ref.text: changed[t.key] for t in targets},
        dry_run=dry_run,
    )


def _plan(
    conn: Connection,
    registry: FormatRegistry,
    columns: Sequence[str],
    thread_column: str | None,
    created_at_column: str | None,
    threads: str | None,
    now: datetime,
) -> tuple[list[_Target], Plan, KeyReport]:
    catalog = Catalog(conn)
    targets = _targets(conn, catalog, columns)
    primary = targets[0]
    thread_col = _primary_extra(catalog, primary, thread_column, "--thread-column")
    created_col = _primary_extra(catalog, primary, created_at_column, "--created-at-column")
    resolver = _threads_resolver(conn, catalog, threads)
    keys = inspect_keys(conn, [t.key for t in targets])
    rows = _scan_primary(conn, primary, thread_col, created_col)
    for target in targets[1:]:
        _scan(conn, target)
    values = {v for t in targets for v in t.counts if isinstance(v, str)}
    aliases: dict[str, Alias] = {}
    if has_aliases(conn):
        aliases = load_aliases(conn, aliases_table(sa.MetaData()), values)
    plan = make_plan(
        rows,
        [v for t in targets[1:] for v in t.counts],
        aliases=aliases,
        registry=registry,
        resolver=resolver,
        now=now,
        created_at_label=created_col.ref.text if created_col else None,
    )
    return targets, plan, keys


def _targets(conn: Connection, catalog: Catalog, columns: Sequence[str]) -> list[_Target]:
    targets: list[_Target] = []
    for text in columns:
        ref = ColumnRef.parse(text, "--column")
        column = catalog.column(ref)
        if not isinstance(column.type, sa.String | sa.types.NullType):
            raise MigrationError(
                f"--column {ref.text}: its type is {column.type}, but run IDs need a text column"
            )
        key = column_key(conn, column)
        if any(t.key == key for t in targets):
            raise MigrationError(f"--column {ref.text}: listed twice")
        targets.append(_Target(ref, column, key))
    return targets


@dataclass(frozen=True, slots=True)
class _Extra:
    ref: ColumnRef
    column: sa.Column[Any]


def _primary_extra(
    catalog: Catalog, primary: _Target, text: str | None, option: str
) -> _Extra | None:
    if text is None:
        return None
    ref = ColumnRef.parse(text, option)
    column = catalog.column(ref)
    if column.table is not primary.column.table:
        raise MigrationError(
            f"{option} {ref.text}: must be a column of the primary table "
            f"{primary.column.table.name!r} (first --column)"
        )
    return _Extra(ref, column)


def _threads_resolver(conn: Connection, catalog: Catalog, threads: str | None) -> Resolver | None:
    if threads is None:
        return None
    column = catalog.column(ColumnRef.parse(threads, "--threads"))
    raw = sa.type_coerce(column, sa.types.NullType())
    query = sa.select(raw).where(column.isnot(None)).distinct()
    values: list[object] = list(conn.execute(query).scalars())
    known = {str(v) for v in values}
    return resolver_from(known.intersection)


def _scan_primary(
    conn: Connection, primary: _Target, thread_col: _Extra | None, created_col: _Extra | None
) -> list[PrimaryRow]:
    """One row per distinct primary value (the first seen, should a run appear twice)."""
    # Raw values: SQLite stores anything in any column, and a reflected type's result
    # processor (NUMERIC for "TIMESTAMP WITH TIME ZONE") would choke on what is there.
    extras = [sa.type_coerce(e.column, sa.types.NullType()) for e in (thread_col, created_col) if e]
    query = sa.select(primary.column, *extras).where(primary.column.isnot(None))
    seen: dict[object, PrimaryRow] = {}
    for row in conn.execute(query):
        value = row[0]
        primary.counts[value] += 1
        if value not in seen:
            thread = row[1] if thread_col else None
            created = row[-1] if created_col else None
            seen[value] = PrimaryRow(value, thread, created)
    return list(seen.values())


def _scan(conn: Connection, target: _Target) -> None:
    col = target.column
    rows = sa.func.count().label("rows")
    query = sa.select(col, rows).where(col.isnot(None)).group_by(col)
    for row in conn.execute(query):
        target.counts[row[0]] += row.rows


def _pending(target: _Target, plan: Plan) -> bool:
    return any(v in plan.mapping for v in target.counts)


def _refuse_breaking_keys(targets: list[_Target], plan: Plan, keys: KeyReport) -> None:
    """Refuse, before any change, when a key would reject a rewrite this run must make."""
    busy = {t.key for t in targets if _pending(t, plan)}
    for problem in keys.problems:
        if problem.triggers & busy:
            raise MigrationError(problem.message)


def _check_lengths(conn: Connection, targets: list[_Target], plan: Plan) -> None:
    """Refuse a column too short for the new IDs (SQLite does not enforce lengths)."""
    if conn.dialect.name == "sqlite":
        return
    for target in targets:
        length = getattr(target.column.type, "length", None)
        longest = max(
            (len(a.run_id) for v, a in plan.mapping.items() if v in target.counts), default=0
        )
        if length is not None and longest > length:
            raise MigrationError(
                f"--column {target.ref.text}: holds at most {length} characters, "
                f"but the canonical IDs need {longest}"
            )


def _cascaded(targets: list[_Target], keys: KeyReport) -> dict[ColumnKey, list[_Target]]:
    """For each listed column, the listed parents whose updates cascade into it."""
    by_key = {t.key: t for t in targets}
    parents: dict[ColumnKey, list[_Target]] = {t.key: [] for t in targets}
    for cascade in keys.cascades:
        parents[cascade.child].append(by_key[cascade.parent])
    return parents


def _predict(targets: list[_Target], plan: Plan, keys: KeyReport) -> Counter[ColumnKey]:
    """Rows the real run's own updates would change: mapped rows no cascade reaches first."""
    parents = _cascaded(targets, keys)
    changed: Counter[ColumnKey] = Counter()
    for target in targets:
        for value, count in target.counts.items():
            if value in plan.mapping and not any(value in p.counts for p in parents[target.key]):
                changed[target.key] += count
    return changed


def _batches(legacy: list[str], weight: dict[str, int], size: int) -> Iterator[list[str]]:
    """Groups of whole legacy IDs holding about `size` rows (an ID is never split)."""
    batch: list[str] = []
    rows = 0
    for value in legacy:
        if batch and rows + weight[value] > size:
            yield batch
            batch, rows = [], 0
        batch.append(value)
        rows += weight[value]
    if batch:
        yield batch


def _execute(
    conn: Connection,
    targets: list[_Target],
    plan: Plan,
    keys: KeyReport,
    batch_size: int,
    now: datetime,
    progress: Progress | None,
) -> Counter[ColumnKey]:
    changed: Counter[ColumnKey] = Counter()
    if not plan.mapping:
        return changed
    conn.execution_options(**{WRITES: True})
    table = aliases_table(sa.MetaData())
    if any(v not in plan.recorded for v in plan.mapping):
        with conn.begin():
            table.create(conn, checkfirst=True)
    by_key = {t.key: t for t in targets}
    legacy = sorted(plan.mapping)
    weight = {v: sum(t.counts.get(v, 0) for t in targets) for v in legacy}
    total, done = sum(weight.values()), 0
    for batch in _batches(legacy, weight, batch_size):
        with conn.begin():
            defer_constraints(conn)
            record_aliases(
                conn, table, [(v, plan.mapping[v]) for v in batch if v not in plan.recorded], now
            )
            for key in keys.order:
                target = by_key[key]
                olds = [v for v in batch if v in target.counts]
                changed[key] += _rewrite(conn, target.column, olds, plan.mapping)
        done += sum(weight[v] for v in batch)
        if progress is not None:
            progress(done, total)
    return changed


def _rewrite(
    conn: Connection, column: sa.Column[Any], olds: list[str], mapping: dict[str, Alias]
) -> int:
    """UPDATE column through the mapping for `olds`; the rows this statement changed."""
    changed = 0
    table = column.table
    assert isinstance(table, sa.Table)
    for start in range(0, len(olds), CHUNK):
        chunk = olds[start : start + CHUNK]
        new = sa.case({old: mapping[old].run_id for old in chunk}, value=column)
        stmt = sa.update(table).where(column.in_(chunk)).values({column.name: new})
        changed += conn.execute(stmt).rowcount
    return changed
