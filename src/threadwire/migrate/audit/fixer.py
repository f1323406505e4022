"""Audit one module and rewrite what maps one-to-one onto threadwire.ids, keeping the
rest of the text (formatting, comments) exactly as it was."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import MetadataWrapper, ParentNodeProvider

from threadwire.migrate.audit.config import AuditConfig
from threadwire.migrate.audit.files import SourceFile
from threadwire.migrate.audit.finder import FileAuditor, FixTarget, Site
from threadwire.migrate.audit.legacy import LegacyApi, package_of
from threadwire.migrate.audit.model import Finding, Kind

_RENDER = cst.Module(body=[])


@dataclass
class FileAudit:
    """The findings of one module, and its text after the exact rewrites (None when
    nothing is rewritten)."""

    findings: list[Finding]
    fixed: str | None = None
    ts_shaped: bool = False
    # A legacy call that reads run IDs stays: it would not read the canonical IDs that
    # rewritten makers hand out, so the tree must keep its makers too.
    keeps_reader: bool = False


def audit_source(
    source: str,
    file: SourceFile,
    config: AuditConfig,
    api: LegacyApi,
    *,
    extract: bool = True,
    make: bool = True,
) -> FileAudit:
    """Audit one module's text; a file that does not parse is one `parse_error` finding.
    With `extract` off, thread extraction is reported but not rewritten; with `make` off,
    neither is the making of run IDs."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return FileAudit([parse_error_finding(file, exc.raw_line, exc.raw_column, str(exc))])
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    alias, imported = _ids_alias(module)
    auditor = FileAuditor(
        config,
        api,
        package_of(file.module, is_package=file.path.name == "__init__.py"),
        alias,
    )
    try:
        wrapper.visit(auditor)
    except RecursionError:
        return FileAudit([parse_error_finding(file, 1, 0, "too deeply nested to analyse")])
    parents = wrapper.resolve(ParentNodeProvider)
    if not extract:
        auditor.targets = [t for t in auditor.targets if not t.extract]
    if not make:
        auditor.targets = [t for t in auditor.targets if not t.makes_run]

    def ancestors(node: cst.CSTNode) -> list[cst.CSTNode]:
        chain = [node]
        while chain[-1] in parents:
            chain.append(parents[chain[-1]])
        return chain

    may_fix = config.fix_tests or not file.is_test
    removed_by = _removal_index(ancestors)
    for site in auditor.sites:
        site.fixable = may_fix and removed_by(site.node, auditor.targets)
    outer = [
        t
        for t in auditor.targets
        if not any(o.node in ancestors(t.node)[1:] for o in auditor.targets)
    ]
    drop: dict[cst.CSTNode, set[int]] = {}
    for item in auditor.imports:
        accesses = item.accesses
        if accesses is None or not item.aliases:
            continue
        each = [
            bool(nodes) and all(removed_by(n, auditor.targets) for n in nodes) for nodes in accesses
        ]
        item.site.fixable = may_fix and all(each)
        now = [bool(nodes) and all(removed_by(n, outer) for n in nodes) for nodes in accesses]
        indexes = {
            list(item.node.names).index(alias)  # type: ignore[arg-type]
            for (alias, _), ok in zip(item.aliases, now, strict=True)
            if ok
        }
        if indexes:
            drop[item.node] = indexes
    keeps_reader = any(
        s.kind is Kind.LEGACY_CALL and s.reads_run and not s.fixable for s in auditor.sites
    )
    findings = _findings(file, auditor, _dedupe(auditor.sites))
    if not may_fix or not outer:
        return FileAudit(findings, ts_shaped=auditor.ts_shaped, keeps_reader=keeps_reader)
    fixed = _apply(module, outer, drop, auditor.alias, imported=imported)
    return FileAudit(findings, fixed if fixed != source else None, auditor.ts_shaped, keeps_reader)


def _removal_index(
    ancestors: Callable[[cst.CSTNode], list[cst.CSTNode]],
) -> Callable[[cst.CSTNode, list[FixTarget]], bool]:
    """A test of whether one of some targets rewrites `node` away (it lies inside the
    target but outside every part the target keeps)."""

    def removed(node: cst.CSTNode, among: list[FixTarget]) -> bool:
        chain = ancestors(node)
        return any(t.node in chain and not any(k in chain for k in t.kept) for t in among)

    return removed


def _ids_alias(module: cst.Module) -> tuple[str, bool]:
    """The name to import threadwire.ids as (`ids`, unless the module uses that name for
    something else), and whether the module imports it already."""
    names: set[str] = set()
    has_import = False

    class _Names(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            names.add(node.value)

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            nonlocal has_import
            module_name = _RENDER.code_for_node(node.module) if node.module else ""
            if module_name == "threadwire" and not isinstance(node.names, cst.ImportStar):
                has_import |= any(
                    a.evaluated_name == "ids" and a.asname is None for a in node.names
                )

    module.visit(_Names())
    if has_import or "ids" not in names:
        return "ids", has_import
    for candidate in ("tw_ids", "threadwire_ids"):
        if candidate not in names:
            return candidate, False
    return "threadwire_ids_", False


def _dedupe(sites: list[Site]) -> list[Site]:
    """One site per node position and kind (`IDManager().new()` is one legacy call)."""
    seen: set[tuple[Kind, int]] = set()
    out = []
    for site in sites:
        key = (site.kind, id(site.node))
        if key not in seen:
            seen.add(key)
            out.append(site)
    return out


def _findings(file: SourceFile, auditor: FileAuditor, sites: list[Site]) -> list[Finding]:
    # One finding per line and kind: `run_id[4:run_id.rindex("_")]` is one site, and so is
    # a call on what a legacy constructor returned. The first by column stands for all, and
    # is fixable only if all are.
    found: dict[tuple[int, Kind], Finding] = {}
    ordinal: dict[str, int] = {}
    placed = sorted(
        sites,
        key=lambda s: (
            auditor.positions[s.node].start.line,
            auditor.positions[s.node].start.column,
        ),
    )
    for site in placed:
        where = auditor.positions[site.node]
        key = (where.start.line, site.kind)
        if key in found:
            if not site.fixable and found[key].fixable:
                found[key] = dataclasses.replace(found[key], fixable=False)
            continue
        code = re.sub(r"\s+", " ", _RENDER.code_for_node(site.node)).strip()
        basis = f"{file.relpath}\0{site.kind}\0{code}"
        ordinal[basis] = ordinal.get(basis, 0) + 1
        digest = hashlib.sha256(f"{basis}\0{ordinal[basis]}".encode()).hexdigest()[:32]
        found[key] = Finding(
            path=file.relpath,
            line=where.start.line,
            column=where.start.column,
            kind=site.kind,
            message=site.message,
            suggestion=site.suggestion,
            fixable=site.fixable,
            end_line=where.end.line,
            end_column=where.end.column,
            fingerprint=digest,
        )
    return sorted(found.values(), key=lambda f: (f.line, f.column, f.kind))


def parse_error_finding(file: SourceFile, line: int, column: int, message: str) -> Finding:
    """The finding for a file the audit could not read or parse."""
    first = message.strip().splitlines()[0] if message.strip() else "syntax error"
    digest = hashlib.sha256(f"{file.relpath}\0parse_error".encode()).hexdigest()[:32]
    return Finding(
        path=file.relpath,
        line=max(line, 1),
        column=max(column, 0),
        kind=Kind.PARSE_ERROR,
        message=f"cannot parse this file, so it was not audited: {first}",
        end_line=max(line, 1),
        end_column=max(column, 0),
        fingerprint=digest,
    )


class _Apply(cst.CSTTransformer):
    """Put the replacements in and drop rewritten legacy imports; a dropped import line
    hands its blank lines and comments on to the statement after it."""

    def __init__(
        self,
        replace: dict[cst.CSTNode, cst.CSTNode],
        drop: dict[cst.CSTNode, set[int]],
        new_import: cst.SimpleStatementLine | None,
    ) -> None:
        super().__init__()
        self.replace = replace
        self.drop = drop
        self.markers: set[int] = set()
        self.new_import: cst.SimpleStatementLine | None = new_import

    def on_leave(  # type: ignore[override]
        self, original_node: cst.CSTNode, updated_node: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel:
        if original_node in self.replace:
            return self.replace[original_node]
        if original_node in self.drop and isinstance(updated_node, (cst.Import, cst.ImportFrom)):
            return _drop_aliases(updated_node, self.drop[original_node])
        if isinstance(updated_node, cst.SimpleStatementLine) and not updated_node.body:
            marker = updated_node.with_changes(body=[cst.Pass()])
            self.markers.add(id(marker))
            return marker
        if isinstance(updated_node, (cst.Module, cst.IndentedBlock)):
            return self._settle(updated_node)
        return updated_node

    def _settle(self, block: cst.Module | cst.IndentedBlock) -> cst.Module | cst.IndentedBlock:
        body: list[cst.BaseStatement] = []
        pending: list[cst.EmptyLine] = []
        for statement in block.body:
            if id(statement) in self.markers:
                assert isinstance(statement, cst.SimpleStatementLine)
                if isinstance(block, cst.Module) and self.new_import is not None:
                    # The first legacy import line that goes away makes room for ours.
                    lines = [*pending, *statement.leading_lines]
                    body.append(self.new_import.with_changes(leading_lines=lines))
                    self.new_import, pending = None, []
                    continue
                pending.extend(statement.leading_lines)
                continue
            if pending and isinstance(
                statement, (cst.SimpleStatementLine, cst.BaseCompoundStatement)
            ):
                own = list(statement.leading_lines)
                carried = pending if not own else [ln for ln in pending if ln.comment]
                statement = statement.with_changes(leading_lines=[*carried, *own])
                pending = []
            body.append(statement)
        if not body and isinstance(block, cst.IndentedBlock):
            body.append(cst.SimpleStatementLine(body=[cst.Pass()]))
        return block.with_changes(body=body)


def _drop_aliases(
    node: cst.Import | cst.ImportFrom, indexes: set[int]
) -> cst.Import | cst.ImportFrom | cst.RemovalSentinel:
    assert not isinstance(node.names, cst.ImportStar)
    keep = [a for i, a in enumerate(node.names) if i not in indexes]
    if not keep:
        return cst.RemovalSentinel.REMOVE
    keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    if isinstance(node, cst.ImportFrom):
        return node.with_changes(names=keep)
    return node.with_changes(names=keep)


def _apply(
    module: cst.Module,
    targets: list[FixTarget],
    drop: dict[cst.CSTNode, set[int]],
    alias: str,
    *,
    imported: bool,
) -> str:
    replace = {t.node: t.replacement for t in targets}
    statement = "from threadwire import ids" + ("" if alias == "ids" else f" as {alias}")
    new_import = cst.parse_statement(statement)
    assert isinstance(new_import, cst.SimpleStatementLine)
    rewritten = module.visit(_Apply(replace, drop, None if imported else new_import))
    context = CodemodContext()
    AddImportsVisitor.add_needed_import(
        context, "threadwire", "ids", asname=None if alias == "ids" else alias
    )
    return AddImportsVisitor(context).transform_module(rewritten).code
