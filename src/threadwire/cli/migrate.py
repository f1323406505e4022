"""CLI commands: `threadwire db migrate-ids` and `threadwire ids resolve` (migrate spec 1-2).

Thin: parse the options, call `threadwire.migrate.stored`, print what it returns.
Refusals (exit 2) are one line on standard error, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from threadwire.cli.db import db_app
from threadwire.cli.ids import EnableFormat, ids_app

if TYPE_CHECKING:
    from threadwire.migrate.stored import MigrationSummary

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (sqlite:///path, postgresql://...); default THREADWIRE_DATABASE_URL.",
        show_default=False,
    ),
]
Threads = Annotated[
    str | None,
    typer.Option(
        "--threads",
        metavar="TABLE.COLUMN",
        help="Known thread IDs, to settle IDs that read as more than one thread.",
    ),
]


def register(app: typer.Typer) -> None:
    """Attach the stored-ID migration commands to the `db` and `ids` groups."""
    del app  # the groups are already attached by threadwire.cli.db and threadwire.cli.ids
    db_app.command("migrate-ids")(migrate_ids_command)
    ids_app.command("resolve")(resolve_command)


def _fail(command: str, message: str) -> NoReturn:
    typer.echo(f"threadwire {command}: {message}", err=True)
    raise typer.Exit(2)


def _url(database_url: str | None) -> str:
    from threadwire.config import Settings

    return database_url or Settings.from_env().database_url


def migrate_ids_command(
    database_url: DatabaseUrl = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            metavar="TABLE.COLUMN",
            show_default=False,
            help="A run-ID column to rewrite (repeatable); the first is the primary one, "
            "one row per run.",
        ),
    ] = None,
    thread_column: Annotated[
        str | None,
        typer.Option(
            "--thread-column",
            metavar="TABLE.COLUMN",
            help="The row's thread ID, in the primary table, for IDs that embed none.",
        ),
    ] = None,
    created_at_column: Annotated[
        str | None,
        typer.Option(
            "--created-at-column",
            metavar="TABLE.COLUMN",
            help="The row's creation time, in the primary table (default: migration time).",
        ),
    ] = None,
    threads: Threads = None,
    enable_format: EnableFormat = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", metavar="N", help="Rows per transaction.")
    ] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Rewrite legacy run IDs in your tables to canonical ones, keeping old IDs resolvable."""
    from threadwire.migrate.stored import MigrationError, migrate_ids

    if not column:
        _fail("db migrate-ids", "--column TABLE.COLUMN is required (the first is the primary)")
    try:
        with _progress_bar(enabled=sys.stderr.isatty()) as progress:
            summary = migrate_ids(
                _url(database_url),
                column,
                thread_column=thread_column,
                created_at_column=created_at_column,
                threads=threads,
                enable_formats=enable_format or (),
                batch_size=batch_size,
                dry_run=dry_run,
                progress=progress,
            )
    except MigrationError as exc:
        _fail("db migrate-ids", str(exc))
    if json_output:
        typer.echo(json.dumps(summary.to_json()))
    else:
        _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _print_summary(summary: MigrationSummary) -> None:
    verb = "would migrate" if summary.dry_run else "migrated"
    typer.echo(f"{verb} {summary.migrated} legacy IDs")
    typer.echo(f"already canonical: {summary.already_canonical}")
    typer.echo(f"unresolvable: {len(summary.unresolvable)}")
    for item in summary.unresolvable:
        typer.echo(f"  {item.id!r}: {item.code}")
    for name, rows in summary.columns.items():
        typer.echo(f"{name}: {rows} rows {'to change' if summary.dry_run else 'changed'}")
    if summary.dry_run:
        typer.echo("dry run: nothing was written")


@contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress callback on a terminal, None elsewhere (logs stay clean)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("migrating IDs", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def resolve_command(
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Run IDs, old or new.")],
    database_url: DatabaseUrl = None,
    enable_format: EnableFormat = None,
    threads: Threads = None,
) -> None:
    """Print each ID's canonical run ID and thread as one JSON line (aliases, then parse)."""
    from threadwire.migrate.stored import MigrationError, resolve_ids

    try:
        answers = resolve_ids(
            _url(database_url), ids, enable_formats=enable_format or (), threads=threads
        )
    except MigrationError as exc:
        _fail("ids resolve", str(exc))
    for answer in answers:
        typer.echo(json.dumps(answer.to_json()))
    raise typer.Exit(1 if any(a.error for a in answers) else 0)
