"""Data flow within one scope: which locals hold IDs, UUID/timestamp pieces, parts parsed
out of IDs, string constants, compiled patterns or legacy objects. Flow-insensitive on
purpose: a local that ever holds an ID is treated as an ID local throughout its function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from threadwire.migrate.audit.config import IdNames, Role
from threadwire.migrate.audit.exprs import (
    PieceKind,
    dotted,
    id_role,
    is_regex_name,
    parse_receiver,
    piece_kind,
    string_value,
    subscript_key,
)

QualNames = Callable[[cst.CSTNode], set[str]]
LegacyOf = Callable[[cst.BaseExpression], str | None]


@dataclass
class ClassFacts:
    """Attributes a class binds on `self` (or in its body) to legacy objects or patterns."""

    legacy_attrs: dict[str, str] = field(default_factory=dict)
    regex_attrs: set[str] = field(default_factory=set)


@dataclass
class ScopeFacts:
    """What data flow learned about the names of one module or function scope."""

    id_names: IdNames
    qualnames_of: QualNames
    parent: ScopeFacts | None = None
    function_name: str | None = None
    classes: list[ClassFacts] = field(default_factory=list)
    roles: dict[str, Role] = field(default_factory=dict)
    pieces: dict[str, PieceKind] = field(default_factory=dict)
    consts: dict[str, str] = field(default_factory=dict)
    regexes: set[str] = field(default_factory=set)
    legacy_instances: dict[str, str] = field(default_factory=dict)
    legacy_aliases: dict[str, str] = field(default_factory=dict)
    sinks: dict[str, Role] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    values: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)

    def _lookup(self, name: str, attr: str) -> object:
        scope: ScopeFacts | None = self
        while scope is not None:
            table = getattr(scope, attr)
            if name in table:
                return table[name] if isinstance(table, dict) else True
            if name in scope.bound:
                return None
            scope = scope.parent
        return None

    def local_role(self, name: str) -> Role | None:
        """See Env.local_role."""
        found = self._lookup(name, "roles")
        return found if isinstance(found, str) else None  # type: ignore[return-value]

    def local_piece(self, name: str) -> PieceKind | None:
        """See Env.local_piece."""
        found = self._lookup(name, "pieces")
        return found if isinstance(found, str) else None  # type: ignore[return-value]

    def string_const(self, name: str) -> str | None:
        """See Env.string_const."""
        found = self._lookup(name, "consts")
        return found if isinstance(found, str) else None

    def legacy_instance(self, name: str) -> str | None:
        """Qualified legacy callee whose result `name` holds."""
        found = self._lookup(name, "legacy_instances")
        return found if isinstance(found, str) else None

    def legacy_alias(self, name: str) -> str | None:
        """Qualified legacy callable that `name` is another name for."""
        found = self._lookup(name, "legacy_aliases")
        return found if isinstance(found, str) else None

    def is_regex(self, node: cst.BaseExpression) -> bool:
        """See Env.is_regex."""
        if isinstance(node, cst.Call):
            return bool(self.qualnames(node.func) & {"re.compile", "regex.compile"})
        if isinstance(node, cst.Name):
            return self._lookup(node.value, "regexes") is True or is_regex_name(node.value)
        if isinstance(node, cst.Attribute):
            attr = node.attr.value
            return is_regex_name(attr) or any(attr in c.regex_attrs for c in self.classes)
        return False

    def qualnames(self, node: cst.CSTNode) -> set[str]:
        """See Env.qualnames."""
        return self.qualnames_of(node)


def collect(
    facts: ScopeFacts,
    body: cst.CSTNode,
    legacy_of: LegacyOf,
    params: cst.Parameters | None = None,
) -> ScopeFacts:
    """Fill `facts` from the statements of one scope (not descending into nested ones)."""
    collector = _Collector(facts)
    if params is not None:
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            facts.bound.add(param.name.value)
            if param.annotation is not None:
                callee = legacy_of(param.annotation.annotation)
                if callee is not None:
                    facts.legacy_instances[param.name.value] = callee
    body.visit(collector)
    _resolve(facts, collector, legacy_of)
    return facts


class _Collector(cst.CSTVisitor):
    def __init__(self, facts: ScopeFacts) -> None:
        self.facts = facts
        self.assigns: list[tuple[str, cst.BaseExpression]] = []
        self.unpacks: list[tuple[str, cst.BaseExpression]] = []
        self.loops: list[tuple[str, cst.BaseExpression]] = []
        self.uses: list[tuple[Role, cst.BaseExpression]] = []
        self._depth = 0

    # Nested scopes get their own facts; their bodies are not ours.
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.facts.bound.add(node.name.value)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.facts.bound.add(node.name.value)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def _target(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.facts.bound.add(target.value)
            self.assigns.append((target.value, value))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                inner = element.value
                if isinstance(inner, cst.Name):
                    self.facts.bound.add(inner.value)
                    self.unpacks.append((inner.value, value))
        else:
            role = _target_role(target, self.facts.id_names)
            if role is not None:
                self.uses.append((role, value))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._target(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._target(node.target, node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._target(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        self._loop(node.target, node.iter)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._loop(node.target, node.iter)

    def _loop(self, target: cst.BaseExpression, iterable: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.facts.bound.add(target.value)
            self.loops.append((target.value, iterable))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None and isinstance(node.asname.name, cst.Name):
            self.facts.bound.add(node.asname.name.value)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            role = self.facts.id_names.role(node.keyword.value)
            if role is not None:
                self.uses.append((role, node.value))

    def visit_DictElement(self, node: cst.DictElement) -> None:
        key = string_value(node.key)
        role = self.facts.id_names.key_role(key) if key is not None else None
        if role is not None:
            self.uses.append((role, node.value))

    def visit_Return(self, node: cst.Return) -> None:
        role = function_role(self.facts.function_name)
        if role is not None and node.value is not None:
            self.uses.append((role, node.value))


def _target_role(target: cst.BaseExpression, names: IdNames) -> Role | None:
    if isinstance(target, cst.Name):
        return names.role(target.value)
    if isinstance(target, cst.Attribute):
        return names.role(target.attr.value)
    if isinstance(target, cst.Subscript):
        key = subscript_key(target)
        return names.key_role(key) if key is not None else None
    return None


def function_role(name: str | None) -> Role | None:
    """The role of what a function returns, when its name says (`make_run_id`)."""
    if name is None:
        return None
    lowered = name.lower()
    if "thread_id" in lowered:
        return "thread"
    if "run_id" in lowered:
        return "run"
    words = set(lowered.strip("_").split("_"))
    if words & _MAKER_VERBS:
        if "thread" in words:
            return "thread"
        if "run" in words:
            return "run"
    return None


_MAKER_VERBS = frozenset({"new", "make", "generate", "gen", "create", "build", "mint", "next"})


def _resolve(facts: ScopeFacts, collector: _Collector, legacy_of: LegacyOf) -> None:
    for role, value in collector.uses:
        if isinstance(value, cst.Name) and facts.id_names.role(value.value) is None:
            facts.sinks.setdefault(value.value, role)
    for name, value in collector.assigns:
        _record_value(facts, name, value, legacy_of)
    for name, role in facts.sinks.items():
        facts.roles.setdefault(name, role)
    # Fixpoint: `a = event["run_id"]; b = a` makes both ID locals.
    for _ in range(4):
        changed = False
        for name, value in collector.assigns:
            changed |= _learn_role(facts, name, id_role(value, facts))
            changed |= _learn_piece(facts, name, value)
        for name, value in collector.unpacks:
            if name not in facts.pieces and contains_parse(value, facts):
                facts.pieces[name] = "parsed"
                changed = True
        for name, iterable in collector.loops:
            changed |= _learn_role(facts, name, _plural_role(iterable, facts))
        if not changed:
            break


def _record_value(
    facts: ScopeFacts, name: str, value: cst.BaseExpression, legacy_of: LegacyOf
) -> None:
    facts.values.setdefault(name, []).append(value)
    text = string_value(value)
    if text is not None:
        facts.consts[name] = text
    if isinstance(value, cst.Call):
        if facts.qualnames(value.func) & {"re.compile", "regex.compile"}:
            facts.regexes.add(name)
        callee = legacy_of(value.func)
        if callee is not None:
            facts.legacy_instances[name] = callee
    elif isinstance(value, (cst.Name, cst.Attribute)):
        callee = legacy_of(value)
        if callee is not None:
            facts.legacy_aliases[name] = callee


def _learn_role(facts: ScopeFacts, name: str, role: Role | None) -> bool:
    if role is None or name in facts.roles:
        return False
    facts.roles[name] = role
    return True


def _learn_piece(facts: ScopeFacts, name: str, value: cst.BaseExpression) -> bool:
    if name in facts.pieces:
        return False
    kind = piece_kind(value, facts)
    if kind not in {"random", "timestamp", "parsed"}:
        if not contains_parse(value, facts):
            return False
        kind = "parsed"
    facts.pieces[name] = kind
    return True


def _plural_role(iterable: cst.BaseExpression, facts: ScopeFacts) -> Role | None:
    names = facts.id_names
    if isinstance(iterable, cst.Name):
        return names.plural_role(iterable.value)
    if isinstance(iterable, cst.Attribute):
        return names.plural_role(iterable.attr.value)
    if isinstance(iterable, cst.Subscript):
        key = subscript_key(iterable)
        return names.plural_role(key) if key is not None else None
    return None


def contains_parse(node: cst.CSTNode, facts: ScopeFacts) -> bool:
    """Whether `node` splits, slices or matches an ID (or uses a part already parsed)."""
    finder = _ParseFinder(facts)
    node.visit(finder)
    return finder.found


class _ParseFinder(cst.CSTVisitor):
    def __init__(self, facts: ScopeFacts) -> None:
        self.facts = facts
        self.found = False

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.found:
            return False
        if isinstance(node, (cst.Call, cst.Subscript)) and parse_receiver(node, self.facts):
            self.found = True
        elif isinstance(node, cst.Name) and self.facts.local_piece(node.value) == "parsed":
            self.found = True
        return not self.found


def class_facts(node: cst.ClassDef, legacy_of: LegacyOf, qualnames_of: QualNames) -> ClassFacts:
    """Legacy objects and patterns a class keeps in attributes (`self._ids = IDManager()`,
    or `self._ids = ids` for a parameter annotated with a legacy class)."""
    collector = _ClassAttrs(ClassFacts(), legacy_of, qualnames_of)
    node.body.visit(collector)
    return collector.found


class _ClassAttrs(cst.CSTVisitor):
    def __init__(self, found: ClassFacts, legacy_of: LegacyOf, qualnames_of: QualNames) -> None:
        super().__init__()
        self.found = found
        self.legacy_of = legacy_of
        self.qualnames_of = qualnames_of
        self.params: dict[str, str] = {}

    def visit_FunctionDef(self, func: cst.FunctionDef) -> None:
        self.params = {}
        for param in (*func.params.params, *func.params.kwonly_params):
            if param.annotation is not None:
                callee = self.legacy_of(param.annotation.annotation)
                if callee is not None:
                    self.params[param.name.value] = callee

    def visit_Assign(self, assign: cst.Assign) -> None:
        value = assign.value
        for target in assign.targets:
            name = _attr_name(target.target)
            if name is None:
                continue
            if isinstance(value, cst.Name) and value.value in self.params:
                self.found.legacy_attrs[name] = self.params[value.value]
            elif isinstance(value, cst.Call):
                callee = self.legacy_of(value.func)
                if callee is not None:
                    self.found.legacy_attrs[name] = callee
                if self.qualnames_of(value.func) & {"re.compile", "regex.compile"}:
                    self.found.regex_attrs.add(name)


def _attr_name(target: cst.BaseExpression) -> str | None:
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Attribute) and dotted(target.value) in {"self", "cls"}:
        return target.attr.value
    return None
