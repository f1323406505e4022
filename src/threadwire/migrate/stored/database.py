"""Reaching a team's database: sync engines by URL, `TABLE.COLUMN` names, the aliases table.

The migration is a batch tool, so it uses SQLAlchemy Core with a synchronous driver
(sqlite3, psycopg 3) whatever async driver the URL names. Every name the user gives is
checked against the reflected schema and only ever reaches SQL through the dialect's
quoting, via reflected `Table` objects.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple
from urllib.request import pathname2url

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.pool import NullPool

ALIASES_TABLE: Final = "threadwire_id_aliases"
WRITES: Final = "threadwire_migrate_writes"
"""Execution option of a connection whose transactions write (SQLite: BEGIN IMMEDIATE)."""
CHUNK: Final = 500
"""Values per IN list: far below SQLite's and PostgreSQL's bind-parameter limits."""


class MigrationError(Exception):
    """A refusal with a one-line reason naming the argument or table at fault.

    Raised for bad arguments, a database that cannot be reached, and a foreign key that
    would reject the rewrite; the CLI prints it and exits 2. Nothing has been written.
    """


def one_line(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's SQL echo and links."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def sync_url(url: str) -> URL:
    """`url` with the synchronous driver this tool uses (sqlite3 or psycopg 3).

    >>> sync_url("postgresql+asyncpg://u@h/db").drivername
    'postgresql+psycopg'
    >>> sync_url("sqlite+aiosqlite:///./x.db").drivername
    'sqlite'
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise MigrationError(f"--database-url: {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise MigrationError(
        f"--database-url: unsupported database {parsed.drivername!r} (use sqlite:/// or postgresql://)"
    )


def _sqlite_engine(url: URL, *, read_only: bool) -> Engine:
    path = url.database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        raise MigrationError(f"--database-url: give a SQLite file path, not {path or 'memory'!r}")
    if not os.path.isfile(path):
        raise MigrationError(f"cannot reach database {path}: no such file")
    # mode=rw never creates the file. Read-only is query_only, not mode=ro: a read-only
    # connection cannot roll back the hot journal a killed writer leaves behind.
    uri = f"file:{pathname2url(os.path.abspath(path))}?mode=rw"

    def connect() -> sqlite3.Connection:
        dbapi = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        # Transactions are ours (BEGIN below), and declared foreign keys behave as
        # declared, as they do on PostgreSQL: cascades cascade, others are checked.
        dbapi.isolation_level = None
        dbapi.execute("PRAGMA foreign_keys = ON")
        if read_only:
            dbapi.execute("PRAGMA query_only = ON")
        return dbapi

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the lock up front: a deferred transaction that turns into a
        # writer after someone else's commit fails at once instead of waiting.
        writes = conn.get_execution_options().get(WRITES, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine

    return engine


def make_engine(url: str, *, read_only: bool) -> Engine:
    """A synchronous engine for `url`; `read_only` makes the database refuse writes."""
    target = sync_url(url)
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target, read_only=read_only)
    args: dict[str, Any] = {"connect_timeout": 10}
    if read_only:
        args["options"] = "-c default_transaction_read_only=on"
    return sa.create_engine(target, connect_args=args, poolclass=NullPool)


@contextmanager
def connect(url: str, *, read_only: bool) -> Iterator[Connection]:
    """One connection to `url` for the whole command; MigrationError when unreachable."""
    engine = make_engine(url, read_only=read_only)
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise MigrationError(f"cannot reach database {shown}: {one_line(exc)}") from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def begin_snapshot(conn: Connection) -> None:
    """Make the transaction just begun read one snapshot of the whole database.

    SQLite's read transactions already do; PostgreSQL's default (read committed) takes
    a new snapshot per statement, and the plan reads many tables.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def defer_constraints(conn: Connection) -> None:
    """Check deferrable foreign keys at commit, once every column of a batch is rewritten."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET CONSTRAINTS ALL DEFERRED")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A `TABLE.COLUMN` (or `SCHEMA.TABLE.COLUMN`) argument as the user wrote it."""

    text: str
    option: str
    schema: str | None
    table: str
    column: str

    @classmethod
    def parse(cls, text: str, option: str) -> ColumnRef:
        """Split `text`; MigrationError naming `option` when it is not TABLE.COLUMN."""
        parts = text.strip().split(".")
        if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
            raise MigrationError(f"{option} {text!r}: expected TABLE.COLUMN")
        schema = parts[0] if len(parts) == 3 else None
        return cls(text.strip(), option, schema, parts[-2], parts[-1])


class Catalog:
    """The reflected tables the command names, found case-insensitively when unambiguous."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.inspector = sa.inspect(conn)
        self.metadata = sa.MetaData()
        self._names: dict[str | None, list[str]] = {}

    def table(self, ref: ColumnRef) -> sa.Table:
        """The reflected table `ref` names; MigrationError when there is none."""
        if ref.schema not in self._names:
            self._names[ref.schema] = self.inspector.get_table_names(schema=ref.schema)
        name = _pick(ref.table, self._names[ref.schema])
        if name is None:
            where = f" in schema {ref.schema!r}" if ref.schema else ""
            raise MigrationError(f"{ref.option} {ref.text}: no table {ref.table!r}{where}")
        key = f"{ref.schema}.{name}" if ref.schema else name
        if key in self.metadata.tables:
            return self.metadata.tables[key]
        try:
            return sa.Table(
                name, self.metadata, schema=ref.schema, autoload_with=self.conn, resolve_fks=False
            )
        except NoSuchTableError:
            raise MigrationError(f"{ref.option} {ref.text}: no table {ref.table!r}") from None

    def column(self, ref: ColumnRef) -> sa.Column[Any]:
        """The reflected column `ref` names; MigrationError naming table and column if absent."""
        table = self.table(ref)
        name = _pick(ref.column, [c.name for c in table.columns])
        if name is None:
            raise MigrationError(
                f"{ref.option} {ref.text}: table {table.name!r} has no column {ref.column!r}"
            )
        return table.columns[name]


def _pick(wanted: str, names: list[str]) -> str | None:
    if wanted in names:
        return wanted
    folded = [n for n in names if n.lower() == wanted.lower()]
    return folded[0] if len(folded) == 1 else None


def label(column: sa.Column[Any]) -> str:
    """`table.column` of a reflected column (schema-qualified when it has one)."""
    table = column.table
    assert isinstance(table, sa.Table)
    return f"{table.fullname}.{column.name}"


class Alias(NamedTuple):
    """A recorded mapping: the canonical run ID and thread a legacy ID now names."""

    run_id: str
    thread_id: str


def aliases_table(metadata: sa.MetaData) -> sa.Table:
    """`threadwire_id_aliases` as this tool creates it (the store's is the same table)."""
    return sa.Table(
        ALIASES_TABLE,
        metadata,
        sa.Column("legacy_id", sa.String(256), primary_key=True),
        sa.Column("run_id", sa.String(256), nullable=False, index=True),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("migrated_at", sa.DateTime(timezone=True), nullable=False),
    )


def has_aliases(conn: Connection) -> bool:
    """True when the database already has `threadwire_id_aliases`."""
    return sa.inspect(conn).has_table(ALIASES_TABLE)


def load_aliases(conn: Connection, table: sa.Table, legacy_ids: Iterable[str]) -> dict[str, Alias]:
    """The recorded mappings of those of `legacy_ids` that have one."""
    wanted = sorted(set(legacy_ids))
    found: dict[str, Alias] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        query = sa.select(table.c.legacy_id, table.c.run_id, table.c.thread_id).where(
            table.c.legacy_id.in_(chunk)
        )
        for legacy_id, run_id, thread_id in conn.execute(query):
            found[str(legacy_id)] = Alias(str(run_id), str(thread_id))
    return found


def record_aliases(
    conn: Connection, table: sa.Table, mappings: Iterable[tuple[str, Alias]], at: datetime
) -> None:
    """Insert mappings not recorded yet (a row already there is kept as it is)."""
    rows = [
        {"legacy_id": legacy, "run_id": a.run_id, "thread_id": a.thread_id, "migrated_at": at}
        for legacy, a in mappings
    ]
    if not rows:
        return
    stmt: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing(index_elements=["legacy_id"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=["legacy_id"])
    conn.execute(stmt, rows)
