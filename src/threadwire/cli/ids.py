"""CLI commands: `threadwire ids ...`: make thread and run IDs, parse any run ID.

The logic lives in plain functions that return values (`describe`, `build_registry`);
the commands only read arguments and print. `threadwire ids resolve` (the store's) is
added to `ids_app` by its owner: `from threadwire.cli.ids import ids_app`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

import typer

from threadwire.ids import (
    FormatRegistry,
    InvalidIdError,
    new_run_id,
    new_thread_id,
    registry,
)

ids_app = typer.Typer(
    name="ids",
    help="Make thread and run IDs, and parse run IDs of any enabled format.",
    no_args_is_help=True,
)

EnableFormat = Annotated[
    list[str] | None,
    typer.Option(
        "--enable-format",
        metavar="NAME",
        help="Turn a registered format on for this command (e.g. legacy_run_ts). Repeatable.",
    ),
]
DisableFormat = Annotated[
    list[str] | None,
    typer.Option(
        "--disable-format",
        metavar="NAME",
        help="Turn a registered format off for this command (e.g. uuid). Repeatable.",
    ),
]


def build_registry(
    enable: Iterable[str] | None = None, disable: Iterable[str] | None = None
) -> FormatRegistry:
    """A copy of the process registry with the named formats switched on or off.

    Raises `typer.BadParameter` (exit status 2) for a name that is not registered or that
    cannot be switched off.
    """
    formats = registry.copy()
    for name in enable or ():
        _switch(formats, name, True)
    for name in disable or ():
        _switch(formats, name, False)
    return formats


def _switch(formats: FormatRegistry, name: str, on: bool) -> None:
    option = "--enable-format" if on else "--disable-format"
    if name not in formats:
        known = ", ".join(formats.names())
        raise typer.BadParameter(f"no format {name!r} (known: {known})", param_hint=option)
    try:
        formats.enable(name) if on else formats.disable(name)
    except ValueError as error:  # the canonical format cannot be turned off
        raise typer.BadParameter(str(error), param_hint=option) from error


def describe(run_id: str, formats: FormatRegistry | None = None) -> dict[str, Any]:
    """What `threadwire ids parse` prints for one ID: its fields, or its error."""
    try:
        parsed = (formats or registry).parse(run_id)
    except InvalidIdError as error:
        failure: dict[str, Any] = {"id": run_id, "error": error.code, "message": str(error)}
        if error.candidates:
            failure["candidates"] = list(error.candidates)
        return failure
    created_at = parsed.created_at
    return {
        "id": parsed.raw,
        "format": parsed.format,
        "thread_id": parsed.thread_id,
        "timestamp_ms": parsed.timestamp_ms,
        "created_at": None if created_at is None else created_at.isoformat(),
        "rand": parsed.rand,
        "is_canonical": parsed.is_canonical,
    }


def _stdin_ids() -> Iterator[str]:
    # Bytes, decoded leniently: a stray byte becomes a bad_charset answer, not a crash.
    for line in sys.stdin.buffer:
        text = line.decode("utf-8", "surrogateescape").strip()
        if text:
            yield text


def _fail(error: InvalidIdError) -> None:
    typer.echo(f"error: {error.code}: {error}", err=True)
    raise typer.Exit(1)


@ids_app.command("new-thread")
def new_thread_command() -> None:
    """Print a fresh thread ID (32 hex digits of a UUIDv7)."""
    typer.echo(new_thread_id())


@ids_app.command("new-run")
def new_run_command(
    thread: Annotated[str, typer.Argument(help="The thread ID the run belongs to.")],
) -> None:
    """Print a fresh canonical run ID for THREAD."""
    try:
        typer.echo(new_run_id(thread))
    except InvalidIdError as error:
        _fail(error)


@ids_app.command("parse")
def parse_command(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="ID", help="Run IDs; none: read one per line from stdin."),
    ] = None,
    enable_format: EnableFormat = None,
    disable_format: DisableFormat = None,
) -> None:
    """Parse run IDs; print one JSON object per ID; exit 1 if any was rejected."""
    formats = build_registry(enable_format, disable_format)
    failed = False
    for run_id in run_ids or _stdin_ids():
        answer = describe(run_id, formats)
        failed = failed or "error" in answer
        typer.echo(json.dumps(answer))
    if failed:
        raise typer.Exit(1)


@ids_app.command("formats")
def formats_command(
    enable_format: EnableFormat = None,
    disable_format: DisableFormat = None,
) -> None:
    """List the registered run-ID formats, highest precedence first, as JSON lines."""
    for fmt in build_registry(enable_format, disable_format):
        typer.echo(
            json.dumps(
                {
                    "name": fmt.name,
                    "enabled": fmt.enabled,
                    "precedence": fmt.precedence,
                    "regex": fmt.pattern.pattern,
                }
            )
        )


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.add_typer(ids_app, name="ids")


__all__ = ["build_registry", "describe", "ids_app", "register"]
