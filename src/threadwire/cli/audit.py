"""CLI command `threadwire audit`: find ad-hoc ID code and legacy ID modules in a tree."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer


class OutputFormat(enum.StrEnum):
    """Report formats."""

    text = "text"
    json = "json"
    sarif = "sarif"


def audit(
    path: Annotated[Path, typer.Argument(help="File or directory to audit.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML file with [tool.threadwire.audit] settings."),
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="Report format.", case_sensitive=False)
    ] = OutputFormat.text,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Only findings not in this file fail.")
    ] = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Rewrite what maps onto threadwire.ids.")
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Print the --fix changes as a diff; write nothing.")
    ] = False,
    write_baseline: Annotated[
        Path | None,
        typer.Option("--write-baseline", help="Record the current findings as the baseline."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here, not stdout.")
    ] = None,
) -> None:
    """Find code that makes, slices or splits run and thread IDs outside threadwire.ids.

    Exit status: 0 when no finding is left (outside the baseline), 1 otherwise, 2 on bad
    arguments or configuration.
    """
    from threadwire.migrate.audit.command import run_audit  # LibCST loads only for audit

    result = run_audit(
        path,
        config_file=config,
        fmt=fmt.value,
        baseline=baseline,
        fix=fix,
        diff=diff,
        write_baseline_to=write_baseline,
    )
    if result.stdout:
        if output is not None:
            output.write_text(result.stdout, encoding="utf-8")
        else:
            sys.stdout.write(result.stdout)
    if result.stderr:
        sys.stderr.write(result.stderr)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("audit")(audit)
