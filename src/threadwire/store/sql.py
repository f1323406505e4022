"""SqlStore: the Store on SQLite (embedded default) or PostgreSQL, through SQLAlchemy.

Appends go through group commit (one writer task, few transactions); everything else
is a short transaction of its own. The schema is Alembic's (`store.schema`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Select, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from threadwire.events import Event, NewEvent, utcnow
from threadwire.ids import InvalidIdError, is_valid_thread_id, parse_run_id
from threadwire.store import appends, resolve, retention, schema
from threadwire.store.base import (
    MAX_PAGE,
    EventsGone,
    InvalidCursor,
    NotFound,
    Page,
    PruneResult,
    RunExists,
    RunRecord,
    StoreError,
    ThreadExists,
    ThreadRecord,
)
from threadwire.store.engine import create_engine, read_transaction, write_transaction
from threadwire.store.groupcommit import DEFAULT_MAX_BATCH_EVENTS, AppendRequest, GroupCommitter
from threadwire.store.tables import (
    UNFINISHED,
    events,
    id_aliases,
    idempotency_keys,
    runs,
    threads,
)
from threadwire.store.writer import SqliteWriter

_RUN_CHANGES: Final = frozenset(
    {"agent", "status", "input", "owner", "started_at", "finished_at", "result", "error", "node_id"}
)


class SqlStore:
    """A Store on a SQL database; `sqlite:///` and `postgresql://` URLs pick it.

    `group_commit=False` gives every append its own transaction (benchmarks compare);
    `migrate` overrides the per-backend schema policy of `store.schema.ensure_schema`.
    """

    def __init__(
        self,
        url: str,
        *,
        group_commit: bool = True,
        migrate: bool | None = None,
        max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
        **engine_options: Any,
    ) -> None:
        self.url = url
        self._group_commit = group_commit
        self._migrate = migrate
        self._max_batch_events = max_batch_events
        self._engine_options = engine_options
        self._engine: AsyncEngine | None = None
        self._committer: GroupCommitter | None = None
        self._writer: SqliteWriter | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The open engine (for tools and tests that need SQL of their own)."""
        if self._engine is None:
            raise StoreError(f"store {self.url!r} is not open: await store.open() first")
        return self._engine

    @property
    def write_engine(self) -> Engine:
        """The engine that commits appends: the writer's on SQLite, else `engine`'s."""
        if self._writer is not None:
            return self._writer.engine
        return self.engine.sync_engine

    async def open(self) -> None:
        """Connect and bring the schema up to date (SQLite) or check it (PostgreSQL)."""
        if self._engine is not None:
            return
        engine = create_engine(self.url, **self._engine_options)
        try:
            await schema.ensure_schema(engine, migrate=self._migrate)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        if engine.dialect.name == "sqlite":
            self._writer = SqliteWriter(self.url)
        self._committer = GroupCommitter(
            self._flush, enabled=self._group_commit, max_batch_events=self._max_batch_events
        )
        self._committer.start()

    async def close(self) -> None:
        """Commit queued appends, then release every connection."""
        if self._committer is not None:
            await self._committer.close()
            self._committer = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # threads

    async def create_thread(
        self, thread_id: str, owner: str, metadata: dict[str, Any] | None = None
    ) -> ThreadRecord:
        record = ThreadRecord(thread_id, owner, utcnow(), dict(metadata or {}))
        next_pos = (
            select(func.coalesce(func.max(threads.c.pos), 0) + 1)
            .where(threads.c.owner == owner)
            .scalar_subquery()
        )
        try:
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    insert(threads).values(
                        thread_id=thread_id,
                        owner=owner,
                        created_at=record.created_at,
                        metadata=record.metadata,
                        last_seq=0,
                        low_seq=0,
                        pos=next_pos,
                    )
                )
        except IntegrityError as exc:
            raise ThreadExists(thread_id) from exc
        return record

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(threads).where(threads.c.thread_id == thread_id))
            ).first()
        return _thread(row) if row else None

    async def list_threads(
        self, owner: str, *, limit: int = 50, before: str | None = None
    ) -> Page[ThreadRecord]:
        query = select(threads).where(threads.c.owner == owner)
        return await self._newest_first(
            query, threads.c.pos, threads.c.thread_id, is_valid_thread_id, _thread, limit, before
        )

    # runs

    async def create_run(self, run: RunRecord) -> RunRecord:
        async with write_transaction(self.engine) as conn:
            await self._require_thread(conn, run.thread_id)
            try:
                await conn.execute(_insert_run(run))
            except IntegrityError as exc:
                raise RunExists(f"run {run.run_id!r} exists") from exc
        return run

    async def ensure_run(self, run: RunRecord, *, legacy_id: str | None = None) -> RunRecord:
        async with write_transaction(self.engine) as conn:
            stored = await _get_run(conn, run.run_id)
            if stored is None:
                await self._require_thread(conn, run.thread_id)
                insert_ = _upsert(conn)
                await conn.execute(_insert_run(run, insert_).on_conflict_do_nothing())
                stored = await _get_run(conn, run.run_id)
                assert stored is not None
            if legacy_id is not None and legacy_id != run.run_id:
                await self._insert_alias(conn, legacy_id, stored.run_id, stored.thread_id)
        return stored

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with read_transaction(self.engine) as conn:
            run = await _get_run(conn, run_id)
            if run is not None:
                return run
            alias = await _alias(conn, run_id)
            return await _get_run(conn, alias[0]) if alias else None

    async def list_runs(
        self, thread_id: str, *, limit: int = 50, before: str | None = None
    ) -> Page[RunRecord]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        return await self._newest_first(
            query, runs.c.pos, runs.c.run_id, _is_canonical_run_id, _run, limit, before
        )

    async def _newest_first(
        self,
        query: Select[Any],
        pos: ColumnElement[int],
        key: ColumnElement[str],
        key_ok: Callable[[str], bool],
        record: Callable[[Row[Any]], _R],
        limit: int,
        before: str | None,
    ) -> Page[_R]:
        """One page of `query` by (pos, key) descending, after the cursor `before`."""
        if before is not None:
            query = query.where(tuple_(pos, key) < tuple_(*_decode_cursor(before, key_ok)))
        limit = _clamp(limit)
        query = query.order_by(pos.desc(), key.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return Page(
            [record(r) for r in rows[:limit]],
            _encode_cursor(last._mapping[pos], last._mapping[key]) if last is not None else None,
        )

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        unknown = set(changes) - _RUN_CHANGES
        if unknown:
            raise TypeError(f"update_run cannot change {sorted(unknown)}")
        async with write_transaction(self.engine) as conn:
            if changes:
                try:
                    row = (
                        await conn.execute(
                            update(runs)
                            .where(runs.c.run_id == run_id)
                            .values(**changes)
                            .returning(*runs.c)
                        )
                    ).first()
                except IntegrityError as exc:
                    raise ValueError(f"bad change to run {run_id!r}: {changes!r}") from exc
                run = _run(row) if row else None
            else:
                run = await _get_run(conn, run_id)
        if run is None:
            raise NotFound(run_id)
        return run

    async def list_unfinished_runs(self, *, node_id: str | None = None) -> list[RunRecord]:
        query = select(runs).where(runs.c.status.in_(UNFINISHED))
        if node_id is not None:
            query = query.where(runs.c.node_id == node_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(runs.c.created_at, runs.c.run_id))
            return [_run(r) for r in rows]

    # events

    async def append(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        if not events:
            return []
        if self._committer is None:
            raise StoreError(f"store {self.url!r} is not open: await store.open() first")
        return await self._committer.submit(list(events), idempotency_key)

    async def idempotent_events(self, thread_id: str, key: str) -> list[Event] | None:
        async with self.engine.connect() as conn:
            ids = await conn.scalar(
                select(idempotency_keys.c.event_ids).where(
                    idempotency_keys.c.thread_id == thread_id, idempotency_keys.c.key == key
                )
            )
            if ids is None:
                return None
            rows = await conn.execute(select(events).where(events.c.event_id.in_(list(ids))))
            found = {r.event_id: appends.event_from_row(r) for r in rows}
        return [found[eid] for eid in ids if eid in found]

    async def _flush(self, batch: list[AppendRequest]) -> None:
        """Commit `batch` in one transaction (one call, not one hand-off per statement)."""
        if self._writer is not None:
            outcomes = await self._writer.write(batch)
        else:
            async with self.engine.connect() as conn:
                outcomes = await conn.run_sync(appends.write_batch, batch)
        for request, outcome in zip(batch, outcomes, strict=True):
            request.settle(outcome)

    async def read_events(
        self, thread_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[Event]:
        limit = max(0, min(limit, MAX_PAGE))
        async with read_transaction(self.engine) as conn:
            rows = await conn.execute(
                select(events)
                .where(events.c.thread_id == thread_id, events.c.seq > after_seq)
                .order_by(events.c.seq)
                .limit(limit)
            )
            page = [appends.event_from_row(r) for r in rows]
            # Read the mark after the events: a prune committed in between is seen here.
            low = (
                await conn.execute(
                    select(threads.c.low_seq).where(threads.c.thread_id == thread_id)
                )
            ).scalar()
        if low is not None and after_seq < low:
            raise EventsGone(thread_id, low + 1)
        return page

    async def head_seq(self, thread_id: str) -> int:
        async with self.engine.connect() as conn:
            last = (
                await conn.execute(
                    select(threads.c.last_seq).where(threads.c.thread_id == thread_id)
                )
            ).scalar()
        return int(last or 0)

    async def prune(self, older_than: timedelta, *, batch_size: int = 1000) -> PruneResult:
        return await retention.prune(self.engine, older_than, batch_size=batch_size)

    # ids

    async def resolve_thread(self, run_id: str) -> str:
        async with self.engine.connect() as conn:

            async def alias(legacy_id: str) -> tuple[str, str] | None:
                return await _alias(conn, legacy_id)

            async def existing(candidates: Sequence[str]) -> set[str]:
                rows = await conn.execute(
                    select(threads.c.thread_id).where(threads.c.thread_id.in_(list(candidates)))
                )
                return set(rows.scalars())

            async def run_thread(canonical: str) -> str | None:
                return (
                    await conn.execute(select(runs.c.thread_id).where(runs.c.run_id == canonical))
                ).scalar()

            return await resolve.resolve_thread(
                run_id, alias=alias, existing_threads=existing, run_thread=run_thread
            )

    async def canonical_run_id(self, run_id: str) -> str | None:
        run = await self.get_run(run_id)
        return run.run_id if run else None

    async def add_alias(self, legacy_id: str, run_id: str, thread_id: str) -> None:
        async with write_transaction(self.engine) as conn:
            await self._insert_alias(conn, legacy_id, run_id, thread_id)

    @staticmethod
    async def _insert_alias(
        conn: AsyncConnection, legacy_id: str, run_id: str, thread_id: str
    ) -> None:
        await conn.execute(
            _upsert(conn)(id_aliases)
            .values(legacy_id=legacy_id, run_id=run_id, thread_id=thread_id, migrated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["legacy_id"])
        )

    @staticmethod
    async def _require_thread(conn: AsyncConnection, thread_id: str) -> None:
        found = await conn.execute(
            select(threads.c.thread_id).where(threads.c.thread_id == thread_id)
        )
        if found.first() is None:
            raise NotFound(thread_id)


def _upsert(conn: AsyncConnection) -> Any:
    """The dialect's INSERT that knows ON CONFLICT DO NOTHING."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _insert_run(run: RunRecord, insert_: Any = insert) -> Any:
    next_pos = (
        select(func.coalesce(func.max(runs.c.pos), 0) + 1)
        .where(runs.c.thread_id == run.thread_id)
        .scalar_subquery()
    )
    return insert_(runs).values(
        run_id=run.run_id,
        thread_id=run.thread_id,
        agent=run.agent,
        status=run.status,
        input=run.input,
        result=run.result,
        error=run.error,
        owner=run.owner,
        node_id=run.node_id,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        pos=next_pos,
    )


async def _get_run(conn: AsyncConnection, run_id: str) -> RunRecord | None:
    row = (await conn.execute(select(runs).where(runs.c.run_id == run_id))).first()
    return _run(row) if row else None


async def _alias(conn: AsyncConnection, legacy_id: str) -> tuple[str, str] | None:
    row = (
        await conn.execute(
            select(id_aliases.c.run_id, id_aliases.c.thread_id).where(
                id_aliases.c.legacy_id == legacy_id
            )
        )
    ).first()
    return (row.run_id, row.thread_id) if row else None


def _thread(row: Row[Any]) -> ThreadRecord:
    return ThreadRecord(
        row.thread_id,
        row.owner,
        row.created_at,
        dict(row.metadata),
        head_seq=row.last_seq,
        low_seq=row.low_seq,
    )


def _run(row: Row[Any]) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        thread_id=row.thread_id,
        agent=row.agent,
        status=row.status,
        created_at=row.created_at,
        input=dict(row.input),
        owner=row.owner,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=row.result,
        error=row.error,
        node_id=row.node_id,
    )


def _clamp(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


_MAX_BIGINT = 2**63 - 1
_R = TypeVar("_R")


def _is_canonical_run_id(key: str) -> bool:
    try:
        return parse_run_id(key).is_canonical
    except InvalidIdError:
        return False


def _encode_cursor(pos: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{pos}:{key}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, key_ok: Callable[[str], bool]) -> tuple[int, str]:
    """(pos, ID) of a cursor `_encode_cursor` made; InvalidCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        pos_text, key = raw.split(":", 1)
        pos = int(pos_text)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursor(f"unknown cursor {str(cursor)[:80]!r}") from exc
    # A forged cursor must not reach the database with a number it cannot bind or a
    # key it rejects (NUL on PostgreSQL): both were 500s.
    if not 0 <= pos <= _MAX_BIGINT or not key_ok(key):
        raise InvalidCursor(f"unknown cursor {str(cursor)[:80]!r}")
    return pos, key
