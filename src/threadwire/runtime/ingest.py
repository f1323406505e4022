"""Ingest for `POST /v1/events` (protocol spec 4.1): events from agent workers outside
threadwire, through the same one event path (Coordinator: store, then bus).

A batch is checked whole before anything is written; the first bad event refuses it
with an `IngestError` naming its index, counted by code. Run IDs in any enabled format
are resolved through the store and stored canonical; the producer's own ID, when not
canonical, stays under `data.legacy_run_id`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from threadwire.events import (
    RUN_QUEUED,
    TERMINAL_TYPES,
    Event,
    NewEvent,
    dumps,
    is_valid_event_type,
    utcnow,
)
from threadwire.ids import (
    InvalidIdError,
    ParsedRunId,
    new_event_id,
    parse_run_id,
    to_canonical,
    validate_thread_id,
)
from threadwire.runtime import metrics
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.errors import IngestError
from threadwire.runtime.settle import settle
from threadwire.store.base import STATUS_OF_TERMINAL, RunEnded, RunRecord, Store

MAX_BATCH: Final = 500
MAX_IDEMPOTENCY_KEY: Final = 128
MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of a client's JSON value (event data, thread metadata, run input), the
value itself being level 1. Deeper values are refused before anything recurses over them:
every event must stay readable by each subscriber's parser (Python's recursion limit,
serde_json's 128, Ruby's default 100), not only by the node that stored it."""
EXTERNAL_AGENT: Final = "external"
"""The agent name recorded for runs first seen through ingest (unless `run_queued` names one)."""
LEGACY_RUN_ID_KEY: Final = "legacy_run_id"
ROUTE_CACHE_SIZE: Final = 10_000
"""Producer run IDs whose canonical run, thread and supervision this node remembers
(LRU). A run never changes thread or node_id and a legacy ID never changes run, so an
entry never goes stale; it only saves the store read that routed it the first time."""

Resolver = Callable[[Sequence[str]], "str | None"]


@dataclass(slots=True)
class _Target:
    """Where a producer's run ID routes: its canonical run, its thread, and whether the
    store still has to record it."""

    run_id: str
    thread_id: str
    legacy_id: str | None
    known: bool
    supervised: bool = False
    """The run has a node_id: threadwire executes it and writes its terminal event. A
    run's node_id is set when it is recorded and never changes, so this is cached too."""


_Planned = tuple[_Target, str, dict[str, Any], bytes]
"""An event of the batch, checked: where it goes, its type, its data and the data's JSON."""


class Ingestor:
    """Checks, canonicalises and stores batches of externally produced events."""

    def __init__(self, store: Store, coordinator: Coordinator) -> None:
        self.store = store
        self.coordinator = coordinator
        # Serialises first sight of each new run on this node, so two batches naming the
        # same new legacy ID do not mint two canonical IDs for it; other runs go on.
        self._first_sight = _KeyedLocks()
        self._routes: OrderedDict[str, tuple[str, str, bool]] = OrderedDict()

    async def ingest(
        self, events: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[Event]:
        """Store `events` atomically (all or none) in order; returns the stored events.

        Raises IngestError (400 ID error code, 404 `not_found`/`unknown_run`, 409
        `thread_mismatch`/`run_finished`/`run_supervised`, 422
        `invalid_event`/`invalid_request`), counted by code.
        """
        try:
            return await self._ingest(events, idempotency_key)
        except IngestError as exc:
            metrics.count_ingest_refusal(exc.code)
            raise

    async def _ingest(self, events: list[dict[str, Any]], key: str | None) -> list[Event]:
        _check_request(events, key)
        targets: dict[tuple[str, str | None], _Target] = {}
        plan: list[_Planned] = []
        for index, item in enumerate(events):
            raw, type_, data, data_json, thread_hint = _check_shape(item, index)
            cache_key = (raw, thread_hint)
            target = targets.get(cache_key)
            if target is None:
                target = await self._route(raw, thread_hint, index)
                targets[cache_key] = target
            plan.append((target, type_, data, data_json))
        if key is not None:
            # A retry is answered with what the first request stored, before any rule
            # below could refuse it (its own terminal event has since finished the run).
            replay = await self.store.idempotent_events(plan[0][0].thread_id, key)
            if replay is not None:
                return replay
        _check_supervised(plan)
        new = {id(t): t for t, _, _, _ in plan if not t.known}
        if new:
            async with AsyncExitStack() as held:
                # One lock per producer ID, taken in one order by every batch: no deadlock.
                for raw in sorted({t.legacy_id or t.run_id for t in new.values()}):
                    await held.enter_async_context(self._first_sight.hold(raw))
                for target in new.values():
                    await self._record(target, plan)
                    self._remember(target.legacy_id or target.run_id, target)
        batch = []
        for target, type_, data, data_json in plan:
            json_of_data: bytes | None = data_json
            if target.legacy_id is not None:
                data = {**data, LEGACY_RUN_ID_KEY: target.legacy_id}
                json_of_data = None  # the store and the hub serialize the amended data
            batch.append(
                NewEvent(
                    new_event_id(),
                    target.thread_id,
                    target.run_id,
                    type_,
                    utcnow(),
                    data,
                    json_of_data,
                )
            )
        # Final statuses go in first, so whoever sees a terminal event and then reads
        # the run finds it finished (as the supervisor does for its own runs).
        undo = await self._finish_runs(batch)
        try:
            # The store refuses, atomically with the append, any event of a run after its
            # terminal event (stored, or earlier in this batch): decision 0111.
            stored = await self.coordinator.emit(batch, idempotency_key=key)
        except RunEnded as exc:
            await self._undo(undo, exc)
            raise IngestError(
                409, "run_finished", f"run {exc.run_id!r} already ended", exc.index
            ) from None
        except BaseException:
            await self._undo(undo, None)
            raise
        metrics.ingest_events_total.inc(len(stored))
        return stored

    async def _undo(self, runs: list[RunRecord], ended: RunEnded | None) -> None:
        """Put back the statuses `_finish_runs` recorded for a batch that was not stored;
        a run another request ended meanwhile gets the status its stored end implies."""
        for run in runs:
            if ended is not None and ended.run_id == run.run_id and ended.terminal is not None:
                await settle(self.store, run, ended.terminal)
                continue
            await self.store.update_run(
                run.run_id,
                status=run.status,
                finished_at=run.finished_at,
                result=run.result,
                error=run.error,
            )

    async def _route(self, raw: str, thread_hint: str | None, index: int) -> _Target:
        """Resolve one producer run ID to its canonical run and thread."""
        route = self._routes.get(raw)
        if route is not None:
            self._routes.move_to_end(raw)
            run_id, run_thread, supervised = route
            _agree(thread_hint, run_thread, raw, index)
            return _Target(run_id, run_thread, None if raw == run_id else raw, True, supervised)
        try:
            known = await self.store.get_run(raw)
        except InvalidIdError as exc:
            raise _id_error(exc, index) from None
        if known is not None:
            _agree(thread_hint, known.thread_id, raw, index)
            legacy = None if raw == known.run_id else raw
            target = _Target(known.run_id, known.thread_id, legacy, True, known.node_id is not None)
            self._remember(raw, target)
            return target
        parsed = await self._parse(raw, thread_hint, index)
        thread_id = parsed.thread_id
        if thread_id is None:
            try:
                thread_id = await self.store.resolve_thread(raw)
            except InvalidIdError as exc:
                if exc.code != "unknown_run" or thread_hint is None:
                    raise _id_error(exc, index) from None
                thread_id = thread_hint  # the first event that names it teaches its thread
        _agree(thread_hint, thread_id, raw, index)
        if await self.store.get_thread(thread_id) is None:
            raise IngestError(404, "not_found", f"thread {thread_id!r} does not exist", index)
        if parsed.is_canonical:
            return _Target(parsed.raw, thread_id, None, False)
        canonical = to_canonical(parsed, created_at=utcnow(), thread_id=thread_id)
        return _Target(canonical, thread_id, raw, False)

    def _remember(self, raw: str, target: _Target) -> None:
        """Route `raw` to the (stored) run of `target` from now on, without a read."""
        self._routes[raw] = (target.run_id, target.thread_id, target.supervised)
        self._routes.move_to_end(raw)
        if len(self._routes) > ROUTE_CACHE_SIZE:
            self._routes.popitem(last=False)

    async def _parse(self, raw: str, thread_hint: str | None, index: int) -> ParsedRunId:
        """Parse `raw`; an ambiguous ID is settled by the event's `thread_id`, else by
        which candidate thread exists in the store."""
        try:
            return parse_run_id(raw, resolver=_prefer(thread_hint))
        except InvalidIdError as exc:
            if exc.code != "ambiguous":
                raise _id_error(exc, index) from None
        try:
            thread_id = await self.store.resolve_thread(raw)
            return parse_run_id(raw, resolver=_prefer(thread_id))
        except InvalidIdError as exc:
            raise _id_error(exc, index) from None

    async def _record(self, target: _Target, plan: list[_Planned]) -> None:
        """Record a run seen for the first time (or adopt the one another batch recorded)."""
        legacy = target.legacy_id
        existing = await self.store.get_run(legacy or target.run_id)
        if existing is None:
            thread = await self.store.get_thread(target.thread_id)
            agent = EXTERNAL_AGENT
            for t, type_, data, _ in plan:
                if t is target and type_ == RUN_QUEUED and isinstance(data.get("agent"), str):
                    # PostgreSQL text holds no NUL; the event itself keeps the name as sent.
                    agent = data["agent"].replace("\0", "")[:64] or EXTERNAL_AGENT
                    break
            now = utcnow()
            run = RunRecord(
                run_id=target.run_id,
                thread_id=target.thread_id,
                agent=agent,
                status="running",
                created_at=now,
                owner=thread.owner if thread else None,
                started_at=now,
            )
            stored = await self.store.ensure_run(run, legacy_id=legacy)
            existing = await self.store.get_run(legacy or stored.run_id) or stored
        target.run_id = existing.run_id
        target.supervised = existing.node_id is not None
        target.known = True

    async def _finish_runs(self, batch: Sequence[NewEvent]) -> list[RunRecord]:
        """Give external runs their final status from the batch's terminal events;
        returns the runs as they were, to undo this should the batch not be stored."""
        before: list[RunRecord] = []
        for event in batch:
            status = STATUS_OF_TERMINAL.get(event.type)
            if status is None:
                continue
            run = await self.store.get_run(event.run_id)
            if run is None or run.finished or run.node_id is not None:
                continue  # a supervised run's status is its supervisor's to record
            changes: dict[str, Any] = {"status": status, "finished_at": event.ts}
            if status == "completed":
                changes["result"] = event.data.get("result")
            elif status == "failed":
                changes["error"] = {
                    "code": str(event.data.get("code", "agent_error")),
                    "message": str(event.data.get("message", "")),
                }
            before.append(run)
            await self.store.update_run(run.run_id, **changes)
        return before


def _check_supervised(plan: list[_Planned]) -> None:
    """No terminal event for a run threadwire supervises: its supervisor writes that one.

    The other half of "exactly one terminal event per run", nothing after a run's end,
    is the store's, checked in the append's transaction (decision 0111)."""
    for index, (target, type_, _, _) in enumerate(plan):
        if target.supervised and type_ in TERMINAL_TYPES:
            raise IngestError(
                409,
                "run_supervised",
                f"run {target.run_id!r} is executed by threadwire, which writes its terminal event",
                index,
            )


class _KeyedLocks:
    """An asyncio lock per key, kept only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _check_request(events: object, key: object) -> None:
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise IngestError(
            422, "invalid_request", f"expected 1 to {MAX_BATCH} events in a list", None
        )
    if key is not None and not _is_key(key):
        raise IngestError(
            422,
            "invalid_request",
            f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters "
            "of UTF-8 text without NUL",
            None,
        )


def _is_key(key: object) -> bool:
    """An idempotency key every store can hold: SQLite and PostgreSQL take only UTF-8
    text (a lone surrogate cannot be encoded), and PostgreSQL no NUL character."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or "\0" in key:
        return False
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_shape(item: object, index: int) -> tuple[str, str, dict[str, Any], bytes, str | None]:
    """The run ID, type, data (and its JSON) and optional thread ID of one event,
    shape-checked."""
    if not isinstance(item, dict):
        raise IngestError(422, "invalid_event", "an event must be a JSON object", index)
    if "run_id" not in item:
        raise IngestError(422, "invalid_event", "run_id is required", index)
    raw = item["run_id"]
    type_ = item.get("type")
    if not is_valid_event_type(type_):
        raise IngestError(
            422,
            "invalid_event",
            f"type must be 1 to 64 characters of a-z 0-9 _ . : -, got {str(type_)[:80]!r}",
            index,
        )
    assert isinstance(type_, str)
    data = item.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IngestError(422, "invalid_event", "data must be a JSON object", index)
    data_json, fault = _encode_checked(data, MAX_JSON_DEPTH)
    if data_json is None:
        raise IngestError(422, "invalid_event", f"data {fault}", index)
    thread_hint = item.get("thread_id")
    if thread_hint is not None:
        try:
            thread_hint = validate_thread_id(thread_hint)
        except InvalidIdError as exc:
            raise _id_error(exc, index) from None
    if not isinstance(raw, str):
        try:
            parse_run_id(raw)
        except InvalidIdError as exc:
            raise _id_error(exc, index) from None
        raise IngestError(400, "empty", "run_id must be a string", index)
    return raw, type_, dict(data), data_json, thread_hint


def json_fault(value: object, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` cannot be stored and sent as wire JSON, or None when it can.

    Refused: nesting deeper than `max_depth`, NaN and Infinity (the JSON parser takes
    them, the wire codec and PostgreSQL do not), and text that is not UTF-8 (lone
    surrogates from `\\ud800` escapes). The depth is measured without recursion, so no
    input can exhaust the stack here.
    """
    return _encode_checked(value, max_depth)[1]


def _encode_checked(value: object, max_depth: int) -> tuple[bytes | None, str | None]:
    """`value` as wire JSON and None, or None and why it cannot be (see json_fault)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return None, f"is nested deeper than {max_depth} levels"
        stack.extend((child, depth + 1) for child in children)
    try:
        return dumps(value), None
    except (TypeError, ValueError):
        return None, "is not valid JSON (NaN, Infinity, or text that is not UTF-8)"


def _prefer(thread_id: str | None) -> Resolver | None:
    """A resolver that settles an ambiguous parse on `thread_id` when it is a candidate."""
    if thread_id is None:
        return None

    def pick(candidates: Sequence[str]) -> str | None:
        return thread_id if thread_id in candidates else None

    return pick


def _agree(hint: str | None, thread_id: str, raw: str, index: int) -> None:
    if hint is not None and hint != thread_id:
        raise IngestError(
            409,
            "thread_mismatch",
            f"run {raw[:80]!r} belongs to thread {thread_id[:80]!r}, not {hint[:80]!r}",
            index,
        )


def _id_error(exc: InvalidIdError, index: int) -> IngestError:
    status = 404 if exc.code == "unknown_run" else 400
    return IngestError(status, exc.code, str(exc), index)
