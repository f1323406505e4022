"""The format registry and parsing (ids.md section 2): which strings are run IDs, and whose.

A string that starts with `thread_` is read only as canonical; anything else only by the
enabled legacy formats, highest precedence first. Several legacy formats reading one
string as different threads is an error unless a resolver picks one: the parse never
guesses.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Final

from threadwire.ids.errors import InvalidIdError, quote
from threadwire.ids.grammar import (
    CHAR_CLASS,
    MAX_RUN_ID_LENGTH,
    MAX_THREAD_ID_LENGTH,
    check_text,
)
from threadwire.ids.metrics import counters, legacy_log
from threadwire.ids.parsed import ParsedRunId

#: Called with the candidate thread IDs of an ambiguous ID, best first; returns the one
#: that exists, or None.
Resolver = Callable[[tuple[str, ...]], "str | None"]

CANONICAL: Final = "canonical"
LEGACY_RUN: Final = "legacy_run"
LEGACY_RUN_TS: Final = "legacy_run_ts"
UUID: Final = "uuid"

_CANONICAL_PREFIX: Final = "thread_"
_HEX8: Final = "[0-9a-f]{8}"
_HEX: Final = "[0-9A-Fa-f]"


@dataclass(frozen=True)
class IdFormat:
    """A run-ID format: a regular expression with named groups.

    `thread` captures the thread ID (a format without it reads IDs whose thread the store
    must look up), `ts` an optional decimal timestamp, `rand` an optional random part. The
    whole string must match. Among formats that match, higher `precedence` wins when they
    agree on the thread; when they disagree the parse is `ambiguous`.

    >>> fmt = IdFormat("job", r"job-(?P<thread>[a-z0-9]+)-(?P<rand>[0-9a-f]{8})", precedence=5)
    >>> fmt.name, fmt.has_thread, fmt.enabled
    ('job', True, True)
    """

    name: str
    regex: str | re.Pattern[str]
    precedence: int = 0
    enabled: bool = True
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    has_thread: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a format needs a non-empty name, got {self.name!r}")
        pattern = self.regex if isinstance(self.regex, re.Pattern) else re.compile(self.regex)
        if not isinstance(pattern.pattern, str):  # a bytes pattern would fail on every parse
            raise ValueError(f"format {self.name!r}: the regex must be text, not bytes")
        unknown = set(pattern.groupindex) - {"thread", "ts", "rand"}
        if unknown:
            raise ValueError(
                f"format {self.name!r}: named groups may be thread, ts and rand, "
                f"not {', '.join(sorted(unknown))}"
            )
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "has_thread", "thread" in pattern.groupindex)


def _builtin_formats() -> tuple[IdFormat, ...]:
    return (
        IdFormat(
            CANONICAL,
            rf"thread_(?P<thread>{CHAR_CLASS}+)_run_(?P<ts>0|[1-9][0-9]*)_(?P<rand>{_HEX8})",
            precedence=1000,
        ),
        IdFormat(LEGACY_RUN, rf"run_(?P<thread>{CHAR_CLASS}+)_(?P<rand>{_HEX8})", precedence=100),
        IdFormat(
            LEGACY_RUN_TS,
            rf"run_(?P<thread>{CHAR_CLASS}+)_(?P<ts>[0-9]+)_(?P<rand>{_HEX8})",
            precedence=90,
            enabled=False,  # with it, run_abc_12345_7f3a9c01 reads as two threads
        ),
        # Any version and variant, either case: legacy stores hold whatever they made.
        IdFormat(UUID, rf"{_HEX}{{32}}|{_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}", 10),
    )


# The canonical hot path: bounded so that any match is a valid ID of at most 249
# characters with a thread ID of at most 128, needing no further checks. Longer
# timestamps fall through to the general path. No capture groups: they cost more than
# finding the pieces again by position.
_FAST_CANONICAL: Final = re.compile(
    rf"thread_{CHAR_CLASS}{{1,128}}_run_(?:0|[1-9][0-9]{{0,99}})_{_HEX8}"
).fullmatch
_tuple_new: Final = tuple.__new__
_next: Final = next
_canonical_count: Final = counters.canonical


class FormatRegistry:
    """The run-ID formats a process reads, by name; thread-safe.

    Starts with `canonical` (always on), `legacy_run` (on), `legacy_run_ts` (off) and
    `uuid` (on).

    >>> reg = FormatRegistry()
    >>> reg.enabled_names()
    ('canonical', 'legacy_run', 'uuid')
    >>> reg.enable("legacy_run_ts")
    >>> reg.parse("run_abc_12345_7f3a9c01", resolver=lambda c: "abc").format
    'legacy_run_ts'
    """

    def __init__(self, formats: Collection[IdFormat] | None = None) -> None:
        self._lock = threading.RLock()
        self._formats: dict[str, IdFormat] = {}
        self._legacy: tuple[IdFormat, ...] = ()
        self._install(_builtin_formats())
        for fmt in formats or ():
            self.register(fmt)

    # -- reading ------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def __iter__(self) -> Iterator[IdFormat]:
        """Every registered format, enabled or not, highest precedence first."""
        return iter(self._ordered(self._formats.values()))

    def __len__(self) -> int:
        return len(self._formats)

    def get(self, name: str) -> IdFormat:
        """The format called `name`; KeyError if none is."""
        return self._formats[name]

    def names(self) -> tuple[str, ...]:
        """Names of every registered format, highest precedence first."""
        return tuple(fmt.name for fmt in self)

    def enabled_names(self) -> tuple[str, ...]:
        """Names of the enabled formats, highest precedence first."""
        return tuple(fmt.name for fmt in self if fmt.enabled)

    def is_enabled(self, name: str) -> bool:
        """Whether the format called `name` is registered and enabled."""
        fmt = self._formats.get(name)
        return fmt is not None and fmt.enabled

    # -- changing -----------------------------------------------------------------------

    def register(
        self,
        format: IdFormat | str,
        regex: str | re.Pattern[str] | None = None,
        *,
        precedence: int = 0,
        enabled: bool = True,
        replace: bool = False,
    ) -> IdFormat:
        """Add a format: an `IdFormat`, or a name and a regular expression.

        A name already taken is a ValueError unless `replace` is true; `canonical` can
        never be replaced.
        """
        if isinstance(format, IdFormat):
            if regex is not None:
                raise TypeError("pass an IdFormat or a name and a regex, not both")
            fmt = format
        elif regex is None:
            raise TypeError(f"format {format!r} needs a regex")
        else:
            fmt = IdFormat(format, regex, precedence, enabled)
        with self._lock:
            if fmt.name == CANONICAL:
                raise ValueError("the canonical format is built in and cannot be replaced")
            if fmt.name in self._formats and not replace:
                raise ValueError(f"a format called {fmt.name!r} is already registered")
            self._install((*self._formats.values(), fmt))
        return fmt

    def unregister(self, name: str) -> None:
        """Remove a format; KeyError if there is none of that name."""
        with self._lock:
            self._check_not_canonical(name, "removed")
            formats = dict(self._formats)
            del formats[name]
            self._formats = {}
            self._install(formats.values())

    def enable(self, name: str) -> None:
        """Turn a registered format on; KeyError if there is none of that name."""
        self._set_enabled(name, True)

    def disable(self, name: str) -> None:
        """Turn a registered format off; the canonical format cannot be."""
        self._set_enabled(name, False)

    def copy(self) -> FormatRegistry:
        """An independent registry with the same formats and switches."""
        other = FormatRegistry()
        other._formats = {}
        other._install(self._formats.values())
        return other

    @contextmanager
    def scoped(self) -> Iterator[FormatRegistry]:
        """Undo every change made to this registry inside the `with` block (for tests).

        >>> with registry.scoped():
        ...     registry.enable("legacy_run_ts")
        >>> registry.is_enabled("legacy_run_ts")
        False
        """
        with self._lock:
            saved = dict(self._formats)
        try:
            yield self
        finally:
            with self._lock:
                self._formats = {}
                self._install(saved.values())

    def reset(self) -> None:
        """Back to the built-in formats and switches."""
        with self._lock:
            self._formats = {}
            self._install(_builtin_formats())

    def _set_enabled(self, name: str, enabled: bool) -> None:
        with self._lock:
            fmt = self._formats[name]
            if not enabled:
                self._check_not_canonical(name, "disabled")
            self._install((*self._formats.values(), replace(fmt, enabled=enabled)))

    @staticmethod
    def _check_not_canonical(name: str, what: str) -> None:
        if name == CANONICAL:
            raise ValueError(f"the canonical format cannot be {what}: it is what threadwire makes")

    def _install(self, formats: Collection[IdFormat]) -> None:
        # Later entries of the same name replace earlier ones, keeping their place in the
        # registration order, which breaks precedence ties.
        merged = dict(self._formats)
        for fmt in formats:
            merged[fmt.name] = fmt
        self._formats = merged
        # Parsers read this tuple without the lock: it is replaced whole, never changed.
        self._legacy = tuple(
            fmt for fmt in self._ordered(merged.values()) if fmt.enabled and fmt.name != CANONICAL
        )

    def _ordered(self, formats: Collection[IdFormat]) -> list[IdFormat]:
        position = {name: i for i, name in enumerate(self._formats)}
        return sorted(formats, key=lambda fmt: (-fmt.precedence, position.get(fmt.name, 0)))

    # -- parsing ------------------------------------------------------------------------

    def parse(self, run_id: object, *, resolver: Resolver | None = None) -> ParsedRunId:
        """Parse `run_id` with this registry's formats; see `threadwire.ids.parse_run_id`."""
        if type(run_id) is str and _FAST_CANONICAL(run_id) is not None:
            _next(_canonical_count)
            return _tuple_new(ParsedRunId, (run_id, CANONICAL, None, None, None, True))
        return self._parse_general(run_id, resolver)

    def _parse_general(self, value: object, resolver: Resolver | None) -> ParsedRunId:
        """Every ID the fast canonical path does not take: legacy, unusual, or invalid."""
        try:
            return self._parse_slow(value, resolver)
        except InvalidIdError as error:
            counters.error(error.code)
            raise

    def _parse_slow(self, value: object, resolver: Resolver | None) -> ParsedRunId:
        run_id = check_text(value, MAX_RUN_ID_LENGTH, "run ID")
        if run_id.startswith(_CANONICAL_PREFIX):
            formats: tuple[IdFormat, ...] = (self._formats[CANONICAL],)
        else:
            formats = self._legacy
        matches: list[tuple[IdFormat, re.Match[str], str | None]] = []
        for fmt in formats:
            match = fmt.pattern.fullmatch(run_id)
            if match is None:
                continue
            thread = match.group("thread") if fmt.has_thread else None
            if fmt.has_thread and not thread:
                continue  # an optional thread group that matched nothing reads no thread
            matches.append((fmt, match, thread))
        if not matches:
            names = ", ".join(fmt.name for fmt in formats) or "none"
            raise InvalidIdError(
                "unknown_format", f"run ID matches no enabled format ({names}): {quote(run_id)}"
            )
        fmt, match, thread = self._choose(run_id, matches, resolver)
        if thread is not None and len(thread) > MAX_THREAD_ID_LENGTH:
            raise InvalidIdError(
                "too_long",
                f"thread ID in run ID too long ({len(thread)} > {MAX_THREAD_ID_LENGTH} "
                f"characters): {quote(run_id)}",
            )
        _next(counters.for_format(fmt.name))
        if fmt.name == CANONICAL:
            return _tuple_new(ParsedRunId, (run_id, CANONICAL, None, None, None, True))
        groups = match.groupdict()
        ts = groups.get("ts")
        if ts is not None and not ts.isdigit():  # ASCII already: the charset check saw to it
            ts = None  # a registered format's ts group that holds no number
        legacy_log(run_id, fmt.name)
        return _tuple_new(ParsedRunId, (run_id, fmt.name, thread, ts, groups.get("rand"), False))

    @staticmethod
    def _choose(
        run_id: str,
        matches: list[tuple[IdFormat, re.Match[str], str | None]],
        resolver: Resolver | None,
    ) -> tuple[IdFormat, re.Match[str], str | None]:
        if len(matches) == 1:
            return matches[0]
        threads = list(dict.fromkeys(thread for _, _, thread in matches))
        if len(threads) == 1:
            return matches[0]  # the formats agree: the highest precedence one names it
        candidates = tuple(thread for thread in threads if thread is not None)
        if resolver is not None and candidates:
            chosen = resolver(candidates)
            for found in matches:
                if found[2] is not None and found[2] == chosen:
                    return found
        readings = "; ".join(
            f"{fmt.name}: " + (repr(thread) if thread is not None else "no thread (store lookup)")
            for fmt, _, thread in matches
        )
        raise InvalidIdError(
            "ambiguous",
            f"run ID reads as more than one thread ({readings}); "
            f"pass a resolver to pick: {quote(run_id)}",
            candidates,
        )


#: The process-wide registry that `parse_run_id` and `extract_thread_id` use.
registry: Final = FormatRegistry()


def parse_run_id(
    s: object, *, resolver: Resolver | None = None, registry: FormatRegistry | None = None
) -> ParsedRunId:
    """Parse a run ID of any enabled format; raise `InvalidIdError` for anything else.

    `resolver` settles an ambiguous legacy ID (see `Resolver`); `registry` defaults to
    the process-wide one.

    >>> p = parse_run_id("run_user_42_7f3a9c01")
    >>> p.format, p.thread_id, p.rand, p.is_canonical
    ('legacy_run', 'user_42', '7f3a9c01', False)
    >>> parse_run_id("0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e").thread_id is None
    True
    """
    if type(s) is str and _FAST_CANONICAL(s) is not None:
        # FormatRegistry.parse inlined, and the compact canonical form (see ParsedRunId):
        # this is the hot path.
        _next(_canonical_count)
        return _tuple_new(ParsedRunId, (s, CANONICAL, None, None, None, True))
    return (_default if registry is None else registry)._parse_general(s, resolver)


def extract_thread_id(
    s: object, *, resolver: Resolver | None = None, registry: FormatRegistry | None = None
) -> str:
    """The thread ID of a run ID; `InvalidIdError` when there is none to be had.

    IDs that embed no thread (a bare UUID) raise `unknown_run`: only the store knows
    their thread (`resolve_thread` there).

    >>> extract_thread_id("thread_abc_run_123_run_1764021712123_7f3a9c01")
    'abc_run_123'
    """
    if type(s) is str and _FAST_CANONICAL(s) is not None:
        # The timestamp holds no "_" and ends 9 characters from the end; "_run_" before it.
        _next(_canonical_count)
        return s[7 : s.rfind("_", 0, -9) - 4]
    parsed = (_default if registry is None else registry)._parse_general(s, resolver)
    thread_id = parsed.thread_id
    if thread_id is None:
        counters.error("unknown_run")
        raise InvalidIdError(
            "unknown_run",
            f"run ID of format {parsed.format} embeds no thread ID; the store resolves it: "
            f"{quote(parsed.raw)}",
        )
    return thread_id


def try_extract_thread_id(
    s: object, *, resolver: Resolver | None = None, registry: FormatRegistry | None = None
) -> str | None:
    """Like `extract_thread_id`, but None instead of an error (for code that expects it).

    >>> try_extract_thread_id("run_abc_0badf00d"), try_extract_thread_id("nonsense")
    ('abc', None)
    """
    try:
        return extract_thread_id(s, resolver=resolver, registry=registry)
    except InvalidIdError:
        return None


_default: Final = registry
