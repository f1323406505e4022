"""The `threadwire` command line: a thin Typer app; each command parses and delegates."""

from __future__ import annotations

import sys

import typer

# Typer (>= 0.26) vendors Click; its exceptions are what a parse failure raises.
from typer._click import exceptions as click_errors

from threadwire.cli import audit, db, ids, migrate, serve, traces, verify

app = typer.Typer(
    name="threadwire",
    help="Run AI agents and deliver every live event to the right user, in order.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for _module in (ids, db, migrate, serve, audit, traces, verify):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Bad arguments exit 2 with one line on standard error naming the argument at fault
    (scripts and CI read it), instead of a boxed usage panel; `--help` and a bare
    command group still print their help.
    """
    try:
        code = app(args=argv, standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        ctx = exc.ctx if isinstance(exc, click_errors.UsageError) else None
        prefix = f"{ctx.command_path}: " if ctx else "threadwire: "
        typer.echo(f"{prefix}error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
