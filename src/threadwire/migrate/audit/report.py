"""Render an audit for people (text), for scripts (JSON, the shape migrate.md fixes) and
for code-scanning UIs (SARIF 2.1.0, one rule per finding kind)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from threadwire import __version__
from threadwire.migrate.audit.model import KIND_HELP, AuditResult, Finding, Kind

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_RULE_NAMES = {
    Kind.LEGACY_IMPORT: "LegacyIdImport",
    Kind.LEGACY_CALL: "LegacyIdCall",
    Kind.ADHOC_BUILD: "AdHocIdBuild",
    Kind.ADHOC_PARSE: "AdHocIdParse",
    Kind.PARSE_ERROR: "ParseError",
}


def render_text(findings: Sequence[Finding], files_scanned: int) -> str:
    """One `path:line:col: kind: message` line per finding (1-based column, as editors
    count), then a summary line."""
    lines = []
    for f in findings:
        fix = " [fixable]" if f.fixable else ""
        lines.append(f"{f.path}:{f.line}:{f.column + 1}: {f.kind}: {f.message}{fix}")
        if f.suggestion:
            lines.append(f"    suggestion: {f.suggestion}")
    counts = Counter(str(f.kind) for f in findings)
    detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    noun = "finding" if len(findings) == 1 else "findings"
    summary = f"{len(findings)} {noun} in {files_scanned} files scanned"
    lines.append(summary + (f" ({detail})" if detail else ""))
    return "\n".join(lines) + "\n"


def render_json(findings: Sequence[Finding], files_scanned: int) -> str:
    """`{"findings": [...], "files_scanned": N}` exactly as migrate.md section 3 says."""
    payload = {"findings": [f.to_json() for f in findings], "files_scanned": files_scanned}
    return json.dumps(payload, indent=2) + "\n"


def render_sarif(findings: Sequence[Finding], files_scanned: int, root: Path) -> str:
    """A SARIF 2.1.0 log with one run, one rule per kind, and a region per finding."""
    kinds = list(Kind)
    rules = [
        {
            "id": str(kind),
            "name": _RULE_NAMES[kind],
            "shortDescription": {"text": KIND_HELP[kind]},
            "fullDescription": {"text": KIND_HELP[kind]},
            "defaultConfiguration": {"level": "error" if kind is Kind.PARSE_ERROR else "warning"},
            "helpUri": "https://github.com/threadwire/threadwire/blob/main/docs/migration.md",
            "help": {"text": f"{KIND_HELP[kind]} See docs/migration.md."},
        }
        for kind in kinds
    ]
    results = []
    for f in findings:
        region = {
            "startLine": f.line,
            "startColumn": f.column + 1,
            "endLine": max(f.end_line, f.line),
            "endColumn": (f.end_column + 1)
            if f.end_line > f.line or f.end_column > f.column
            else f.column + 2,
        }
        result: dict[str, object] = {
            "ruleId": str(f.kind),
            "ruleIndex": kinds.index(f.kind),
            "level": "error" if f.kind is Kind.PARSE_ERROR else "warning",
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path, "uriBaseId": "SRCROOT"},
                        "region": region,
                    }
                }
            ],
            "partialFingerprints": {"threadwireAudit/v1": f.fingerprint},
            "properties": {"fixable": f.fixable, "suggestion": f.suggestion},
        }
        results.append(result)
    base = root.resolve() if root.is_dir() else root.resolve().parent
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "threadwire-audit",
                        "version": __version__,
                        "informationUri": "https://github.com/threadwire/threadwire",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"SRCROOT": {"uri": base.as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": results,
                "properties": {"filesScanned": files_scanned},
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def render(fmt: str, result: AuditResult, findings: Sequence[Finding], root: Path) -> str:
    """The report in `fmt` (text, json or sarif) for `findings` of `result`."""
    if fmt == "json":
        return render_json(findings, result.files_scanned)
    if fmt == "sarif":
        return render_sarif(findings, result.files_scanned, root)
    return render_text(findings, result.files_scanned)
