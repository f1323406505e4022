"""The `threadwire audit` command as a function: arguments in, exit code and text out,
so the CLI stays a thin shell and tests need no subprocess."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from threadwire.migrate.audit.baseline import (
    BaselineError,
    load_baseline,
    new_findings,
    write_baseline,
)
from threadwire.migrate.audit.config import ConfigError, load_config
from threadwire.migrate.audit.report import render
from threadwire.migrate.audit.runner import audit_tree, fix_tree, unified_diff

FORMATS = ("text", "json", "sarif")


@dataclass(frozen=True)
class CommandResult:
    """What the command prints and how it exits (0 clean, 1 findings, 2 bad input)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


def run_audit(
    path: Path,
    *,
    config_file: Path | None = None,
    fmt: str = "text",
    baseline: Path | None = None,
    fix: bool = False,
    diff: bool = False,
    write_baseline_to: Path | None = None,
) -> CommandResult:
    """Audit (or fix, or diff) the tree at `path` as migrate.md section 3 specifies."""
    if fmt not in FORMATS:
        return CommandResult(2, stderr=f"threadwire audit: unknown format {fmt!r}\n")
    if not path.exists():
        return CommandResult(2, stderr=f"threadwire audit: no such file or directory: {path}\n")
    try:
        config = load_config(path, config_file)
        accepted = load_baseline(baseline) if baseline is not None else None
    except (ConfigError, BaselineError) as exc:
        return CommandResult(2, stderr=f"threadwire audit: {exc}\n")
    if fix or diff:
        outcome = fix_tree(path, config, write=not diff)
        remaining = list(outcome.after.findings)
        if accepted is not None:
            remaining = new_findings(remaining, accepted)
        verb = "would change" if diff else "changed"
        note = (
            f"threadwire audit --fix: {verb} {len(outcome.changes)} files; "
            f"{len(remaining)} findings left\n"
        )
        if diff:
            return CommandResult(1 if remaining else 0, unified_diff(outcome.changes), note)
        report = render(fmt, outcome.after, remaining, path)
        return CommandResult(1 if remaining else 0, report, note)
    result = audit_tree(path, config).result
    if write_baseline_to is not None:
        count = write_baseline(write_baseline_to, result.findings)
        return CommandResult(
            0, stderr=f"threadwire audit: wrote {count} findings to {write_baseline_to}\n"
        )
    findings = list(result.findings)
    if accepted is not None:
        findings = new_findings(findings, accepted)
    return CommandResult(1 if findings else 0, render(fmt, result, findings, path))
