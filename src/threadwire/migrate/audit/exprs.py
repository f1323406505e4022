"""What an expression is, as far as IDs go: whether it holds an ID (and which role),
whether it is text assembled from parts (a template), and what kind of piece each part is."""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import libcst as cst

from threadwire.migrate.audit.config import IdNames, Role

PieceKind = Literal["run", "thread", "any", "random", "timestamp", "parsed", "other"]
ID_PIECES: frozenset[PieceKind] = frozenset(
    {"run", "thread", "any", "random", "timestamp", "parsed"}
)

RANDOM_CALLS = frozenset(
    {
        "uuid.uuid1",
        "uuid.uuid4",
        "uuid.uuid6",
        "uuid.uuid7",
        "uuid6.uuid7",
        "uuid_utils.uuid4",
        "uuid_utils.uuid7",
        "secrets.token_hex",
        "secrets.token_urlsafe",
        "secrets.token_bytes",
        "secrets.randbits",
        "secrets.choice",
        "os.urandom",
        "random.getrandbits",
        "random.randint",
        "random.random",
        "random.randrange",
        "random.choices",
        "random.choice",
        "random.sample",
        "ulid.new",
        "ulid.ULID",
        "shortuuid.uuid",
        "nanoid.generate",
    }
)
TIME_CALLS = frozenset(
    {
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.strftime",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "datetime.now",
        "datetime.utcnow",
    }
)
_WRAPPER_FUNCS = frozenset({"str", "int", "round", "hex", "format", "abs", "float", "repr"})
_WRAPPER_METHODS = frozenset(
    {
        "hex",
        "lower",
        "upper",
        "strip",
        "zfill",
        "rjust",
        "ljust",
        "isoformat",
        "strftime",
        "timestamp",
        "decode",
        "replace",
        "encode",
    }
)
_WRAPPER_ATTRS = frozenset({"hex", "int", "time_low", "bytes", "urn", "node", "fields"})
_NAME_HINTS: dict[str, PieceKind] = {
    **dict.fromkeys(("tid", "thread"), "thread"),
    **dict.fromkeys(
        (
            "suffix",
            "rand",
            "rand8",
            "rand_hex",
            "random_hex",
            "rnd",
            "hex8",
            "short",
            "short_id",
            "short_uuid",
            "token",
            "nonce",
            "uid",
            "uuid",
            "entropy",
            "salt",
            "hexdigits",
        ),
        "random",
    ),
    **dict.fromkeys(
        (
            "ts",
            "timestamp",
            "ts_ms",
            "now",
            "now_ms",
            "millis",
            "ms",
            "epoch",
            "epoch_ms",
            "stamp",
            "created_ms",
            "time_ms",
        ),
        "timestamp",
    ),
}
PARSE_METHODS = frozenset(
    {
        "split",
        "rsplit",
        "partition",
        "rpartition",
        "startswith",
        "endswith",
        "removeprefix",
        "removesuffix",
        "replace",
        "lstrip",
        "rstrip",
        "strip",
        "find",
        "rfind",
        "index",
        "rindex",
        "count",
    }
)
_NEEDS_ARGS = frozenset({"lstrip", "rstrip", "strip"})
REGEX_FUNCS = frozenset(
    f"{mod}.{fn}"
    for mod in ("re", "regex")
    for fn in ("match", "search", "fullmatch", "findall", "finditer", "split", "sub", "subn")
)
REGEX_METHODS = frozenset(
    {"match", "search", "fullmatch", "findall", "finditer", "split", "sub", "subn"}
)
_REGEX_NAME = re.compile(r"(?i)(^|_)(re|regex|rx|pattern|pat|regexp)$")
_ID_CHARS = re.compile(r"[A-Za-z0-9_\-.:]*")
_FILE_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")
_LABEL = re.compile(r"^(run|thread)_ids?(?![A-Za-z0-9])")


class Env(Protocol):
    """What the expression rules need to know about the scope they look at."""

    id_names: IdNames

    def local_role(self, name: str) -> Role | None:
        """Role of a local that data flow showed to hold an ID."""

    def local_piece(self, name: str) -> PieceKind | None:
        """Piece kind of a local assigned a UUID, timestamp or parsed ID part."""

    def string_const(self, name: str) -> str | None:
        """Value of a name bound to a string literal."""

    def is_regex(self, node: cst.BaseExpression) -> bool:
        """Whether `node` names a compiled regular expression."""

    def qualnames(self, node: cst.CSTNode) -> set[str]:
        """Qualified names `node` refers to, imports resolved."""


def dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        inner = dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr.value}"
    return None


def string_value(node: cst.BaseExpression) -> str | None:
    """The value of a plain (non-f, non-bytes) string literal."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    if isinstance(node, cst.ConcatenatedString):
        left, right = string_value(node.left), string_value(node.right)
        return None if left is None or right is None else left + right
    return None


def literal_text(node: cst.BaseExpression, env: Env) -> str | None:
    """A string literal's value, or that of a name bound to one."""
    value = string_value(node)
    if value is None and isinstance(node, cst.Name):
        value = env.string_const(node.value)
    return value


def subscript_key(node: cst.Subscript) -> str | None:
    """The key of `x["key"]`, else None."""
    if len(node.slice) != 1:
        return None
    inner = node.slice[0].slice
    return string_value(inner.value) if isinstance(inner, cst.Index) else None


def id_role(node: cst.BaseExpression, env: Env) -> Role | None:
    """The role of the ID `node` holds: an ID name as variable, attribute or string key,
    `.get("run_id")`, or a local that data flow showed holds one."""
    names = env.id_names
    if isinstance(node, cst.Name):
        return names.role(node.value) or env.local_role(node.value)
    if isinstance(node, cst.Attribute):
        return names.role(node.attr.value)
    if isinstance(node, cst.Subscript):
        key = subscript_key(node)
        return names.key_role(key) if key is not None else None
    if isinstance(node, cst.Call):
        return _call_role(node, env)
    if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, cst.Or):
        # `(run_id or "")[:8]`: a default for a missing ID is still the ID
        fallback = node.right
        if isinstance(fallback, (cst.SimpleString, cst.Name)) and (
            string_value(fallback) == "" or dotted(fallback) == "None"
        ):
            return id_role(node.left, env)
    return None


def _call_role(node: cst.Call, env: Env) -> Role | None:
    func, args = node.func, node.args
    if isinstance(func, cst.Attribute):
        method = func.attr.value
        if method in {"get", "pop", "getone", "get_str"} and args:
            key = string_value(args[0].value)
            return env.id_names.key_role(key) if key is not None else None
        if method in {"strip", "lower", "upper", "casefold"} and not args:
            return id_role(func.value, env)
    if isinstance(func, cst.Name):
        if func.value == "getattr" and len(args) >= 2:
            key = string_value(args[1].value)
            return env.id_names.role(key) if key is not None else None
        if func.value == "str" and len(args) == 1 and not args[0].keyword:
            return id_role(args[0].value, env)
    return None


def _has_call_name(node: cst.Call, env: Env, names: frozenset[str]) -> bool:
    candidates = env.qualnames(node.func)
    plain = dotted(node.func)
    if plain is not None:
        candidates = candidates | {plain}
    return bool(candidates & names)


def piece_kind(node: cst.BaseExpression | None, env: Env, spec: str = "") -> PieceKind:
    """What a template part is: an ID, a random/UUID/hex part, a timestamp, a part parsed
    out of an ID, or something else (a counter, a name, a path)."""
    if node is None:
        return "other"
    kind = _piece(node, env, 0)
    if kind == "other" and re.search(r"[xX]$", spec):
        return "random"
    return kind


def _piece(node: cst.BaseExpression, env: Env, depth: int) -> PieceKind:  # noqa: C901
    if depth > 8:
        return "other"
    role = id_role(node, env)
    if role is not None:
        return role
    if parse_receiver(node, env) is not None:
        return "parsed"
    if isinstance(node, cst.Name):
        return env.local_piece(node.value) or _hint(node.value)
    if isinstance(node, cst.Attribute):
        if node.attr.value in _WRAPPER_ATTRS and isinstance(node.value, (cst.Call, cst.Name)):
            inner = _piece(node.value, env, depth + 1)
            if inner != "other":
                return inner
        return _hint(node.attr.value)
    if isinstance(node, cst.Subscript):
        inner_kind = _piece(node.value, env, depth + 1)
        return "parsed" if inner_kind in {"run", "thread", "any"} else inner_kind
    if isinstance(node, cst.Call):
        if _has_call_name(node, env, RANDOM_CALLS):
            return "random"
        if _has_call_name(node, env, TIME_CALLS):
            return "timestamp"
        func = node.func
        if isinstance(func, cst.Name) and func.value in _WRAPPER_FUNCS and node.args:
            return _piece(node.args[0].value, env, depth + 1)
        if isinstance(func, cst.Attribute) and func.attr.value in _WRAPPER_METHODS:
            return _piece(func.value, env, depth + 1)
        return "other"
    if isinstance(node, cst.BinaryOperation):
        kinds = {_piece(node.left, env, depth + 1), _piece(node.right, env, depth + 1)}
        preferred: PieceKind
        for preferred in ("timestamp", "random"):
            if preferred in kinds:
                return preferred
    return "other"


def _hint(name: str) -> PieceKind:
    bare = name.lstrip("_")
    if bare in _NAME_HINTS:
        return _NAME_HINTS[bare]
    if bare.endswith(("_ts", "_ms", "_timestamp")):
        return "timestamp"
    if bare.endswith(("_hex", "_suffix", "_rand", "_nonce", "_uuid")):
        return "random"
    return "other"


@dataclass(frozen=True)
class Part:
    """One part of assembled text: literal text, or an expression with its format spec."""

    text: str | None = None
    expr: cst.BaseExpression | None = None
    spec: str = ""
    conversion: str = ""


@dataclass(frozen=True)
class Template:
    """Text assembled from parts by an f-string, `%`, `.format`, `+` or `join`."""

    node: cst.BaseExpression
    style: str
    parts: tuple[Part, ...]
    consumed: tuple[cst.CSTNode, ...] = ()

    @property
    def lead(self) -> str:
        """The literal text before the first non-literal part."""
        out = []
        for part in self.parts:
            if part.text is None:
                break
            out.append(part.text)
        return "".join(out)

    @property
    def pieces(self) -> tuple[Part, ...]:
        """The non-literal parts."""
        return tuple(p for p in self.parts if p.text is None)

    def literal_is_id_text(self) -> bool:
        """Whether every literal part could sit inside an ID (the thread ID grammar) and the
        text does not end like a file name."""
        literals = [p.text for p in self.parts if p.text is not None]
        if not all(_ID_CHARS.fullmatch(t) for t in literals):
            return False
        last = self.parts[-1].text if self.parts else None
        return not (last is not None and _FILE_SUFFIX.search(last))

    def starts_like_id(self) -> bool:
        """Whether the text starts with `run_` or `thread_` (and is not a `run_id=` label)."""
        lead = self.lead
        return lead.startswith(("run_", "thread_")) and not _LABEL.match(lead)


def template_of(node: cst.BaseExpression, env: Env) -> Template | None:
    """The template `node` is, or None when it does not assemble text. Parts that are
    string literals or names bound to one (`RUN_PREFIX`) count as literal text."""
    template = _template(node, env)
    if template is None:
        return None
    parts = tuple(
        Part(text=text)
        if p.expr is not None and not p.spec and (text := literal_text(p.expr, env)) is not None
        else p
        for p in template.parts
    )
    if all(p.text is not None for p in parts):
        return None
    return dataclasses.replace(template, parts=parts)


def _template(node: cst.BaseExpression, env: Env) -> Template | None:
    if isinstance(node, (cst.FormattedString, cst.ConcatenatedString)):
        parts = _string_parts(node)
        if parts is None or all(p.text is not None for p in parts):
            return None
        return Template(node, "f-string", tuple(parts), _concat_nodes(node))
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Add):
            return _plus_template(node, env)
        if isinstance(node.operator, cst.Modulo):
            fmt = literal_text(node.left, env)
            return None if fmt is None else _percent_template(node, fmt, node.right)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        receiver = literal_text(node.func.value, env)
        if receiver is None:
            return None
        if node.func.attr.value == "format":
            return _format_template(node, receiver)
        if node.func.attr.value == "join" and len(node.args) == 1:
            return _join_template(node, receiver, node.args[0].value, env)
    return None


def _string_parts(node: cst.BaseExpression) -> list[Part] | None:
    if isinstance(node, cst.SimpleString):
        value = string_value(node)
        return None if value is None else [Part(text=value)]
    if isinstance(node, cst.ConcatenatedString):
        left, right = _string_parts(node.left), _string_parts(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, cst.FormattedString):
        parts: list[Part] = []
        for item in node.parts:
            if isinstance(item, cst.FormattedStringText):
                parts.append(Part(text=item.value.replace("{{", "{").replace("}}", "}")))
            elif isinstance(item, cst.FormattedStringExpression):
                spec = "".join(
                    s.value
                    for s in item.format_spec or ()
                    if isinstance(s, cst.FormattedStringText)
                )
                conversion = item.conversion or ""
                parts.append(Part(expr=item.expression, spec=spec, conversion=conversion))
        return parts
    return None


def _concat_nodes(node: cst.BaseExpression) -> tuple[cst.CSTNode, ...]:
    if isinstance(node, cst.ConcatenatedString):
        return (node, *_concat_nodes(node.left), *_concat_nodes(node.right))
    return (node,)


def _plus_template(node: cst.BinaryOperation, env: Env) -> Template | None:
    operands: list[cst.BaseExpression] = []
    consumed: list[cst.CSTNode] = []

    def flatten(expr: cst.BaseExpression) -> None:
        if (
            isinstance(expr, cst.BinaryOperation)
            and isinstance(expr.operator, cst.Add)
            and not expr.lpar
        ):
            consumed.append(expr)
            flatten(expr.left)
            flatten(expr.right)
        else:
            operands.append(expr)

    flatten(node)
    parts: list[Part] = []
    has_text = False
    for operand in operands:
        text = literal_text(operand, env)
        sub = _string_parts(operand) if isinstance(operand, cst.FormattedString) else None
        if text is not None:
            parts.append(Part(text=text))
            has_text = True
        elif sub is not None:
            parts.extend(sub)
            consumed.extend(_concat_nodes(operand))
            has_text = True
        else:
            parts.append(Part(expr=operand))
    if not has_text or all(p.text is not None for p in parts):
        return None
    return Template(node, "+", tuple(parts), tuple(consumed))


_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?(?P<flags>[#0\- +]*)(?P<width>\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?"
    r"(?P<conv>[diouxXeEfFgGcrsa%])"
)


def _percent_template(
    node: cst.BaseExpression, fmt: str, rhs: cst.BaseExpression
) -> Template | None:
    if isinstance(rhs, cst.Tuple):
        positional: Sequence[cst.BaseExpression] = [e.value for e in rhs.elements]
    else:
        positional = [rhs]
    keyed: dict[str, cst.BaseExpression] = {}
    if isinstance(rhs, cst.Dict):
        for element in rhs.elements:
            if isinstance(element, cst.DictElement):
                key = string_value(element.key)
                if key is not None:
                    keyed[key] = element.value
    parts: list[Part] = []
    index = 0
    pos = 0
    for match in _PERCENT.finditer(fmt):
        if match.start() > pos:
            parts.append(Part(text=fmt[pos : match.start()]))
        pos = match.end()
        conv = match.group("conv")
        if conv == "%":
            parts.append(Part(text="%"))
            continue
        key = match.group("key")
        expr: cst.BaseExpression | None
        if key is not None:
            expr = keyed.get(key)
        else:
            expr = positional[index] if index < len(positional) else None
            index += 1
        width = match.group("width") or ""
        parts.append(Part(expr=expr, spec=width if conv in "sra" else width + conv))
    if pos < len(fmt):
        parts.append(Part(text=fmt[pos:]))
    if all(p.text is not None for p in parts):
        return None
    return Template(node, "%", tuple(parts))


def _format_template(node: cst.Call, fmt: str) -> Template | None:
    positional = [a.value for a in node.args if a.keyword is None and not a.star]
    keyword = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return None
    parts: list[Part] = []
    auto = 0
    for literal, field, spec, conversion in fields:
        if literal:
            parts.append(Part(text=literal))
        if field is None:
            continue
        head = re.split(r"[.\[]", field, maxsplit=1)[0]
        expr: cst.BaseExpression | None
        if head == "":
            expr = positional[auto] if auto < len(positional) else None
            auto += 1
        elif head.isdigit():
            expr = positional[int(head)] if int(head) < len(positional) else None
        else:
            expr = keyword.get(head)
        parts.append(Part(expr=expr, spec=spec or "", conversion=conversion or ""))
    if all(p.text is not None for p in parts):
        return None
    return Template(node, "format", tuple(parts))


def _join_template(node: cst.Call, sep: str, arg: cst.BaseExpression, env: Env) -> Template | None:
    if not isinstance(arg, (cst.List, cst.Tuple)):
        return None
    parts: list[Part] = []
    for i, element in enumerate(arg.elements):
        if isinstance(element, cst.StarredElement):
            return None
        if i and sep:
            parts.append(Part(text=sep))
        text = literal_text(element.value, env)
        parts.append(Part(text=text) if text is not None else Part(expr=element.value))
    if all(p.text is not None for p in parts):
        return None
    return Template(node, "join", tuple(parts))


def parse_receiver(node: cst.CSTNode, env: Env) -> tuple[str, cst.BaseExpression] | None:
    """When `node` splits, slices, tests or matches an ID, how (`split`, `slice`, `regex`,
    ...) and the ID expression it works on."""
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in PARSE_METHODS and not (method in _NEEDS_ARGS and not node.args):
                if id_role(func.value, env) is not None:
                    return method, func.value
            if method in REGEX_METHODS and env.is_regex(func.value):
                target = _regex_subject(node, method, compiled=True)
                if target is not None and id_role(target, env) is not None:
                    return "regex", target
        if _has_call_name(node, env, REGEX_FUNCS):
            method = (dotted(node.func) or "").rsplit(".", 1)[-1]
            target = _regex_subject(node, method, compiled=False)
            if target is not None and id_role(target, env) is not None:
                return "regex", target
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        inner = node.slice[0].slice
        is_slice = isinstance(inner, cst.Slice)
        is_index = isinstance(inner, cst.Index) and _is_int(inner.value)
        if (is_slice or is_index) and id_role(node.value, env) is not None:
            return "slice", node.value
    return None


def _is_int(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Integer):
        return True
    return isinstance(node, cst.UnaryOperation) and isinstance(node.expression, cst.Integer)


def _regex_subject(node: cst.Call, method: str, *, compiled: bool) -> cst.BaseExpression | None:
    for arg in node.args:
        if arg.keyword is not None and arg.keyword.value == "string":
            return arg.value
    positional = [a.value for a in node.args if a.keyword is None]
    index = 1 if method in {"sub", "subn"} else 0
    if not compiled:
        index += 1
    return positional[index] if index < len(positional) else None


def is_regex_name(name: str) -> bool:
    """Whether a name reads like a compiled pattern (`RUN_RE`, `pattern`)."""
    return bool(_REGEX_NAME.search(name))
