"""Helpers for the audit tests: write a small tree, audit it, list what was found."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from threadwire.migrate.audit import AuditConfig, Finding, audit_tree, load_config

FIXTURES = Path(__file__).parent / "fixtures"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Create `files` (relative path -> source, dedented) under `root`."""
    for relpath, source in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return root


def audit_snippet(
    tmp_path: Path, source: str, *, config: AuditConfig | None = None
) -> list[Finding]:
    """Audit one module `app/mod.py` written from `source`."""
    write_tree(tmp_path, {"app/__init__.py": "", "app/mod.py": source})
    return list(audit_tree(tmp_path, config or load_config(tmp_path)).result.findings)


def kinds_by_line(findings: list[Finding]) -> list[tuple[int, str]]:
    """(line, kind) of each finding, in order."""
    return [(f.line, str(f.kind)) for f in findings]


def copy_fixture(name: str, destination: Path) -> Path:
    """A private copy of a fixture code base, safe to fix in place."""
    target = destination / name
    shutil.copytree(FIXTURES / name, target)
    return target


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`threadwire ...` in a child process, as a user or CI would run it."""
    return subprocess.run(
        [sys.executable, "-m", "threadwire", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=90,
        check=False,
    )


def run_own_tests(tree: Path) -> subprocess.CompletedProcess[str]:
    """The fixture code base's own test suite, run with its own pytest configuration."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        capture_output=True,
        text=True,
        cwd=tree,
        timeout=90,
        check=False,
    )
