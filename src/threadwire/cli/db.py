"""CLI commands: `threadwire db ...` (schema upgrade, retention)."""

from __future__ import annotations

import typer

db_app = typer.Typer(
    help="The store's schema, retention and stored-ID migration.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Attach `threadwire db` to the main app."""
    app.add_typer(db_app, name="db")
