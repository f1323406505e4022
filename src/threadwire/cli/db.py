"""CLI commands: `threadwire db ...` (schema upgrade, retention)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Annotated, Final

import typer
from sqlalchemy.exc import SQLAlchemyError

from threadwire.config import Settings
from threadwire.store.base import PruneResult, StoreError

db_app = typer.Typer(
    help="The store's schema, retention and stored-ID migration.", no_args_is_help=True
)

_DURATION: Final = re.compile(r"(?P<n>\d+)(?P<unit>[smhdw])")
_DURATION_ALL: Final = re.compile(r"(?:\d+[smhdw])+")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (sqlite:///path, postgresql://...); default THREADWIRE_DATABASE_URL.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Attach `threadwire db` to the main app."""
    app.add_typer(db_app, name="db")


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, `2w` or a sum like `1d12h` as a timedelta.

    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    """
    compact = text.strip().lower()
    if not _DURATION_ALL.fullmatch(compact):
        raise ValueError(f"not a duration: {text[:80]!r} (use e.g. 30d, 12h, 90m, 1d12h)")
    total = timedelta()
    for part in _DURATION.finditer(compact):
        total += timedelta(**{_UNITS[part.group("unit")]: int(part.group("n"))})
    return total


async def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the database at `url` to the newest schema; returns (before, after) revisions."""
    from threadwire.store import schema
    from threadwire.store.engine import create_engine

    engine = create_engine(url)
    try:
        before = await schema.upgrade(engine)
    finally:
        await engine.dispose()
    return before.current, before.head


async def prune(url: str, older_than: timedelta, batch_size: int) -> PruneResult:
    """Run one retention pass on the store at `url`."""
    from threadwire.store.sql import SqlStore

    store = SqlStore(url)
    await store.open()
    try:
        return await store.prune(older_than, batch_size=batch_size)
    finally:
        await store.close()


def _url(database_url: str | None) -> str:
    return database_url or Settings.from_env().database_url


def _fail(message: str) -> typer.Exit:
    typer.echo(f"threadwire db: {message}", err=True)
    return typer.Exit(2)


@db_app.command("upgrade")
def upgrade_command(database_url: DatabaseUrl = None) -> None:
    """Apply the store's pending schema migrations (run before starting a new version)."""
    try:
        before, after = asyncio.run(upgrade(_url(database_url)))
    except (ValueError, SQLAlchemyError, OSError) as exc:
        raise _fail(str(exc).splitlines()[0]) from exc
    if before == after:
        typer.echo(f"schema already at revision {after}")
    else:
        typer.echo(f"schema upgraded from {before or 'empty'} to revision {after}")


@db_app.command("prune")
def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of events to remove, e.g. 30d, 12h.")
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events deleted per transaction.")
    ] = 1000,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove old events of finished runs; resumes from before the cut get `gone`."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from exc
    try:
        result = asyncio.run(prune(_url(database_url), age, batch_size))
    except (ValueError, StoreError, SQLAlchemyError, OSError) as exc:
        raise _fail(str(exc).splitlines()[0]) from exc
    typer.echo(
        f"pruned {result.events} events from {result.threads} threads "
        f"and {result.idempotency_keys} idempotency keys older than {older_than}"
    )
