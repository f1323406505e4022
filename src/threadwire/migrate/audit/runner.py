"""Audit or fix a whole tree: find the files, learn the legacy modules, audit the rest."""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from threadwire.migrate.audit.config import AuditConfig
from threadwire.migrate.audit.files import SourceFile, iter_python_files
from threadwire.migrate.audit.fixer import audit_source, parse_error_finding
from threadwire.migrate.audit.legacy import LegacyApi
from threadwire.migrate.audit.model import AuditResult, Finding

_MAX_ROUNDS = 4  # a rewrite inside a kept part of another one lands in the next round


def _fragment(text: str) -> str:
    """A regex for a name fragment in any spelling key_role accepts (`run_id`, `runId`,
    `X-Run-Id`): case-insensitive, `_` optionally `-` or nothing."""
    return "[_-]?".join(re.escape(part) for part in text.split("_"))


def mention_pattern(config: AuditConfig, api: LegacyApi) -> re.Pattern[str]:
    """Text every module with an ID site must contain: an ID name (or a fragment of a
    configured pattern), a string that starts with `run`/`thread` then `_`, `-` or its
    end (text that starts an ID), a maker's name (`new_run`), or the name of a legacy
    module or of a legacy name another module re-exports. Modules without any of these
    cannot hold a finding, so they skip the (slow) LibCST analysis; they are still
    checked for syntax errors."""
    words = [
        r"[\"'](?:run|thread)(?:[_\-]|[\"'])",  # text that starts an ID: "run_", f"thread_
        r"(?:new|make|generate|gen|create|build|mint|next)\w*[_\-](?:run|thread)\b",
    ]
    for pattern in config.id_names.patterns:
        for part in re.split(r"[*?\[\]]+", pattern):
            if len(part.strip("_")) >= 2:
                words.append(_fragment(part.strip("_")))
    legacy = {*config.legacy.last_parts}
    legacy.update(name.rsplit(".", 1)[-1] for name in config.legacy.names)
    legacy.update(alias.rsplit(".", 1)[-1] for alias in api.aliases)
    legacy.update(target.rsplit(".", 1)[-1] for target in api.aliases.values())
    words.extend(re.escape(word) for word in sorted(legacy) if word)
    return re.compile("|".join(words), re.IGNORECASE)


def _parses(source: str, file: SourceFile) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            ast.parse(source, str(file.path))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@dataclass
class TreeAudit:
    """An audit of a tree, with the rewritten text of every file a fix would change."""

    result: AuditResult
    fixed: dict[str, str] = field(default_factory=dict)


def _read(file: SourceFile, overlay: Mapping[str, str]) -> str | None:
    if file.relpath in overlay:
        return overlay[file.relpath]
    try:
        return file.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _is_legacy_file(file: SourceFile, config: AuditConfig) -> bool:
    dotted_path = file.relpath.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return any(config.legacy.match(name) is not None for name in (file.module, dotted_path) if name)


def audit_tree(
    root: Path, config: AuditConfig, overlay: Mapping[str, str] | None = None
) -> TreeAudit:
    """Audit every Python file under `root` except the legacy modules' own files, reading
    `overlay[relpath]` instead of the file where given."""
    overlay = overlay or {}
    files = list(iter_python_files(root, config.exclude))
    api = LegacyApi()
    audited: list[SourceFile] = []
    for file in files:
        if file.module == "threadwire.ids" or file.module.startswith("threadwire.ids."):
            continue  # the one place allowed to build and split IDs
        if _is_legacy_file(file, config):
            source = _read(file, overlay)
            if source is not None:
                api.add_module(
                    source, file.module, is_package=file.path.name == "__init__.py", config=config
                )
        else:
            audited.append(file)
            source = _read(file, overlay)
            if source is not None:
                api.add_reexports(
                    source, file.module, is_package=file.path.name == "__init__.py", config=config
                )
    extract = not api.ts_shaped
    audit = _audit_files(audited, overlay, config, api, extract=extract)
    if audit.ts_shaped and extract:
        # Code makes run_{thread}_{digits}_{rand8} IDs: keep extractors as they are.
        extract = False
        audit = _audit_files(audited, overlay, config, api, extract=extract)
    if audit.keeps_reader:
        # A legacy reader of run IDs stays (anywhere: IDs cross modules), and it would
        # not read canonical IDs: keep the code that makes run IDs as well.
        audit = _audit_files(audited, overlay, config, api, extract=extract, make=False)
    return TreeAudit(AuditResult(tuple(audit.findings), len(audited)), audit.fixed)


@dataclass
class _Pass:
    findings: list[Finding] = field(default_factory=list)
    fixed: dict[str, str] = field(default_factory=dict)
    ts_shaped: bool = False
    keeps_reader: bool = False


def _audit_files(
    audited: list[SourceFile],
    overlay: Mapping[str, str],
    config: AuditConfig,
    api: LegacyApi,
    *,
    extract: bool,
    make: bool = True,
) -> _Pass:
    result = _Pass()
    mentions = mention_pattern(config, api)
    for file in audited:
        source = _read(file, overlay)
        if source is None:
            result.findings.append(parse_error_finding(file, 1, 0, "not readable as UTF-8 text"))
            continue
        if mentions.search(source) is None and _parses(source, file):
            continue
        outcome = audit_source(source, file, config, api, extract=extract, make=make)
        result.findings.extend(outcome.findings)
        result.ts_shaped |= outcome.ts_shaped
        result.keeps_reader |= outcome.keeps_reader
        if outcome.fixed is not None:
            result.fixed[file.relpath] = outcome.fixed
    result.findings.sort(key=lambda f: (f.path, f.line, f.column, f.kind))
    return result


@dataclass
class FixOutcome:
    """What a fix changed (relpath -> (before, after)) and the audit of the result."""

    changes: dict[str, tuple[str, str]]
    after: AuditResult


def fix_tree(root: Path, config: AuditConfig, *, write: bool) -> FixOutcome:
    """Apply the exact rewrites until none is left (or a few rounds), writing the files
    when `write` is set; otherwise only computing the new text."""
    overlay: dict[str, str] = {}
    original: dict[str, str] = {}
    audit = audit_tree(root, config)
    for _ in range(_MAX_ROUNDS):
        if not audit.fixed:
            break
        for relpath, text in audit.fixed.items():
            if relpath not in original:
                path = root / relpath if root.is_dir() else root
                original[relpath] = path.read_text(encoding="utf-8")
            overlay[relpath] = text
        audit = audit_tree(root, config, overlay)
    changes = {p: (original[p], overlay[p]) for p in sorted(overlay) if overlay[p] != original[p]}
    if write:
        for relpath, (_, after) in changes.items():
            path = root / relpath if root.is_dir() else root
            path.write_text(after, encoding="utf-8")
    return FixOutcome(changes, audit.result)


def unified_diff(changes: Mapping[str, tuple[str, str]]) -> str:
    """The changes as one unified diff, paths as `a/relpath` and `b/relpath`."""
    chunks: list[str] = []
    for relpath, (before, after) in changes.items():
        chunks.extend(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"a/{relpath}",
                tofile=f"b/{relpath}",
            )
        )
    return "".join(chunks)
