"""A team's legacy database: related tables holding run IDs in every shape, and checkers.

`runs` is the primary table (one row per run). `run_steps` refers to it with
ON UPDATE CASCADE, `messages` with a deferrable key (and a second, unkeyed column),
`audit` by convention only. The IDs mix canonical, `legacy_run`, bare UUIDs (hyphenated
and 32 hex), IDs that are ambiguous once `legacy_run_ts` is on, and junk.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadwire.migrate.stored.database import sync_url

CANONICAL: Final = "thread_user_42_run_1714564800123_aaaaaaaa"
OTHER_CANONICAL: Final = "thread_other_run_1700000000000_12345678"
LEGACY: Final = "run_user_42_7f3a9c01"
LEGACY_UNDERSCORES: Final = "run_thread_abc_123_0badcafe"
UUID_HYPHENS: Final = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"
UUID_HEX: Final = "5f0c6a1e9b2d4c3a8e7f60a1b2c3d4e5"
AMBIGUOUS: Final = "run_abc_12345_7f3a9c01"
AMBIGUOUS_UNKNOWN: Final = "run_zzz_999_0000beef"
UUID_NO_THREAD: Final = "11111111-2222-4333-8444-555555555555"
ORPHAN: Final = "run_orphan_1_deadbeef"
ORPHAN_UUID: Final = "22222222-3333-4444-8555-666666666666"

THREADS: Final = ("user_42", "thread_abc_123", "team.x:1", "abc", "orphan_1")


def utc(year: int, month: int, day: int, *rest: int) -> datetime:
    """An aware UTC datetime."""
    hour, minute, second, micro = (*rest, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# legacy_id -> (thread, created_at or None) as stored in `runs`.
RUNS: Final[dict[str, tuple[str | None, datetime | None]]] = {
    CANONICAL: ("user_42", utc(2024, 5, 1, 12, 0, 0, 123000)),
    LEGACY: (None, utc(2024, 5, 1, 12, 0, 1, 999999)),
    LEGACY_UNDERSCORES: (None, utc(2024, 5, 2)),
    UUID_HYPHENS: ("team.x:1", utc(2024, 6, 1)),
    UUID_HEX: ("abc", None),
    AMBIGUOUS: (None, utc(2024, 7, 1)),
    AMBIGUOUS_UNKNOWN: (None, utc(2024, 7, 2)),
    UUID_NO_THREAD: (None, utc(2024, 7, 3)),
}

# What each resolvable legacy ID must become (with legacy_run_ts on and --threads given):
# (thread, timestamp_ms or None for "migration time", rand8 or None for "derived").
EXPECTED: Final[dict[str, tuple[str, int | None, str | None]]] = {
    LEGACY: ("user_42", 1714564801999, "7f3a9c01"),
    LEGACY_UNDERSCORES: ("thread_abc_123", 1714608000000, "0badcafe"),
    UUID_HYPHENS: ("team.x:1", 1717200000000, None),
    UUID_HEX: ("abc", None, None),
    AMBIGUOUS: ("abc", 1719792000000, "7f3a9c01"),
    ORPHAN: ("orphan_1", None, "deadbeef"),
}
UNRESOLVABLE: Final = [
    {"id": "", "code": "empty"},
    {"id": UUID_NO_THREAD, "code": "unknown_run"},
    {"id": ORPHAN_UUID, "code": "unknown_run"},
    {"id": "hello world", "code": "bad_charset"},
    {"id": AMBIGUOUS_UNKNOWN, "code": "ambiguous"},
]
UNRESOLVABLE.sort(key=lambda u: u["id"])

COLUMNS: Final = [
    "runs.run_id",
    "run_steps.run_id",
    "messages.run_id",
    "messages.parent_run_id",
    "audit.run_ref",
]
FULL_OPTIONS: Final[dict[str, Any]] = {
    "thread_column": "runs.thread_id",
    "created_at_column": "runs.created_at",
    "threads": "threads.thread_id",
    "enable_formats": ["legacy_run_ts"],
}
FULL_ARGS: Final = [
    "--thread-column",
    "runs.thread_id",
    "--created-at-column",
    "runs.created_at",
    "--threads",
    "threads.thread_id",
    "--enable-format",
    "legacy_run_ts",
]


def column_args(columns: list[str] = COLUMNS) -> list[str]:
    """`--column X` for each column."""
    return [arg for c in columns for arg in ("--column", c)]


def engine_for(url: str) -> sa.Engine:
    """A plain synchronous engine for seeding and checking (not the tool's)."""
    target = sync_url(url)
    if target.get_backend_name() == "sqlite":
        engine = sa.create_engine(target, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(engine, "connect")
        def _fk(dbapi: Any, _record: Any) -> None:
            dbapi.execute("PRAGMA foreign_keys = ON")

        return engine
    return sa.create_engine(target, poolclass=sa.pool.NullPool)


@contextmanager
def connection(url: str) -> Iterator[Connection]:
    """A connection in a committed-on-exit transaction; the engine is disposed after."""
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def build_schema(
    metadata: sa.MetaData, *, steps_key: str = "cascade", created_type: Any = None
) -> None:
    """The legacy tables. `steps_key`: cascade | deferrable | plain (rejects the rewrite)."""
    sa.Table("threads", metadata, sa.Column("thread_id", sa.String(128), primary_key=True))
    sa.Table(
        "runs",
        metadata,
        sa.Column("run_id", sa.String(256), primary_key=True),
        sa.Column("thread_id", sa.String(128)),
        sa.Column("created_at", created_type or sa.DateTime()),
        sa.Column("n", sa.Integer, nullable=False, unique=True),
    )
    keys: dict[str, dict[str, Any]] = {
        "cascade": {"onupdate": "CASCADE"},
        "deferrable": {"deferrable": True, "initially": "IMMEDIATE"},
        "plain": {},
    }
    fk_options = keys[steps_key]
    sa.Table(
        "run_steps",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id", **fk_options), index=True),
        sa.Column("step", sa.Integer),
    )
    sa.Table(
        "messages",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "run_id",
            sa.String(256),
            sa.ForeignKey("runs.run_id", deferrable=True, initially="IMMEDIATE"),
            index=True,
        ),
        sa.Column("parent_run_id", sa.String(256)),
        sa.Column("body", sa.Text),
    )
    sa.Table(
        "audit",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("run_ref", sa.String(256)),
    )


def seed(url: str, *, steps_key: str = "cascade") -> None:
    """Create and fill the legacy tables."""
    metadata = sa.MetaData()
    build_schema(metadata, steps_key=steps_key)
    t = metadata.tables
    with connection(url) as conn:
        metadata.create_all(conn)
        conn.execute(t["threads"].insert(), [{"thread_id": x} for x in THREADS])
        conn.execute(
            t["runs"].insert(),
            [
                {"run_id": r, "thread_id": th, "created_at": _naive(c), "n": i}
                for i, (r, (th, c)) in enumerate(RUNS.items())
            ],
        )
        steps: list[str | None] = [
            CANONICAL,
            LEGACY,
            LEGACY,
            LEGACY_UNDERSCORES,
            UUID_HYPHENS,
            AMBIGUOUS,
        ]
        steps += [AMBIGUOUS_UNKNOWN, UUID_HEX, None]
        conn.execute(
            t["run_steps"].insert(),
            [{"id": i, "run_id": r, "step": i} for i, r in enumerate(steps)],
        )
        messages = [
            (LEGACY, None),
            (UUID_HYPHENS, LEGACY),
            (UUID_HEX, CANONICAL),
            (UUID_HEX, UUID_HYPHENS),
            (CANONICAL, ORPHAN),
            (None, AMBIGUOUS),
            (UUID_NO_THREAD, None),
        ]
        conn.execute(
            t["messages"].insert(),
            [
                {"id": i, "run_id": r, "parent_run_id": p, "body": f"m{i}"}
                for i, (r, p) in enumerate(messages)
            ],
        )
        audit: list[str | None] = [
            LEGACY,
            ORPHAN,
            ORPHAN,
            ORPHAN_UUID,
            "hello world",
            "",
            None,
            OTHER_CANONICAL,
        ]
        audit += [AMBIGUOUS, UUID_HEX]
        conn.execute(t["audit"].insert(), [{"id": i, "run_ref": r} for i, r in enumerate(audit)])


def _naive(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=None)


Snapshot = dict[str, dict[object, tuple[Any, ...]]]


def snapshot(url: str) -> Snapshot:
    """Every listed column of every row, by table and primary key."""
    shape = {
        "runs": ("n", ["run_id"]),
        "run_steps": ("id", ["run_id"]),
        "messages": ("id", ["run_id", "parent_run_id"]),
        "audit": ("id", ["run_ref"]),
    }
    result: Snapshot = {}
    with connection(url) as conn:
        for table, (pk, cols) in shape.items():
            rows = conn.exec_driver_sql(
                f"SELECT {pk}, {', '.join(cols)} FROM {table} ORDER BY {pk}"
            ).all()
            result[table] = {row[0]: tuple(row[1:]) for row in rows}
    return result


def aliases(url: str) -> dict[str, tuple[str, str]]:
    """The recorded mappings (empty when the table does not exist)."""
    with connection(url) as conn:
        if not sa.inspect(conn).has_table("threadwire_id_aliases"):
            return {}
        rows = conn.exec_driver_sql(
            "SELECT legacy_id, run_id, thread_id FROM threadwire_id_aliases"
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def table_names(url: str) -> set[str]:
    """Tables in the database."""
    with connection(url) as conn:
        return set(sa.inspect(conn).get_table_names())


def dump(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as sorted text: equal dumps mean nothing was written."""
    result: dict[str, list[tuple[str, ...]]] = {}
    with connection(url) as conn:
        for name in sa.inspect(conn).get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            rows = conn.execute(table.select()).all()
            result[name] = sorted(tuple(repr(v) for v in row) for row in rows)
    return result
