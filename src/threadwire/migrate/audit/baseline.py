"""A baseline: the findings a team accepted when it adopted the audit, so that only new
ones fail CI. Entries match by path, kind and a fingerprint of the code (not the line),
so unrelated edits that move code around do not resurrect old findings."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from threadwire.migrate.audit.model import Finding

BASELINE_VERSION = 1


class BaselineError(Exception):
    """The baseline file cannot be read (exit 2)."""


def write_baseline(path: Path, findings: Iterable[Finding]) -> int:
    """Write every finding to `path`; returns how many were written."""
    entries = [
        {
            "path": f.path,
            "kind": str(f.kind),
            "fingerprint": f.fingerprint,
            "line": f.line,
            "message": f.message,
        }
        for f in findings
    ]
    payload = {"version": BASELINE_VERSION, "tool": "threadwire audit", "findings": entries}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return len(entries)


def load_baseline(path: Path) -> Counter[tuple[str, str, str]]:
    """The accepted findings as a multiset of (path, kind, fingerprint)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from exc
    entries = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BaselineError(f"{path}: not a threadwire audit baseline (no findings list)")
    accepted: Counter[tuple[str, str, str]] = Counter()
    for entry in entries:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("path", "kind", "fingerprint")
        ):
            raise BaselineError(f"{path}: malformed entry {entry!r}")
        accepted[(entry["path"], entry["kind"], entry["fingerprint"])] += 1
    return accepted


def new_findings(
    findings: Sequence[Finding], accepted: Counter[tuple[str, str, str]]
) -> list[Finding]:
    """The findings the baseline does not account for (each entry covers one finding)."""
    left = accepted.copy()
    fresh = []
    for f in findings:
        key = (f.path, str(f.kind), f.fingerprint)
        if left[key] > 0:
            left[key] -= 1
        else:
            fresh.append(f)
    return fresh
