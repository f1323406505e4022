"""Writing a batch of appends in one transaction: seq assignment, idempotency, isolation.

Seqs come from `threads.last_seq`, read under a row lock (`SELECT ... FOR UPDATE` in
thread-ID order, so writers in several processes queue instead of deadlocking; on
SQLite `BEGIN IMMEDIATE` already serialises writers) and bumped in the transaction
that inserts the events: a seq is used exactly when its event commits, so no gap.

The functions are synchronous, on a plain SQLAlchemy `Connection`: the store runs a
whole batch as one call (on SQLite in its writer thread, on PostgreSQL through
`AsyncConnection.run_sync`) rather than one hand-off per statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, delete, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, StatementError

from threadwire.events import TERMINAL_TYPES, Event, NewEvent, utcnow
from threadwire.store import sqlite_batch
from threadwire.store.base import EventExists, NotFound, RunEnded
from threadwire.store.engine import json_dumps
from threadwire.store.groupcommit import AppendRequest
from threadwire.store.tables import events, idempotency_keys, runs, threads

Outcome = list[Event] | Exception

_MAX_PARAMS: Final = 900
"""Rows per IN list / VALUES statement, under SQLite's and asyncpg's parameter limits."""


@dataclass(slots=True)
class _Plan:
    """What the batch does for each request: write it, answer a stored key, or refuse."""

    write: list[int]
    replay: dict[int, tuple[str, str]]
    outcomes: dict[int, Outcome]
    data: dict[int, list[str]]
    """The JSON text of each event's data, per request (serialised once, to check it)."""


def write_batch(conn: Connection, batch: Sequence[AppendRequest]) -> list[Outcome]:
    """Commit `batch` in one transaction on `conn`; one outcome per request.

    When the database refuses the batch, each request is retried in a savepoint of its
    own, so only the culprit fails. A failed COMMIT raises: its outcome is unknown and
    nothing may be written twice.
    """
    written = False
    try:
        with conn.begin():
            outcomes = apply_batch(conn, batch)
            written = True
    except StatementError as exc:
        if written:
            raise
        if len(batch) == 1:
            return [translate(exc, batch[0])]
        return _write_one_by_one(conn, batch)
    return outcomes


def _write_one_by_one(conn: Connection, batch: Sequence[AppendRequest]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with conn.begin():
        for request in batch:
            try:
                with conn.begin_nested():
                    outcomes.extend(apply_batch(conn, [request]))
            except StatementError as exc:
                outcomes.append(translate(exc, request))
    return outcomes


def apply_batch(conn: Connection, batch: Sequence[AppendRequest]) -> list[Outcome]:
    """Write `batch` on `conn` (inside its transaction); one outcome per request.

    A request refused here (unknown thread, bad event, an event after its run's end)
    writes nothing and gets its exception as outcome; a retried key is answered before
    any of these rules; a database error raises, and the caller retries the requests
    one savepoint each so that only the culprit fails.
    """
    followers = _followers(batch)
    plan = _Plan(write=[], replay={}, outcomes={}, data={})
    claimed_ids: set[str] = set()
    for i, request in enumerate(batch):
        if i in followers:
            continue
        checked = _check(request, claimed_ids)
        if isinstance(checked, Exception):
            plan.outcomes[i] = checked
        else:
            plan.write.append(i)
            plan.data[i] = checked
            claimed_ids.update(e.event_id for e in request.events)

    # SQLite runs the hot statements on the driver's connection (sqlite_batch).
    db = sqlite_batch.driver(conn) if conn.dialect.name == "sqlite" else None
    last_seq = _lock_threads(conn, db, _thread_ids(batch[i] for i in plan.write))
    for i in list(plan.write):
        missing = next((e.thread_id for e in batch[i].events if e.thread_id not in last_seq), None)
        if missing is not None:
            plan.outcomes[i] = NotFound(missing)
            plan.write.remove(i)

    _claim_keys(conn, batch, plan)
    ended = _lock_runs(conn, db, sorted({e.run_id for i in plan.write for e in batch[i].events}))
    stored, data, refused = _assign_seqs(batch, plan, last_seq, ended)
    _write_events(conn, db, last_seq, stored, data)
    _mark_ended(conn, db, ended, stored)
    _refuse_after_end(conn, batch, plan, refused)
    _replay(conn, plan)

    results: list[Outcome] = []
    for i in range(len(batch)):
        results.append(plan.outcomes[followers.get(i, i)])
    return results


def translate(exc: Exception, request: AppendRequest) -> Exception:
    """The caller's view of a database error its own events caused."""
    if isinstance(exc, IntegrityError):
        ids = ", ".join(repr(e.event_id) for e in request.events[:5])
        return EventExists(f"an event ID of this append is already stored (among {ids})")
    return exc


def _followers(batch: Sequence[AppendRequest]) -> dict[int, int]:
    """Requests that repeat an earlier request's key in the same batch -> that request."""
    leaders: dict[tuple[str, str], int] = {}
    followers: dict[int, int] = {}
    for i, request in enumerate(batch):
        if request.key is None or not request.events:
            continue
        slot = (request.events[0].thread_id, request.key)
        if slot in leaders:
            followers[i] = leaders[slot]
        else:
            leaders[slot] = i
    return followers


def _check(request: AppendRequest, taken: set[str]) -> Exception | list[str]:
    """Refuse what the database would refuse, before it can fail the whole batch; else
    the JSON text of each event's data."""
    seen: set[str] = set()
    data: list[str] = []
    for new in request.events:
        if new.event_id in taken or new.event_id in seen:
            return EventExists(f"event ID {new.event_id!r} is used twice")
        seen.add(new.event_id)
        if not isinstance(new.ts, datetime) or new.ts.tzinfo is None:
            return ValueError(f"event {new.event_id!r}: ts must be an aware datetime")
        if new.data_json is not None:  # the producer's check made it: the same text
            data.append(new.data_json.decode())
            continue
        try:
            data.append(json_dumps(new.data))
        except (TypeError, ValueError) as exc:
            return ValueError(f"event {new.event_id!r}: data is not JSON: {exc}")
    return data


def _thread_ids(requests: Iterable[AppendRequest]) -> list[str]:
    return sorted({e.thread_id for r in requests for e in r.events})


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _MAX_PARAMS):
        yield items[start : start + _MAX_PARAMS]


def _lock_threads(
    conn: Connection, db: sqlite3.Connection | None, thread_ids: list[str]
) -> dict[str, int]:
    """Lock the threads' rows in ID order; returns their last_seq (missing: absent)."""
    if db is not None:
        return sqlite_batch.last_seqs(db, thread_ids)
    return _locked_values(conn, threads.c.thread_id, threads.c.last_seq, thread_ids)


def _lock_runs(
    conn: Connection, db: sqlite3.Connection | None, run_ids: list[str]
) -> dict[str, int | None]:
    """Lock the recorded runs' rows in ID order; returns their ended_seq (None: not
    ended). Runs not recorded are absent: the run-life rule applies to recorded runs.

    On PostgreSQL the lock (taken after the threads', in a fixed order, so no deadlock)
    makes the check and the marking of a run's end atomic even for appends that name
    the run under another thread; on SQLite `BEGIN IMMEDIATE` already does."""
    if db is not None:
        return sqlite_batch.run_ends(db, run_ids)
    return _locked_values(conn, runs.c.run_id, runs.c.ended_seq, run_ids)


def _locked_values(conn: Connection, key: Any, value: Any, keys: list[str]) -> dict[str, Any]:
    """`SELECT key, value ... WHERE key IN keys ORDER BY key FOR UPDATE`, in chunks."""
    found: dict[str, Any] = {}
    for chunk in _chunks(keys):
        rows = conn.execute(
            select(key, value).where(key.in_(chunk)).order_by(key).with_for_update()
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def _on_conflict_insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _claim_keys(conn: Connection, batch: Sequence[AppendRequest], plan: _Plan) -> None:
    """Insert the keys of requests about to write; a key already there means replay."""
    keyed = sorted(
        ((batch[i].events[0].thread_id, batch[i].key or "", i) for i in plan.write if batch[i].key),
    )
    if not keyed:
        return
    now = utcnow()
    claimed: set[tuple[str, str]] = set()
    insert_ = _on_conflict_insert(conn)
    for chunk in _chunks(keyed):
        statement = (
            insert_(idempotency_keys)
            .values(
                [
                    {
                        "thread_id": thread_id,
                        "key": key,
                        "event_ids": [e.event_id for e in batch[i].events],
                        "created_at": now,
                    }
                    for thread_id, key, i in chunk
                ]
            )
            .on_conflict_do_nothing(index_elements=["thread_id", "key"])
            .returning(idempotency_keys.c.thread_id, idempotency_keys.c.key)
        )
        claimed.update((row.thread_id, row.key) for row in conn.execute(statement))
    for thread_id, key, i in keyed:
        if (thread_id, key) not in claimed:
            plan.write.remove(i)
            plan.replay[i] = (thread_id, key)


_Refusal = tuple[str, int, int | None]
"""A request refused by the run-life rule: the run, the event's index, the run's ended_seq."""


def _assign_seqs(
    batch: Sequence[AppendRequest],
    plan: _Plan,
    last_seq: dict[str, int],
    ended: dict[str, int | None],
) -> tuple[list[Event], list[str], dict[int, _Refusal]]:
    """Give each written event its thread's next seq, in batch order (updates last_seq),
    and refuse requests that name a recorded run after its end (updates `ended` with the
    ends this batch writes). Returns the events to insert, their data's JSON texts, and
    the refused requests."""
    stored: list[Event] = []
    data: list[str] = []
    refused: dict[int, _Refusal] = {}
    for i in list(plan.write):
        refusal = _after_end(batch[i].events, ended)
        if refusal is not None:
            refused[i] = refusal
            plan.write.remove(i)
            continue
        mine: list[Event] = []
        for new in batch[i].events:
            last_seq[new.thread_id] += 1
            event = Event.stored(new, last_seq[new.thread_id])
            if new.type in TERMINAL_TYPES and new.run_id in ended:
                ended[new.run_id] = event.seq
            mine.append(event)
        plan.outcomes[i] = mine
        stored.extend(mine)
        data.extend(plan.data[i])
    return stored, data, refused


def _after_end(new_events: Sequence[NewEvent], ended: dict[str, int | None]) -> _Refusal | None:
    """The first event of a request that follows its (recorded) run's end, if any."""
    ending: set[str] = set()
    for index, new in enumerate(new_events):
        if new.run_id not in ended:
            continue
        if new.run_id in ending:
            return new.run_id, index, None
        seq = ended[new.run_id]
        if seq is not None:
            return new.run_id, index, seq
        if new.type in TERMINAL_TYPES:
            ending.add(new.run_id)
    return None


def _refuse_after_end(
    conn: Connection,
    batch: Sequence[AppendRequest],
    plan: _Plan,
    refused: dict[int, _Refusal],
) -> None:
    """Answer the refused requests with RunEnded and release the keys they claimed."""
    if not refused:
        return
    keys = [
        {"b_thread": batch[i].events[0].thread_id, "b_key": batch[i].key}
        for i in refused
        if batch[i].key
    ]
    if keys:
        conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.thread_id == bindparam("b_thread"),
                idempotency_keys.c.key == bindparam("b_key"),
            ),
            keys,
        )
    terminals = _terminals(conn, batch, refused)
    for i, (run_id, index, seq) in refused.items():
        plan.outcomes[i] = RunEnded(run_id, index, terminals.get((run_id, seq)))


def _terminals(
    conn: Connection, batch: Sequence[AppendRequest], refused: dict[int, _Refusal]
) -> dict[tuple[str, int | None], Event]:
    """The terminal events the refusals point at, by (run, seq): stored before, or by
    this batch (read after its inserts; a refusal is rare, so a read of its own is fine)."""
    found: dict[tuple[str, int | None], Event] = {}
    for i, (run_id, _, seq) in refused.items():
        if not seq or (run_id, seq) in found:
            continue
        thread_id = batch[i].events[0].thread_id
        for new in batch[i].events:
            if new.run_id == run_id:
                thread_id = new.thread_id
                break
        row = conn.execute(
            select(events).where(
                events.c.run_id == run_id,
                events.c.seq == seq,
                events.c.thread_id == thread_id,
            )
        ).first()
        if row is not None:
            found[(run_id, seq)] = event_from_row(row)
    return found


def _mark_ended(
    conn: Connection,
    db: sqlite3.Connection | None,
    ended: dict[str, int | None],
    stored: list[Event],
) -> None:
    """Record the end of each recorded run whose terminal event this batch writes."""
    ends = [
        (e.run_id, e.seq)
        for e in stored
        if e.type in TERMINAL_TYPES and ended.get(e.run_id) == e.seq
    ]
    if not ends:
        return
    if db is not None:
        sqlite_batch.mark_ended(db, ends)
        return
    conn.execute(
        update(runs)
        .where(runs.c.run_id == bindparam("b_run"))
        .values(ended_seq=bindparam("b_seq")),
        [{"b_run": run_id, "b_seq": seq} for run_id, seq in ends],
    )


def _write_events(
    conn: Connection,
    db: sqlite3.Connection | None,
    last_seq: dict[str, int],
    stored: list[Event],
    data: list[str],
) -> None:
    if not stored:
        return
    if db is not None:
        sqlite_batch.write_events(db, last_seq, stored, data)
        return
    touched = sorted({e.thread_id for e in stored})
    conn.execute(
        update(threads)
        .where(threads.c.thread_id == bindparam("b_thread"))
        .values(last_seq=bindparam("b_last")),
        [{"b_thread": t, "b_last": last_seq[t]} for t in touched],
    )
    conn.execute(
        insert(events),
        [
            {
                "thread_id": e.thread_id,
                "seq": e.seq,
                "event_id": e.event_id,
                "run_id": e.run_id,
                "type": e.type,
                "ts": e.ts,
                "data": e.data,
            }
            for e in stored
        ],
    )


def _replay(conn: Connection, plan: _Plan) -> None:
    """Answer retried keys with the events stored the first time."""
    if not plan.replay:
        return
    slots = sorted(set(plan.replay.values()))
    ids_of: dict[tuple[str, str], list[str]] = {}
    for chunk in _chunks(slots):
        rows = conn.execute(
            select(idempotency_keys).where(
                tuple_(idempotency_keys.c.thread_id, idempotency_keys.c.key).in_(chunk)
            )
        )
        ids_of.update({(r.thread_id, r.key): list(r.event_ids) for r in rows})
    wanted = sorted({eid for ids in ids_of.values() for eid in ids})
    found: dict[str, Event] = {}
    for chunk in _chunks(wanted):
        rows = conn.execute(select(events).where(events.c.event_id.in_(chunk)))
        found.update({r.event_id: event_from_row(r) for r in rows})
    for i, slot in plan.replay.items():
        plan.outcomes[i] = [found[eid] for eid in ids_of.get(slot, []) if eid in found]


def event_from_row(row: Row[Any]) -> Event:
    """An Event from a row of the events table."""
    return Event(row.event_id, row.thread_id, row.run_id, row.seq, row.type, row.ts, row.data)
