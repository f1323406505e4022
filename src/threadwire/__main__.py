"""`python -m threadwire` runs the CLI."""

from __future__ import annotations

from threadwire.cli import main

main()
