"""Value types of the audit: finding kinds and findings, shared by finder, fixer and reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """The finding kinds of migrate.md section 3; each is one SARIF rule."""

    LEGACY_IMPORT = "legacy_import"
    LEGACY_CALL = "legacy_call"
    ADHOC_BUILD = "adhoc_build"
    ADHOC_PARSE = "adhoc_parse"
    PARSE_ERROR = "parse_error"


KIND_HELP: dict[Kind, str] = {
    Kind.LEGACY_IMPORT: "Import of a legacy ID module that threadwire.ids replaces.",
    Kind.LEGACY_CALL: "Call into a legacy ID module that threadwire.ids replaces.",
    Kind.ADHOC_BUILD: "A run or thread ID assembled by hand instead of threadwire.ids.",
    Kind.ADHOC_PARSE: "A run or thread ID split, sliced or matched by hand.",
    Kind.PARSE_ERROR: "A Python file the audit could not parse, so it was not checked.",
}


@dataclass(frozen=True, order=True)
class Finding:
    """One ID site: where it is (path relative to the audited root, 1-based line,
    0-based column of the expression's first line) and what to do about it."""

    path: str
    line: int
    column: int
    kind: Kind
    message: str
    suggestion: str | None = None
    fixable: bool = False
    end_line: int = 0
    end_column: int = 0
    fingerprint: str = ""

    def to_json(self) -> dict[str, object]:
        """The finding in the JSON shape migrate.md fixes (no other keys)."""
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "kind": str(self.kind),
            "message": self.message,
            "suggestion": self.suggestion,
            "fixable": self.fixable,
        }


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit found, sorted by path, line and column."""

    findings: tuple[Finding, ...]
    files_scanned: int
