"""The mapping old -> new, computed once per distinct stored value (migrate spec 1).

Pure: it sees the values the run read and the aliases already recorded, and decides
for each distinct value whether it is canonical, mapped (with its new ID and thread),
or unresolvable (with the ID error code). All parsing is `threadwire.ids`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from threadwire.ids import FormatRegistry, InvalidIdError, ParsedRunId, Resolver, to_canonical
from threadwire.ids import registry as default_registry
from threadwire.migrate.stored.database import Alias, MigrationError
from threadwire.migrate.stored.times import EPOCH, BadCreationTime, parse_creation_time

MAX_BUMPS: Final = 1000
"""Milliseconds a new ID may move forward to avoid one already taken."""


def registry_with(names: Iterable[str]) -> FormatRegistry:
    """A copy of the process's format registry with `names` enabled as well.

    A copy, so that one command (or one test) never changes what the rest of the
    process parses.
    """
    registry = default_registry.copy()
    for name in names:
        try:
            registry.enable(name)
        except KeyError:
            known = ", ".join(registry.names())
            raise MigrationError(f"--enable-format {name!r}: no such format ({known})") from None
    return registry


def resolver_from(existing: Callable[[Collection[str]], Collection[str]]) -> Resolver:
    """A resolver (ids spec 2.2) picking the one candidate thread that exists, else None.

    Two existing candidates are as ambiguous as none: the parse must not guess.
    """

    def resolve(candidates: tuple[str, ...]) -> str | None:
        found = set(existing(candidates))
        hits = [c for c in candidates if c in found]
        return hits[0] if len(hits) == 1 else None

    return resolve


@dataclass(frozen=True, slots=True)
class PrimaryRow:
    """A distinct value of the primary column with its row's thread and creation time."""

    value: object
    thread: object = None
    created: object = None


@dataclass
class Plan:
    """The decision for every distinct non-NULL value of the listed columns."""

    mapping: dict[str, Alias] = field(default_factory=dict)
    """Legacy ID -> its canonical ID and thread (recorded already or new)."""
    recorded: set[str] = field(default_factory=set)
    """Legacy IDs whose mapping `threadwire_id_aliases` already holds."""
    canonical: set[str] = field(default_factory=set)
    unresolvable: dict[str, str] = field(default_factory=dict)
    """The value as text -> ID error code."""


@dataclass(frozen=True, slots=True)
class _Legacy:
    parsed: ParsedRunId
    thread: str | None
    created: datetime


def make_plan(
    primary: Sequence[PrimaryRow],
    others: Iterable[object],
    *,
    aliases: dict[str, Alias],
    registry: FormatRegistry,
    resolver: Resolver | None,
    now: datetime,
    created_at_label: str | None = None,
) -> Plan:
    """Decide every value: primary rows first (their thread and creation time count),
    then values found only in the other columns, parsed on their own.

    Recorded aliases are reused as they are, so a run resumed after a crash maps each
    legacy ID to the ID its earlier batches already wrote.
    """
    plan = Plan()
    legacy: dict[str, _Legacy] = {}
    rows = [(r.value, r.thread, r.created, True) for r in primary]
    rows += [(v, None, None, False) for v in others]
    for value, thread, created, in_primary in rows:
        text = value if isinstance(value, str) else str(value)
        if text in plan.mapping or text in plan.canonical or text in plan.unresolvable:
            continue
        if text in legacy:
            continue
        alias = aliases.get(text)
        if alias is not None and alias.run_id != text:
            plan.mapping[text] = alias
            plan.recorded.add(text)
            continue
        try:
            parsed = registry.parse(value, resolver=resolver)
        except InvalidIdError as error:
            plan.unresolvable[text] = error.code
            continue
        if parsed.is_canonical:
            plan.canonical.add(text)
            continue
        # An empty thread cell names no thread, like NULL.
        hint = (str(thread) if in_primary and thread is not None else "") or None
        when = _creation(created, text, created_at_label) if in_primary else None
        legacy[text] = _Legacy(parsed, hint, when or now)
    taken = plan.canonical | {a.run_id for a in plan.mapping.values()}
    for text in sorted(legacy):
        try:
            alias = _new_id(legacy[text], taken)
        except InvalidIdError as error:
            plan.unresolvable[text] = error.code
            continue
        plan.mapping[text] = alias
        taken.add(alias.run_id)
    return plan


def _creation(value: object, legacy_id: str, label: str | None) -> datetime | None:
    try:
        when = parse_creation_time(value)
    except BadCreationTime as exc:
        raise MigrationError(f"--created-at-column {label} of {legacy_id!r}: {exc}") from None
    if when is not None and when < EPOCH:
        raise MigrationError(f"--created-at-column {label} of {legacy_id!r}: {when} is before 1970")
    return when


def _new_id(item: _Legacy, taken: set[str]) -> Alias:
    """The canonical ID for a legacy one, a millisecond later while the ID is taken."""
    parsed = item.parsed
    thread = parsed.thread_id or item.thread
    if thread is None:
        raise InvalidIdError(
            "unknown_run", f"{parsed.raw!r} embeds no thread and its row names none"
        )
    for bump in range(MAX_BUMPS):
        when = item.created + timedelta(milliseconds=bump)
        run_id = to_canonical(
            parsed,
            created_at=when.astimezone(UTC),
            thread_id=None if parsed.thread_id else thread,
        )
        if run_id not in taken:
            return Alias(run_id, thread)
    raise MigrationError(f"no free canonical ID for {parsed.raw!r} near {item.created}")
