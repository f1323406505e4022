"""The ID code that maps one-to-one onto threadwire.ids: run/thread ID makers, thread
extraction from a run ID, and whole functions that are generators or extractors. Anything
that does not match one of these shapes exactly is left as a finding, never guessed at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import libcst as cst

from threadwire.migrate.audit.config import Role
from threadwire.migrate.audit.exprs import (
    ID_PIECES,
    Env,
    Template,
    id_role,
    parse_receiver,
    piece_kind,
    string_value,
    template_of,
)
from threadwire.migrate.audit.facts import ScopeFacts, contains_parse

Target = Literal["new_run_id", "new_thread_id", "extract_thread_id", "try_extract_thread_id"]


def is_simple(node: cst.BaseExpression) -> bool:
    """Whether evaluating `node` has no side effect worth keeping (a name, an attribute
    chain, a string-keyed subscript or `.get("key")`, possibly wrapped in `str()`)."""
    if isinstance(node, cst.Name):
        return True
    if isinstance(node, cst.Attribute):
        return is_simple(node.value)
    if isinstance(node, cst.Subscript):
        return len(node.slice) == 1 and is_simple(node.value) and _literal_index(node)
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Name) and func.value == "str" and len(node.args) == 1:
            return is_simple(node.args[0].value)
        if isinstance(func, cst.Attribute) and func.attr.value == "get" and node.args:
            return is_simple(func.value) and all(
                string_value(a.value) is not None or isinstance(a.value, cst.Name)
                for a in node.args
            )
    return False


def _literal_index(node: cst.Subscript) -> bool:
    inner = node.slice[0].slice
    if not isinstance(inner, cst.Index):
        return False
    return string_value(inner.value) is not None or isinstance(inner.value, cst.Integer)


def run_maker(template: Template, env: Env, sink: Role | None = None) -> cst.BaseExpression | None:
    """The thread expression when `template` makes a run ID from one thread ID plus random
    and/or timestamp parts (`f"run_{tid}_{uuid4().hex[:8]}"`), else None."""
    pieces = template.pieces
    if any(p.expr is None for p in pieces) or not template.literal_is_id_text():
        return None
    kinds = [piece_kind(p.expr, env, p.spec) for p in pieces]
    threads = [p for p, k in zip(pieces, kinds, strict=True) if k not in {"random", "timestamp"}]
    if len(threads) != 1 or len(pieces) < 2:
        return None
    thread = threads[0]
    assert thread.expr is not None
    if thread.spec or thread.conversion not in {"", "s"} or not is_simple(thread.expr):
        return None
    if id_role(thread.expr, env) == "run":
        return None
    lead = template.lead
    literals = "".join(p.text for p in template.parts if p.text is not None)
    if lead.startswith("run_") or (lead.startswith("thread_") and "_run_" in literals):
        return thread.expr
    if sink == "run" and "run" in lead:
        return thread.expr
    return None


def legacy_ts_shaped(template: Template, env: Env) -> bool:
    """Whether `template` may make `run_{thread}_{digits}_{rand8}` IDs: a thread-ish part, a
    timestamp and a random part with no `_run_` between them. threadwire.ids reads such IDs
    as `legacy_run` (thread `abc_12345`) unless `legacy_run_ts` is enabled, so while code
    makes them, rewriting a thread extractor would change what it returns."""
    literals = "".join(p.text for p in template.parts if p.text is not None)
    if "_run_" in literals or template.lead.startswith("thread_"):
        return False
    kinds = [piece_kind(p.expr, env, p.spec) for p in template.pieces]
    others = [k for k in kinds if k not in {"random", "timestamp"}]
    return "timestamp" in kinds and "random" in kinds and bool(others)


def thread_maker(template: Template, env: Env, sink: Role | None = None) -> bool:
    """Whether `template` makes a fresh thread ID from random/timestamp parts alone."""
    pieces = template.pieces
    if not pieces or any(p.expr is None for p in pieces) or not template.literal_is_id_text():
        return False
    kinds = {piece_kind(p.expr, env, p.spec) for p in pieces}
    if not kinds <= {"random", "timestamp"} or "random" not in kinds:
        return False
    literals = "".join(p.text for p in template.parts if p.text is not None)
    if template.lead.startswith("thread_") and "run" not in literals:
        return True
    return sink == "thread" and "run" not in literals


def _is_none(node: cst.BaseExpression | None) -> bool:
    return node is None or (isinstance(node, cst.Name) and node.value == "None")


def _int_value(node: cst.BaseExpression | None) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _int_value(node.expression)
        return None if inner is None else -inner
    return None


def _split_call(node: cst.BaseExpression, env: Env) -> cst.BaseExpression | None:
    """X when `node` is `X.split("_")` or `X.split("_", n)` with n >= 1 on a run ID."""
    if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
        return None
    if node.func.attr.value != "split" or not 1 <= len(node.args) <= 2:
        return None
    if string_value(node.args[0].value) != "_":
        return None
    if len(node.args) == 2 and (_int_value(node.args[1].value) or 0) < 1:
        return None
    receiver = node.func.value
    return receiver if id_role(receiver, env) == "run" else None


def split_extraction(node: cst.BaseExpression, env: Env) -> cst.BaseExpression | None:
    """X when `node` is `X.split("_")[1]` or `"_".join(X.split("_")[1:k])` on a run ID:
    reading the thread out of either legacy shape."""
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        inner = node.slice[0].slice
        if isinstance(inner, cst.Index) and _int_value(inner.value) == 1:
            return _split_call(node.value, env)
        return None
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "join"
        and string_value(node.func.value) == "_"
        and len(node.args) == 1
    ):
        arg = node.args[0].value
        if isinstance(arg, cst.Subscript) and len(arg.slice) == 1:
            inner = arg.slice[0].slice
            if isinstance(inner, cst.Slice) and _int_value(inner.lower) == 1:
                return _split_call(arg.value, env)
    return None


def only_uses(node: cst.CSTNode, subject: cst.BaseExpression, module: cst.Module) -> bool:
    """Whether `node` reads nothing but `subject`, literals and `len`: so replacing it by a
    call on `subject` drops no other input."""
    subject_code = module.code_for_node(subject)
    ok = True

    class _Check(cst.CSTVisitor):
        def on_visit(self, inner: cst.CSTNode) -> bool:
            nonlocal ok
            if not ok:
                return False
            if isinstance(inner, cst.BaseExpression) and (
                module.code_for_node(inner) == subject_code
            ):
                return False
            if isinstance(inner, cst.Attribute):
                inner.value.visit(self)
                return False
            if isinstance(inner, cst.Name) and inner.value not in {"len", "None"}:
                ok = False
            if isinstance(inner, (cst.Await, cst.Yield, cst.Lambda, cst.NamedExpr)):
                ok = False
            return ok

    node.visit(_Check())
    return ok


@dataclass(frozen=True)
class FunctionMapping:
    """A function (legacy or local) that maps onto one threadwire.ids call: which one, and
    which of its positional parameters carries the argument."""

    target: Target
    param: str | None
    index: int
    optional: tuple[str, ...] = ()


def positional_params(func: cst.FunctionDef, *, is_method: bool) -> list[cst.Param]:
    """The function's positional parameters, without `self`/`cls` for a method."""
    params = [*func.params.posonly_params, *func.params.params]
    static = any(
        isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
        for d in func.decorators
    )
    if is_method and not static and params:
        params = params[1:]
    return params


def body_statements(func: cst.FunctionDef) -> tuple[Sequence[cst.BaseStatement], bool]:
    """The function's statements without its docstring, and whether it had one."""
    body = func.body
    if not isinstance(body, cst.IndentedBlock):
        return (), False
    statements = list(body.body)
    has_doc = bool(statements) and func.get_docstring(clean=False) is not None
    return (statements[1:] if has_doc else statements), has_doc


def classify_function(
    func: cst.FunctionDef, facts: ScopeFacts, *, is_method: bool
) -> FunctionMapping | None:
    """What threadwire.ids call `func` amounts to, if exactly one (see the module doc)."""
    params = positional_params(func, is_method=is_method)
    if func.params.star_arg not in (None, cst.MaybeSentinel.DEFAULT) or func.params.star_kwarg:
        return None
    if func.params.kwonly_params or func.asynchronous is not None:
        return None
    required = [p for p in params if p.default is None]
    optional = tuple(p.name.value for p in params if p.default is not None)
    statements, _ = body_statements(func)
    if not statements:
        return None
    name = func.name.value.lower()
    maker = _classify_maker(func, statements, params, facts)
    if maker is not None:
        return maker
    if "thread" not in name or any(w in name for w in _NOT_EXTRACTOR_WORDS):
        return None
    if len(required) != 1 or optional:
        return None
    returns_none = _extractor_returns_none(statements, required[0].name.value, facts)
    if returns_none is None:
        return None
    target: Target = "try_extract_thread_id" if returns_none else "extract_thread_id"
    return FunctionMapping(target, required[0].name.value, params.index(required[0]))


_NOT_EXTRACTOR_WORDS = (
    "new",
    "make",
    "generate",
    "create",
    "suffix",
    "prefix",
    "rand",
    "time",
    "stamp",
    "valid",
    "is_",
    "has_",
    "check",
    "format",
    "parts",
)


def _classify_maker(
    func: cst.FunctionDef,
    statements: Sequence[cst.BaseStatement],
    params: list[cst.Param],
    facts: ScopeFacts,
) -> FunctionMapping | None:
    *before, last = statements
    if not all(_is_pure_prelude(s) for s in before):
        return None
    if not isinstance(last, cst.SimpleStatementLine) or len(last.body) != 1:
        return None
    ret = last.body[0]
    if not isinstance(ret, cst.Return) or ret.value is None:
        return None
    value = ret.value
    if isinstance(value, cst.Name) and len(facts.values.get(value.value, [])) == 1:
        value = facts.values[value.value][0]
    template = template_of(value, facts)
    name = func.name.value.lower()
    required = [p for p in params if p.default is None]
    optional = tuple(p.name.value for p in params if p.default is not None)
    if template is not None:
        thread = run_maker(template, facts, sink="run" if "run" in name else None)
        if isinstance(thread, cst.Name):
            names = [p.name.value for p in params]
            if thread.value in names and len(required) <= 1:
                index = names.index(thread.value)
                rest = tuple(n for n in optional if n != thread.value)
                return FunctionMapping("new_run_id", thread.value, index, rest)
        if not required and thread_maker(template, facts, "thread" if "thread" in name else None):
            return FunctionMapping("new_thread_id", None, -1, optional)
        return None
    if not required and "thread" in name and piece_kind(value, facts) == "random":
        return FunctionMapping("new_thread_id", None, -1, optional)
    return None


def _is_pure_prelude(statement: cst.BaseStatement) -> bool:
    """Statements a maker may run before its return without the rewrite losing anything:
    local assignments of pure values and guards that only raise."""
    if isinstance(statement, cst.If):
        body = statement.body
        return statement.orelse is None and all(
            isinstance(s, cst.SimpleStatementLine) and all(isinstance(x, cst.Raise) for x in s.body)
            for s in (body.body if isinstance(body, cst.IndentedBlock) else ())
        )
    if isinstance(statement, cst.SimpleStatementLine):
        for small in statement.body:
            if isinstance(small, (cst.Assign, cst.AnnAssign)):
                targets = (
                    [t.target for t in small.targets]
                    if isinstance(small, cst.Assign)
                    else [small.target]
                )
                if not all(isinstance(t, cst.Name) for t in targets):
                    return False
            elif not isinstance(small, (cst.Assert, cst.Raise, cst.Pass)):
                return False
        return True
    return False


def _extractor_returns_none(
    statements: Sequence[cst.BaseStatement], param: str, facts: ScopeFacts
) -> bool | None:
    """None when the statements are not a thread extractor over `param`; else whether
    some path returns None (explicitly, by an `else None`, or by falling off the end)."""
    local = ScopeFacts(
        id_names=facts.id_names,
        qualnames_of=facts.qualnames_of,
        parent=facts,
        classes=facts.classes,
        roles={param: "run"},
        pieces=dict(facts.pieces),
        values=facts.values,
        regexes=facts.regexes,
    )
    for _ in range(3):  # `parts = run_id.split("_")`, then `tid = parts[1]`
        for name, values in facts.values.items():
            if any(contains_parse(v, local) for v in values):
                local.pieces[name] = "parsed"
    returns = _plain_returns(statements)
    if not returns:
        return None
    returns_none = False
    for ret in returns:
        value = ret.value
        if _is_none(value):
            returns_none = True
            continue
        assert value is not None
        if isinstance(value, cst.IfExp) and (_is_none(value.orelse) or _is_none(value.body)):
            returns_none = True
            value = value.body if _is_none(value.orelse) else value.orelse
        if not _thread_part(value, local):
            return None
    if all(_is_none(r.value) for r in returns):
        return None
    last = statements[-1]
    falls_off = not isinstance(last, cst.Try) and not (
        isinstance(last, cst.SimpleStatementLine)
        and isinstance(last.body[-1], (cst.Return, cst.Raise))
    )
    return returns_none or falls_off


def _plain_returns(statements: Sequence[cst.BaseStatement]) -> list[cst.Return]:
    """The return statements, or none at all when the body does more than compute and
    return (no nested scopes, no side effects beyond logging)."""
    returns: list[cst.Return] = []
    ok = True

    class _Walk(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            nonlocal ok
            forbidden = (
                cst.FunctionDef,
                cst.ClassDef,
                cst.Lambda,
                cst.Yield,
                cst.Await,
                cst.Global,
                cst.Nonlocal,
            )
            if isinstance(node, forbidden):
                ok = False
            elif isinstance(node, cst.Return):
                returns.append(node)
            elif isinstance(node, cst.Expr) and not _is_log_call(node.value):
                ok = False
            elif isinstance(node, cst.Assign) and not all(
                isinstance(t.target, (cst.Name, cst.Tuple)) for t in node.targets
            ):
                ok = False
            return ok

    for statement in statements:
        statement.visit(_Walk())
    return returns if ok else []


def _is_log_call(node: cst.BaseExpression) -> bool:
    if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
        return isinstance(node, (cst.SimpleString, cst.ConcatenatedString))
    receiver = node.func.value
    return isinstance(receiver, cst.Name) and receiver.value in {"log", "logger", "logging", "LOG"}


def _thread_part(value: cst.BaseExpression, facts: ScopeFacts) -> bool:
    """Whether `value` is the thread read out of the run ID: a string-valued parse of it
    (split part 1, a slice, a regex group 1 or named `thread...`, a join of middle parts)."""
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        method = value.func.attr.value
        if method == "join" and len(value.args) == 1:
            return _thread_part(value.args[0].value, facts)
        if method == "group":
            if not value.args:
                return False
            arg = value.args[0].value
            group = string_value(arg)
            ok_group = _int_value(arg) == 1 or (group is not None and "thread" in group)
            return ok_group and _from_parse(value.func.value, facts)
        if method in {
            "removeprefix",
            "removesuffix",
            "rsplit",
            "split",
            "replace",
            "strip",
            "lstrip",
            "rstrip",
            "partition",
            "rpartition",
        }:
            return _from_parse(value.func.value, facts) or parse_receiver(value, facts) is not None
        return False
    if isinstance(value, cst.Subscript) and len(value.slice) == 1:
        return _thread_subscript(value, facts)
    return False


def _thread_subscript(value: cst.Subscript, facts: ScopeFacts) -> bool:
    inner = value.slice[0].slice
    base = value.value
    origin = _split_origin(base, facts, 0)
    if isinstance(inner, cst.Index):
        key = string_value(inner.value)
        if key is not None:  # m["thread"]
            return "thread" in key and _from_parse(base, facts)
        index = _int_value(inner.value)
        if index is None or origin is None:
            return False
        method, receiver = origin
        raw = id_role(receiver, facts) is not None
        if method == "split":
            return index == 1
        if method in {"rsplit", "rpartition"}:
            return index == 0 and not raw
        return method == "partition" and index == 2 and not raw
    if isinstance(inner, cst.Slice):
        if origin is not None:
            return origin[0] == "split" and _int_value(inner.lower) == 1
        return id_role(base, facts) is not None or _from_parse(base, facts)
    return False


def _split_origin(
    node: cst.BaseExpression, facts: ScopeFacts, depth: int
) -> tuple[str, cst.BaseExpression] | None:
    """(method, receiver) when `node` is the list/tuple a split or partition made."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        if node.func.attr.value in {"split", "rsplit", "partition", "rpartition"}:
            return node.func.attr.value, node.func.value
    if isinstance(node, cst.Name) and depth < 3:
        values = facts.values.get(node.value, [])
        if len(values) == 1:
            return _split_origin(values[0], facts, depth + 1)
    return None


def _from_parse(node: cst.BaseExpression, facts: ScopeFacts) -> bool:
    if isinstance(node, cst.Name):
        return facts.local_piece(node.value) == "parsed" or id_role(node, facts) is not None
    return contains_parse(node, facts) or parse_receiver(node, facts) is not None


def is_id_piece(kind: str) -> bool:
    """Whether a template part of this kind makes the text an ID."""
    return kind in ID_PIECES
