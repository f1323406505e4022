"""The visitor that finds ID sites in one module and plans the rewrites that are exact.
The rules it applies are explained in docs/decisions/0010-audit-heuristics.md."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import (
    CodeRange,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    Scope,
    ScopeProvider,
)

from threadwire.migrate.audit.config import AuditConfig, Role
from threadwire.migrate.audit.exprs import (
    ID_PIECES,
    dotted,
    id_role,
    parse_receiver,
    piece_kind,
    string_value,
    subscript_key,
    template_of,
)
from threadwire.migrate.audit.facts import (
    ClassFacts,
    ScopeFacts,
    class_facts,
    collect,
    function_role,
)
from threadwire.migrate.audit.legacy import LegacyApi, Resolver, import_lookup, resolve_relative
from threadwire.migrate.audit.model import Kind
from threadwire.migrate.audit.shapes import (
    FunctionMapping,
    body_statements,
    classify_function,
    legacy_ts_shaped,
    only_uses,
    run_maker,
    split_extraction,
    thread_maker,
)

_STR_METHODS = frozenset(
    {
        "split",
        "rsplit",
        "partition",
        "rpartition",
        "removeprefix",
        "removesuffix",
        "replace",
        "strip",
        "lstrip",
        "rstrip",
    }
)
_STR_API = frozenset(name for name in dir(str) if not name.startswith("_"))
_DATA_API = _STR_API | frozenset(
    name for t in (dict, list, tuple) for name in dir(t) if not name.startswith("_")
)
_VALUE_ERROR_CATCHERS = frozenset({"ValueError", "Exception", "BaseException"})
_RENDER = cst.Module(body=[])
_MESSAGE_CALLS = frozenset(
    {
        "debug",
        "info",
        "warning",
        "warn",
        "error",
        "exception",
        "critical",
        "log",
        "print",
        "format",
        "repr",
    }
)
_PARSE_WORDS = {"regex": "matches a regular expression against", "slice": "slices"}


def _is_format_text(text: str) -> bool:
    """Whether testing an ID for `text` tests its format (`"_run_" in run_id`, `"_"`,
    `"thread_"`) rather than looks for a value in it (`"abc" in run_id` in a test)."""
    lowered = text.lower()
    return not text.isalnum() or lowered in {"run", "thread"}


@dataclass
class Site:
    """One finding before it is placed in a file: the node, and the advice."""

    kind: Kind
    node: cst.CSTNode
    message: str
    suggestion: str | None = None
    fixable: bool = False
    reads_run: bool = False  # a legacy call that reads a run ID (see FileAudit.keeps_reader)


@dataclass
class FixTarget:
    """Replace `node` by `replacement`; the `kept` subtrees are carried over verbatim."""

    node: cst.CSTNode
    replacement: cst.CSTNode
    kept: tuple[cst.CSTNode, ...] = ()
    extract: bool = False  # reads a thread out of a run ID (see legacy_ts_shaped)
    makes_run: bool = False  # makes a run ID, which will now be canonical


@dataclass
class _Import:
    site: Site
    node: cst.Import | cst.ImportFrom
    aliases: list[tuple[cst.ImportAlias, str]] = field(default_factory=list)
    star: bool = False
    accesses: list[list[cst.CSTNode]] | None = None


class FileAuditor(cst.CSTVisitor):
    """Collects the ID sites of one module; `targets` are the exact rewrites."""

    METADATA_DEPENDENCIES = (
        PositionProvider,
        QualifiedNameProvider,
        ParentNodeProvider,
        ScopeProvider,
    )

    def __init__(self, config: AuditConfig, api: LegacyApi, package: str, ids_alias: str) -> None:
        super().__init__()
        self.config = config
        self.api = api
        self.alias = ids_alias
        self.sites: list[Site] = []
        self.targets: list[FixTarget] = []
        self.imports: list[_Import] = []
        self.resolver = Resolver(
            config.legacy, package, self._imported, self._instance, api.aliases
        )
        self._scopes: list[ScopeFacts] = []
        self._classes: list[ClassFacts] = []
        self._functions: list[tuple[cst.FunctionDef, list[Site]]] = []
        self._consumed: set[int] = set()
        self._star: dict[str, str] = {}
        self._in_class_body: list[bool] = []
        self._mappings: dict[cst.FunctionDef, FunctionMapping | None] = {}
        self.positions: dict[cst.CSTNode, CodeRange] = {}
        self.ts_shaped = False

    # -- metadata helpers -------------------------------------------------------------
    def _imported(self, node: cst.CSTNode) -> set[str]:
        return import_lookup(lambda n: self.get_metadata(QualifiedNameProvider, n, set()))(node)

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        """The parent of `node` in the module."""
        return self.get_metadata(ParentNodeProvider, node, None)

    def leave_Module(self, original_node: cst.Module) -> None:
        # Metadata is only there during the visit: keep what the fixer needs afterwards.
        for site in self.sites:
            self.positions[site.node] = self.get_metadata(PositionProvider, site.node)
        for item in self.imports:
            if not item.star:
                item.accesses = self._import_accesses(item)

    @property
    def env(self) -> ScopeFacts:
        """The data-flow facts of the innermost scope."""
        return self._scopes[-1]

    def _instance(self, node: cst.BaseExpression) -> str | None:
        """A legacy object held in a local or a `self.` attribute."""
        if not self._scopes:
            return None
        if isinstance(node, cst.Name):
            return self.env.legacy_instance(node.value) or self.env.legacy_alias(node.value)
        if isinstance(node, cst.Attribute):
            if dotted(node.value) in {"self", "cls"}:
                for facts in reversed(self._classes):
                    if node.attr.value in facts.legacy_attrs:
                        return facts.legacy_attrs[node.attr.value]
            inner = self._instance(node.value) if isinstance(node.value, cst.Name) else None
            if inner is not None:
                return f"{inner}.{node.attr.value}"
            if isinstance(node.value, cst.Attribute):
                holder = self._instance(node.value)
                return None if holder is None else f"{holder}.{node.attr.value}"
        return None

    def _legacy_callee(self, func: cst.BaseExpression) -> str | None:
        if (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Call)
            and func.attr.value in _STR_API
        ):
            return None  # `make(t).startswith(...)`: a str method on what a legacy call returned
        if isinstance(func, cst.Attribute) and func.attr.value in _DATA_API:
            holder = self._instance(func.value) if isinstance(func.value, cst.Name) else None
            if holder is not None and holder.rsplit(".", 1)[-1][:1].islower():
                # `parsed = parse_run_id(r); parsed.get("thread_id")`: a dict or str
                # method on what a legacy function returned, not a call into the module
                return None
        callee = self.resolver.legacy_of(func)
        if callee is None and isinstance(func, cst.Name) and func.value in self._star:
            if self.env.local_role(func.value) is None and func.value not in self.env.bound:
                callee = f"{self._star[func.value]}.{func.value}"
        return callee

    def _add(self, site: Site) -> Site:
        self.sites.append(site)
        if self._functions:
            self._functions[-1][1].append(site)
        return site

    def _call(self, target: str, *args: cst.BaseExpression) -> cst.Call:
        return cst.Call(
            func=cst.Attribute(value=cst.Name(self.alias), attr=cst.Name(target)),
            args=[cst.Arg(value=a) for a in args],
        )

    # -- scopes -------------------------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> None:
        facts = ScopeFacts(self.config.id_names, self.resolver.qualnames)
        self._scopes.append(collect(facts, node, self.resolver.legacy_of))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(class_facts(node, self.resolver.legacy_of, self.resolver.qualnames))
        self._in_class_body.append(True)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()
        self._in_class_body.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        is_method = bool(self._in_class_body) and self._in_class_body[-1]
        facts = ScopeFacts(
            self.config.id_names,
            self.resolver.qualnames,
            parent=self.env,
            function_name=node.name.value,
            classes=list(self._classes),
        )
        self._scopes.append(collect(facts, node.body, self.resolver.legacy_of, node.params))
        self._functions.append((node, []))
        self._in_class_body.append(False)
        self._mappings[node] = classify_function(node, facts, is_method=is_method)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()
        self._in_class_body.pop()
        func, sites = self._functions.pop()
        mapping = self._mappings.pop(func, None)
        if self._functions:
            self._functions[-1][1].extend(sites)
        if mapping is None or mapping.param is None or not sites:
            return
        if mapping.target not in {"extract_thread_id", "try_extract_thread_id"}:
            return
        if any(s.kind is not Kind.ADHOC_PARSE for s in sites):
            return
        _, has_doc = body_statements(func)
        body = func.body
        assert isinstance(body, cst.IndentedBlock)
        call = self._call(mapping.target, cst.Name(mapping.param))
        ret = cst.SimpleStatementLine(body=[cst.Return(value=call)])
        kept = tuple(body.body[:1]) if has_doc else ()
        self.targets.append(
            FixTarget(body, body.with_changes(body=[*kept, ret]), kept, extract=True)
        )
        suggestion = f"return {self.alias}.{mapping.target}({mapping.param})"
        for site in sites:
            site.suggestion = suggestion

    # -- imports ------------------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        legacy: list[tuple[cst.ImportAlias, str]] = []
        for alias in node.names:
            name = alias.evaluated_name
            if self.resolver.legacy_name(name) is not None:
                bound = alias.evaluated_alias or name.split(".")[0]
                legacy.append((alias, bound))
        if legacy:
            modules = ", ".join(a.evaluated_name for a, _ in legacy)
            self._import_site(node, modules, legacy)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        module = "." * len(node.relative) + ((dotted(node.module) if node.module else "") or "")
        base = resolve_relative(module, self.resolver.package)
        if isinstance(node.names, cst.ImportStar):
            if self.config.legacy.match(base) is not None:
                for name in self.api.names_of(base):
                    self._star[name] = base
                self._import_site(node, base, [], star=True)
            return
        legacy: list[tuple[cst.ImportAlias, str]] = []
        for alias in node.names:
            if self.resolver.legacy_name(f"{base}.{alias.evaluated_name}") is not None:
                legacy.append((alias, alias.evaluated_alias or alias.evaluated_name))
        if legacy:
            names = ", ".join(a.evaluated_name for a, _ in legacy)
            if self.config.legacy.match(base) is None:
                self._import_site(
                    node, ", ".join(f"{base}.{a.evaluated_name}" for a, _ in legacy), legacy
                )
            else:
                self._import_site(node, f"{base} ({names})", legacy)

    def _import_site(
        self,
        node: cst.Import | cst.ImportFrom,
        what: str,
        aliases: list[tuple[cst.ImportAlias, str]],
        *,
        star: bool = False,
    ) -> None:
        site = self._add(
            Site(
                Kind.LEGACY_IMPORT,
                node,
                f"imports the legacy ID module {what}; use threadwire.ids instead",
                f"from threadwire import {self.alias}"
                if self.alias == "ids"
                else f"from threadwire import ids as {self.alias}",
            )
        )
        self.imports.append(_Import(site, node, aliases, star))

    def _import_accesses(self, item: _Import) -> list[list[cst.CSTNode]] | None:
        """For each legacy alias of an import, the nodes that use the name it binds."""
        scope = self.get_metadata(ScopeProvider, item.node, None)
        if not isinstance(scope, Scope):
            return None
        result: list[list[cst.CSTNode]] = []
        for _, bound in item.aliases:
            nodes: list[cst.CSTNode] = []
            for assignment in scope.assignments[bound]:
                if getattr(assignment, "node", None) is item.node:
                    nodes.extend(access.node for access in assignment.references)
            result.append(nodes)
        return result

    # -- calls, subscripts, comparisons, templates ---------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        callee = self._legacy_callee(node.func)
        if callee is not None:
            self._legacy_call(node, callee)
        self._parse(node)
        self._template(node)

    def visit_Subscript(self, node: cst.Subscript) -> None:
        self._parse(node)

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self._template(node)

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> None:
        self._template(node)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        self._template(node)

    def visit_Comparison(self, node: cst.Comparison) -> None:
        for target in node.comparisons:
            if isinstance(target.operator, (cst.In, cst.NotIn)):
                text = string_value(node.left)
                if text and _is_format_text(text) and id_role(target.comparator, self.env):
                    self._add(
                        Site(
                            Kind.ADHOC_PARSE,
                            node,
                            f"tests an ID for the text {text!r}; "
                            "use threadwire.ids.parse_run_id() and its fields",
                        )
                    )
                    return

    def _legacy_call(self, node: cst.Call, callee: str) -> None:
        mapping = self.api.mapping(callee)
        site = self._add(
            Site(Kind.LEGACY_CALL, node, f"calls the legacy {callee}(); use threadwire.ids instead")
        )
        site.reads_run = (
            mapping is not None and mapping.target in {"extract_thread_id", "try_extract_thread_id"}
        ) or any(self._is_run_value(a.value) for a in node.args)
        if mapping is None or any(a.star for a in node.args):
            return
        replacement: cst.Call | None = None
        if mapping.target == "new_thread_id" and not node.args:
            replacement = node.with_changes(func=self._call("new_thread_id").func, args=[])
        elif mapping.target != "new_thread_id" and len(node.args) == 1:
            arg = node.args[0]
            by_position = arg.keyword is None and mapping.index == 0
            by_keyword = arg.keyword is not None and arg.keyword.value == mapping.param
            if by_position or by_keyword:
                replacement = node.with_changes(
                    func=self._call(mapping.target).func, args=[cst.Arg(value=arg.value)]
                )
        if replacement is not None:
            kept = tuple(a.value for a in node.args)
            extract = mapping.target in {"extract_thread_id", "try_extract_thread_id"}
            makes = mapping.target == "new_run_id"
            self.targets.append(
                FixTarget(node, replacement, kept, extract=extract, makes_run=makes)
            )
            site.message = f"calls the legacy {callee}(); use threadwire.ids.{mapping.target}()"
            site.suggestion = _RENDER.code_for_node(replacement)

    def _is_run_value(self, node: cst.BaseExpression) -> bool:
        """Whether `node` holds a run ID: a run ID name or local, or literal run ID text."""
        text = string_value(node)
        if text is not None:
            return text.startswith(("run_", "thread_"))
        return id_role(node, self.env) == "run"

    def _parse(self, node: cst.Call | cst.Subscript) -> None:
        found = parse_receiver(node, self.env)
        if found is None:
            return
        how, receiver = found
        if how == "slice" and self._is_display_cut(node):
            return
        verb = _PARSE_WORDS.get(how, f"calls .{how}() on")
        site = self._add(
            Site(
                Kind.ADHOC_PARSE,
                node,
                f"{verb} an ID; use threadwire.ids.parse_run_id() or extract_thread_id()",
            )
        )
        if how == "regex" and isinstance(node, cst.Call):
            return
        target = self._extraction(node, receiver)
        if target is not None:
            self.targets.append(target)
            site.suggestion = _RENDER.code_for_node(target.replacement)

    def _is_display_cut(self, node: cst.CSTNode) -> bool:
        """`run_id[:80]` straight into a message (f-string, %-args, a log or print call)
        shortens an ID for people to read; it does not parse it."""
        if not isinstance(node, cst.Subscript):
            return False
        inner = node.slice[0].slice
        if not (isinstance(inner, cst.Slice) and inner.lower is None and inner.step is None):
            return False
        if not isinstance(inner.upper, cst.Integer):
            return False
        parent = self.parent(node)
        if isinstance(parent, cst.FormattedStringExpression):
            return True
        if isinstance(parent, cst.Element):
            holder = self.parent(parent)
            operation = self.parent(holder) if holder is not None else None
            return isinstance(operation, cst.BinaryOperation) and isinstance(
                operation.operator, cst.Modulo
            )
        if isinstance(parent, cst.Arg):
            call = self.parent(parent)
            if isinstance(call, cst.Call):
                name = (
                    call.func.attr.value
                    if isinstance(call.func, cst.Attribute)
                    else (call.func.value if isinstance(call.func, cst.Name) else "")
                )
                return name in _MESSAGE_CALLS
        return False

    def _extraction(self, node: cst.CSTNode, receiver: cst.BaseExpression) -> FixTarget | None:
        env = self.env
        if id_role(receiver, env) != "run":
            return None
        outer = self._climb(node)
        if not isinstance(outer, cst.BaseExpression):
            return None
        subject = split_extraction(outer, env)
        if subject is None:
            if self._sink_role(outer) != "thread":
                return None
            subject = receiver
        module = _RENDER
        if not only_uses(outer, subject, module):
            return None
        if not self._errors_still_caught(outer):
            return None
        parent = self.parent(outer)
        if (
            isinstance(parent, cst.IfExp)
            and parent.body is outer
            and isinstance(parent.orelse, cst.Name)
            and parent.orelse.value == "None"
            and only_uses(parent.test, subject, module)
        ):
            call = self._call("try_extract_thread_id", subject)
            return FixTarget(
                parent,
                call.with_changes(lpar=parent.lpar, rpar=parent.rpar),
                (subject,),
                extract=True,
            )
        call = self._call("extract_thread_id", subject)
        return FixTarget(
            outer, call.with_changes(lpar=outer.lpar, rpar=outer.rpar), (subject,), extract=True
        )

    def _climb(self, node: cst.CSTNode) -> cst.CSTNode:
        current = node
        while True:
            parent = self.parent(current)
            if isinstance(parent, cst.Subscript) and parent.value is current:
                current = parent
                continue
            if isinstance(parent, cst.Attribute) and parent.value is current:
                call = self.parent(parent)
                if (
                    isinstance(call, cst.Call)
                    and call.func is parent
                    and parent.attr.value in _STR_METHODS
                ):
                    current = call
                    continue
                return current
            if isinstance(parent, cst.Arg):
                call = self.parent(parent)
                if (
                    isinstance(call, cst.Call)
                    and isinstance(call.func, cst.Attribute)
                    and call.func.attr.value == "join"
                    and len(call.args) == 1
                    and string_value(call.func.value) is not None
                ):
                    current = call
                    continue
            return current

    def _errors_still_caught(self, node: cst.CSTNode) -> bool:
        """False when a surrounding `try` catches what the old code raised (IndexError...)
        but not the ValueError that threadwire.ids raises."""
        child, current = node, self.parent(node)
        while current is not None and not isinstance(current, (cst.FunctionDef, cst.Module)):
            if isinstance(current, cst.Try) and child is current.body:
                caught: set[str] = set()
                for handler in current.handlers:
                    if handler.type is None:
                        return True
                    names = handler.type.elements if isinstance(handler.type, cst.Tuple) else ()
                    types = [e.value for e in names] if names else [handler.type]
                    caught.update(dotted(t) or "" for t in types)
                if current.handlers and not caught & _VALUE_ERROR_CATCHERS:
                    return False
            child, current = current, self.parent(current)
        return True

    def _sink_role(self, node: cst.CSTNode) -> Role | None:
        """The role of the ID name the value of `node` ends up in, if any."""
        current = node
        while True:
            parent = self.parent(current)
            if isinstance(parent, cst.Arg):
                call = self.parent(parent)
                if parent.keyword is not None:
                    return self.config.id_names.role(parent.keyword.value)
                if (
                    isinstance(call, cst.Call)
                    and isinstance(call.func, cst.Name)
                    and call.func.value == "str"
                ):
                    current = call
                    continue
                return None
            if isinstance(parent, cst.IfExp) and parent.test is not current:
                current = parent
                continue
            if isinstance(parent, cst.BooleanOperation):
                current = parent
                continue
            return self._sink_of_statement(parent, current)

    def _sink_of_statement(self, parent: cst.CSTNode | None, child: cst.CSTNode) -> Role | None:
        if isinstance(parent, cst.Assign):
            for target in parent.targets:
                role = self._target_role(target.target)
                if role is not None:
                    return role
            return None
        if isinstance(parent, (cst.AnnAssign, cst.AugAssign)):
            return self._target_role(parent.target)
        if isinstance(parent, cst.DictElement) and parent.value is child:
            key = string_value(parent.key)
            return self.config.id_names.key_role(key) if key is not None else None
        if isinstance(parent, cst.Return):
            return function_role(self.env.function_name)
        return None

    def _target_role(self, target: cst.BaseExpression) -> Role | None:
        names = self.config.id_names
        if isinstance(target, cst.Name):
            return names.role(target.value) or self.env.sinks.get(target.value)
        if isinstance(target, cst.Attribute):
            return names.role(target.attr.value)
        if isinstance(target, cst.Subscript):
            key = subscript_key(target)
            return names.key_role(key) if key is not None else None
        return None

    def _template(self, node: cst.BaseExpression) -> None:
        if id(node) in self._consumed:
            return
        env = self.env
        template = template_of(node, env)
        if template is None:
            return
        self._consumed.update(id(n) for n in template.consumed)
        self.ts_shaped |= legacy_ts_shaped(template, env)
        kinds = [piece_kind(p.expr, env, p.spec) for p in template.pieces]
        id_pieces = [k for k in kinds if k in ID_PIECES]
        if id_pieces and all(k == "parsed" for k in id_pieces):
            return  # reassembling parts of a parse: the parse is the finding
        sink = self._sink_role(node)
        looks_like_id = (
            template.starts_like_id() and template.literal_is_id_text() and bool(id_pieces)
        )
        flows_into_id = (
            sink is not None
            and len(template.parts) >= 2
            and (bool(id_pieces) or len(template.pieces) >= 2 or template.starts_like_id())
        )
        if not (looks_like_id or flows_into_id):
            return
        what = {
            "f-string": "an f-string",
            "%": "%-formatting",
            "format": "str.format",
            "+": "string concatenation",
            "join": "str.join",
        }[template.style]
        site = self._add(
            Site(
                Kind.ADHOC_BUILD,
                node,
                f"builds an ID with {what}; use threadwire.ids.new_run_id() or new_thread_id()",
            )
        )
        thread = run_maker(template, env, sink)
        replacement: cst.Call | None = None
        kept: tuple[cst.CSTNode, ...] = ()
        makes_run = False
        if thread is not None:
            replacement = self._call("new_run_id", thread)
            kept = (thread,)
            makes_run = True
            site.message = f"builds a run ID with {what}; use threadwire.ids.new_run_id()"
        elif thread_maker(template, env, sink):
            replacement = self._call("new_thread_id")
            site.message = f"builds a thread ID with {what}; use threadwire.ids.new_thread_id()"
        if replacement is not None:
            lpar = getattr(node, "lpar", ())
            rpar = getattr(node, "rpar", ())
            replacement = replacement.with_changes(lpar=lpar, rpar=rpar)
            self.targets.append(FixTarget(node, replacement, kept, makes_run=makes_run))
            site.suggestion = _RENDER.code_for_node(replacement)
