"""The legacy ID modules: resolving names to them, and reading their own source (which is
not audited) to learn which of their functions map onto one threadwire.ids call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, QualifiedNameProvider, QualifiedNameSource

from threadwire.migrate.audit.config import AuditConfig, LegacyModules
from threadwire.migrate.audit.exprs import template_of
from threadwire.migrate.audit.facts import ScopeFacts, collect
from threadwire.migrate.audit.shapes import FunctionMapping, classify_function, legacy_ts_shaped


def package_of(module: str, *, is_package: bool) -> str:
    """The package relative imports in `module` start from."""
    if is_package:
        return module
    return module.rsplit(".", 1)[0] if "." in module else ""


def resolve_relative(name: str, package: str) -> str:
    """`..x.y` seen from `package` as an absolute dotted name (best effort)."""
    if not name.startswith("."):
        return name
    dots = len(name) - len(name.lstrip("."))
    parts = package.split(".") if package else []
    if dots > 1:
        parts = parts[: max(0, len(parts) - (dots - 1))]
    rest = name[dots:]
    return ".".join([*parts, rest] if rest else parts)


@dataclass
class Resolver:
    """Turns expressions into the qualified names they import, relative imports resolved,
    and says which of those are in legacy modules."""

    legacy: LegacyModules
    package: str
    lookup: Callable[[cst.CSTNode], set[str]] = field(default=lambda node: set())
    instances: Callable[[cst.BaseExpression], str | None] = field(default=lambda node: None)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def qualnames(self, node: cst.CSTNode) -> set[str]:
        """Qualified names `node` refers to through imports."""
        return {resolve_relative(n, self.package) for n in self.lookup(node)}

    def legacy_name(self, name: str) -> str | None:
        """`name` if it is in a legacy module, or what it stands for when another module
        of the tree re-exports a legacy name (`from .id_manager import IDManager` in a
        package's __init__); else None."""
        if self.legacy.match(name) is not None:
            return name
        parts = name.split(".")
        for end in range(len(parts), 1, -1):
            head = ".".join(parts[:end])
            if head in self.aliases:
                return ".".join([self.aliases[head], *parts[end:]])
        return None

    def legacy_of(self, node: cst.BaseExpression) -> str | None:
        """The legacy qualified name `node` refers to, if it is one."""
        for name in sorted(self.qualnames(node)):
            found = self.legacy_name(name)
            if found is not None:
                return found
        return self.instances(node)


def import_lookup(
    get: Callable[[cst.CSTNode], object],
) -> Callable[[cst.CSTNode], set[str]]:
    """A lookup over QualifiedNameProvider results that keeps only imported names: a local
    variable called `id_manager` is not the legacy module."""

    def lookup(node: cst.CSTNode) -> set[str]:
        found = get(node)
        if callable(found):  # QualifiedNameProvider hands out lazy values
            found = found()
        if not isinstance(found, (set, frozenset)):
            return set()
        return {q.name for q in found if q.source is QualifiedNameSource.IMPORT}

    return lookup


@dataclass
class LegacyApi:
    """What the legacy modules in the tree define: qualified name -> mapping for each
    function or method that maps onto threadwire.ids, and each module's public names."""

    mappings: dict[str, FunctionMapping] = field(default_factory=dict)
    exports: dict[str, set[str]] = field(default_factory=dict)
    reexports: dict[str, str] = field(default_factory=dict)

    def mapping(self, qualname: str) -> FunctionMapping | None:
        """The mapping for `qualname`, following re-exports and tolerating a different
        package root between the importer and the module's own file."""
        for _ in range(4):
            if qualname in self.mappings:
                return self.mappings[qualname]
            if qualname not in self.reexports:
                break
            qualname = self.reexports[qualname]
        for known, mapping in self.mappings.items():
            if known.endswith("." + qualname) or qualname.endswith("." + known):
                return mapping
        return None

    aliases: dict[str, str] = field(default_factory=dict)
    ts_shaped: bool = False

    def add_reexports(
        self, source: str, module: str, *, is_package: bool, config: AuditConfig
    ) -> None:
        """Record the legacy names a non-legacy module imports at its top level, so that
        `from that.module import Name` elsewhere is known to be a legacy import."""
        words = (*config.legacy.last_parts, *(n.rsplit(".", 1)[-1] for n in config.legacy.names))
        if not any(word in source for word in words):
            return
        try:
            tree = cst.parse_module(source)
        except cst.ParserSyntaxError:
            return
        package = package_of(module, is_package=is_package)
        for statement in tree.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                if not isinstance(small, cst.ImportFrom) or isinstance(small.names, cst.ImportStar):
                    continue
                base = resolve_relative("." * len(small.relative) + _dotted(small.module), package)
                for alias in small.names:
                    full = f"{base}.{alias.evaluated_name}"
                    if config.legacy.match(full) is not None:
                        local = alias.evaluated_alias or alias.evaluated_name
                        self.aliases[f"{module}.{local}"] = full

    def names_of(self, module: str) -> set[str]:
        """Public top-level names of a legacy module (for `from legacy import *`)."""
        for known, names in self.exports.items():
            if known == module or known.endswith("." + module) or module.endswith("." + known):
                return names
        return set()

    def add_module(
        self, source: str, module: str, *, is_package: bool, config: AuditConfig
    ) -> None:
        """Read one legacy module's source; a module that does not parse adds nothing."""
        try:
            wrapper = MetadataWrapper(cst.parse_module(source))
        except cst.ParserSyntaxError:
            return
        qualified = wrapper.resolve(QualifiedNameProvider)
        resolver = Resolver(
            config.legacy,
            package_of(module, is_package=is_package),
            import_lookup(lambda node: qualified.get(node)),
        )
        facts = ScopeFacts(config.id_names, resolver.qualnames)
        collect(facts, wrapper.module, resolver.legacy_of)
        names: set[str] = set()
        for statement in wrapper.module.body:
            if isinstance(statement, cst.FunctionDef):
                names.add(statement.name.value)
                self._add_function(
                    statement, f"{module}.{statement.name.value}", facts, resolver, is_method=False
                )
            elif isinstance(statement, cst.ClassDef):
                names.add(statement.name.value)
                for item in statement.body.body:
                    if isinstance(item, cst.FunctionDef):
                        qual = f"{module}.{statement.name.value}.{item.name.value}"
                        self._add_function(item, qual, facts, resolver, is_method=True)
            elif isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.ImportFrom) and not isinstance(
                        small.names, cst.ImportStar
                    ):
                        base = resolve_relative(
                            "." * len(small.relative) + _dotted(small.module), resolver.package
                        )
                        for alias in small.names:
                            local = alias.evaluated_alias or alias.evaluated_name
                            names.add(local)
                            self.reexports[f"{module}.{local}"] = f"{base}.{alias.evaluated_name}"
        self.exports[module] = {n for n in names if not n.startswith("_")}

    def _add_function(
        self,
        func: cst.FunctionDef,
        qual: str,
        module_facts: ScopeFacts,
        resolver: Resolver,
        *,
        is_method: bool,
    ) -> None:
        facts = ScopeFacts(
            module_facts.id_names,
            resolver.qualnames,
            parent=module_facts,
            function_name=func.name.value,
        )
        collect(facts, func.body, resolver.legacy_of, func.params)
        mapping = classify_function(func, facts, is_method=is_method)
        if mapping is not None:
            self.mappings[qual] = mapping
        api = self

        class _Templates(cst.CSTVisitor):
            def on_visit(self, node: cst.CSTNode) -> bool:
                if isinstance(node, cst.BaseExpression):
                    template = template_of(node, facts)
                    if template is not None and legacy_ts_shaped(template, facts):
                        api.ts_shaped = True
                return True

        func.body.visit(_Templates())


def _dotted(node: cst.BaseExpression | None) -> str:
    if node is None:
        return ""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""
