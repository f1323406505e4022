"""The `threadwire` command line: a thin Typer app; each command parses and delegates."""

from __future__ import annotations

import typer

from threadwire.cli import audit, db, ids, migrate, serve, traces, verify

app = typer.Typer(
    name="threadwire",
    help="Run AI agents and deliver every live event to the right user, in order.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for _module in (ids, db, migrate, serve, audit, traces, verify):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
