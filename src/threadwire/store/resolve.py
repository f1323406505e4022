"""Async run-ID resolution every backend shares (ids spec 2.2, migrate spec 2).

The ID module parses without touching the database; here the store answers what a
string cannot: ambiguity (from its threads) and IDs that embed no thread (from its
runs and aliases).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from threadwire.ids import InvalidIdError, ParsedRunId, parse_run_id

AliasLookup = Callable[[str], Awaitable[tuple[str, str] | None]]
"""legacy_id -> (canonical run_id, thread_id), or None."""
ExistingThreads = Callable[[Sequence[str]], Awaitable[set[str]]]
"""candidate thread IDs -> those that exist."""
RunThreadLookup = Callable[[str], Awaitable[str | None]]
"""canonical run_id -> its thread_id, or None."""


async def parse_with_store(run_id: str, existing_threads: ExistingThreads) -> ParsedRunId:
    """Parse `run_id`, settling ambiguity by which candidate threads exist."""
    candidates: list[str] = []

    def record(found: Sequence[str]) -> str | None:
        candidates.extend(found)
        return None

    try:
        return parse_run_id(run_id, resolver=record)
    except InvalidIdError as exc:
        if exc.code != "ambiguous" or not candidates:
            raise
    existing = await existing_threads(candidates)

    def pick(found: Sequence[str]) -> str | None:
        hits = [t for t in found if t in existing]
        return hits[0] if len(hits) == 1 else None

    return parse_run_id(run_id, resolver=pick)


async def resolve_thread(
    run_id: str,
    *,
    alias: AliasLookup,
    existing_threads: ExistingThreads,
    run_thread: RunThreadLookup,
) -> str:
    """The thread of `run_id`: aliases first, then the parse, then the runs table."""
    if not isinstance(run_id, str):
        parse_run_id(run_id)  # raises the precise InvalidIdError
    known = await alias(run_id)
    if known is not None:
        return known[1]
    parsed = await parse_with_store(run_id, existing_threads)
    if parsed.thread_id is not None:
        return parsed.thread_id
    thread = await run_thread(run_id)
    if thread is None:
        raise InvalidIdError(
            "unknown_run", f"run ID embeds no thread and no stored run has it: {run_id[:80]!r}"
        )
    return thread
