"""The sink never blocks or fails the event path: it batches, buffers through an
outage, drops (counted) only when its buffer is full, a batch is refused, or close()
runs out of time; and it names the agent of every run."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from tests.traces.conftest import make_target

from threadwire.events import Event, utcnow
from threadwire.store.base import RunRecord
from threadwire.traces import create_trace_sink
from threadwire.traces.metrics import (
    TRACE_BUFFERED_EVENTS,
    TRACE_EVENTS_DROPPED_TOTAL,
    TRACE_EVENTS_WRITTEN_TOTAL,
)
from threadwire.traces.sink import TraceSink
from threadwire.traces.target import Row, TraceTarget, TraceTargetError


def dropped(reason: str) -> float:
    """The process-wide drop counter for `reason`."""
    value = REGISTRY.get_sample_value(TRACE_EVENTS_DROPPED_TOTAL, {"reason": reason})
    return value or 0.0


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def run_events(run_n: int, count: int, *, agent: str | None = "demo") -> list[Event]:
    """`count` events of one run: queued, started, messages (the last is terminal)."""
    t0 = utcnow()
    thread = f"th{run_n}"
    run_id = f"thread_{thread}_run_1764000000000_{run_n:08x}"
    named: dict[str, Any] = {"agent": agent} if agent else {}
    out = []
    for seq in range(1, count + 1):
        data: dict[str, Any]
        if seq == 1:
            type_, data = "run_queued", named
        elif seq == 2:
            type_, data = "agent_started", named
        elif seq == count:
            type_, data = "agent_completed", {"result": None}
        else:
            type_, data = "agent_message", {"text": "x"}
        ts = t0 + timedelta(milliseconds=seq)
        out.append(Event(f"evt_{run_n}_{seq}", thread, run_id, seq, type_, ts, data))
    return out


class Switchable:
    """A real target behind a switch: `down` fails every call (an outage); `refuse`
    fails inserts while pings answer (the target rejects the data)."""

    def __init__(self, inner: TraceTarget) -> None:
        self.inner = inner
        self.url = inner.url
        self.database = inner.database
        self.down = False
        self.refuse = False
        self.failures = 0
        self.failed = asyncio.Event()

    def _fail(self, what: str) -> None:
        self.failures += 1
        self.failed.set()
        raise TraceTargetError(f"{what}: connection refused (test outage)")

    async def open(self) -> None:
        if self.down:
            self._fail("open")
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        if self.down:
            self._fail("ping")
        await self.inner.ping()

    async def insert(
        self, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Row]
    ) -> None:
        if self.down or self.refuse:
            self._fail("insert")
        await self.inner.insert(table, columns, types, rows)

    async def query(
        self, sql: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return await self.inner.query(sql, params)


class Hung:
    """A target whose inserts never return (a server that accepts and stalls)."""

    url = "hung://"
    database = "hung"

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def insert(
        self, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Row]
    ) -> None:
        self.entered.set()
        await asyncio.Event().wait()

    async def query(
        self, sql: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return []


async def count_events(target: TraceTarget) -> int:
    rows = await target.query(f"SELECT count() AS n FROM `{target.database}`.events FINAL")
    return int(rows[0]["n"])


@pytest.fixture
async def switchable(chdb_path: Path) -> Any:
    target = Switchable(make_target("chdb", chdb_path, f"tw_{secrets.token_hex(6)}"))
    yield target
    await target.inner.close()


async def test_a_hung_target_never_blocks_submit_and_overflow_is_dropped_and_counted() -> None:
    target = Hung()
    sink = TraceSink(target, max_buffer=100, batch_size=10, flush_interval=0.01)
    before_full, before_shutdown = dropped("buffer_full"), dropped("shutdown")
    gauge = metric(TRACE_BUFFERED_EVENTS)
    await sink.start()
    events = [e for n in range(25) for e in run_events(n, 10)]
    sink.submit(events[:10])
    await target.entered.wait()  # the writer is stuck inside an insert
    for i in range(10, len(events), 7):
        sink.submit(events[i : i + 7])  # returns at once, whatever the target does
    assert sink.buffered == 100
    assert sink.dropped == 150 and dropped("buffer_full") - before_full == 150
    assert metric(TRACE_BUFFERED_EVENTS) - gauge == 100
    await sink.close(grace=0.05)
    assert dropped("shutdown") - before_shutdown == 100
    assert sink.buffered == 0 and metric(TRACE_BUFFERED_EVENTS) == gauge


async def test_an_outage_is_buffered_and_everything_arrives_after_recovery(
    switchable: Switchable,
) -> None:
    switchable.down = True
    sink = TraceSink(switchable, batch_size=50, flush_interval=0.01, retry_initial=0.005,
                     retry_max=0.02)
    written = metric(TRACE_EVENTS_WRITTEN_TOTAL)
    await sink.start()
    events = [e for n in range(30) for e in run_events(n, 12)]
    sink.submit(events[:100])
    await switchable.failed.wait()
    sink.submit(events[100:])  # more traffic during the outage
    assert sink.dropped == 0 and sink.written == 0
    switchable.down = False
    async with asyncio.timeout(30):
        await sink.flush()
    assert sink.written == len(events) and sink.dropped == 0
    assert metric(TRACE_EVENTS_WRITTEN_TOTAL) - written == len(events)
    assert await count_events(switchable) == len(events)
    await sink.close()


async def test_an_outage_longer_than_the_buffer_drops_the_excess_and_keeps_the_rest(
    switchable: Switchable,
) -> None:
    switchable.down = True
    sink = TraceSink(switchable, max_buffer=200, batch_size=50, flush_interval=0.01,
                     retry_initial=0.005, retry_max=0.02)
    before = dropped("buffer_full")
    await sink.start()
    events = [e for n in range(50) for e in run_events(n, 10)]
    sink.submit(events[:50])
    await switchable.failed.wait()
    for i in range(50, len(events), 10):
        sink.submit(events[i : i + 10])
    assert sink.dropped == 300 and dropped("buffer_full") - before == 300
    switchable.down = False
    async with asyncio.timeout(30):
        await sink.flush()
    assert sink.written == 200
    assert await count_events(switchable) == 200
    await sink.close()


async def test_a_batch_the_target_keeps_refusing_is_dropped_and_the_sink_goes_on(
    switchable: Switchable,
) -> None:
    sink = TraceSink(switchable, batch_size=1000, flush_interval=0.01, retry_initial=0.001)
    before = dropped("rejected")
    await sink.start()
    sink.submit(run_events(1, 5))
    await sink.flush()
    switchable.refuse = True
    sink.submit(run_events(2, 40))
    async with asyncio.timeout(30):
        await sink.flush()
    assert sink.dropped == 40 and dropped("rejected") - before == 40
    assert switchable.failures == 3  # MAX_REFUSALS attempts, then dropped
    switchable.refuse = False
    sink.submit(run_events(3, 10))
    async with asyncio.timeout(30):
        await sink.flush()
    assert sink.written == 15 and await count_events(switchable) == 15
    await sink.close()


async def test_close_writes_what_is_still_buffered(chdb_url: str) -> None:
    sink = create_trace_sink(chdb_url, flush_interval=60.0)
    await sink.start()
    sink.submit(run_events(1, 25))
    await sink.close()
    assert sink.written == 25 and sink.dropped == 0
    check = make_target("chdb", Path(chdb_url[len("chdb://") :].split("?")[0]),
                        chdb_url.rsplit("=", 1)[1])
    await check.open()
    try:
        assert await count_events(check) == 25
    finally:
        await check.close()


async def test_submit_after_close_is_counted_not_raised(chdb_url: str) -> None:
    sink = create_trace_sink(chdb_url)
    await sink.start()
    await sink.close()
    before = dropped("shutdown")
    sink.submit(run_events(1, 3))
    assert dropped("shutdown") - before == 3


async def test_the_agent_of_a_run_met_midway_comes_from_the_lookup(switchable: Switchable) -> None:
    asked: list[str] = []
    midway = run_events(7, 6)[2:]  # the sink missed run_queued and agent_started

    async def lookup(run_id: str) -> RunRecord | None:
        asked.append(run_id)
        return RunRecord(run_id, "th7", "looked_up", "running", created_at=midway[0].ts)

    sink = TraceSink(switchable, lookup_run=lookup, flush_interval=0.01)
    await sink.start()
    sink.submit(midway)
    await sink.flush()
    told = run_events(8, 6, agent=None)
    sink.submit_run(RunRecord(told[0].run_id, "th8", "told", "queued", created_at=told[0].ts))
    sink.submit(told)
    await sink.flush()
    await sink.close()
    assert asked == [midway[0].run_id]  # run 8 needed no lookup: submit_run named it
    await switchable.inner.open()
    rows = await switchable.query(
        f"SELECT DISTINCT run_id, agent FROM `{switchable.database}`.events ORDER BY run_id"
    )
    assert {r["agent"] for r in rows} == {"looked_up", "told"}
    runs = await switchable.query(
        f"SELECT agent, started_at, duration_ms FROM `{switchable.database}`.runs ORDER BY agent"
    )
    # run 7's start comes from its record (not its events); run 8's from agent_started
    assert [r["agent"] for r in runs] == ["looked_up", "told"]
    assert runs[0]["started_at"] is None  # the record had no started_at
    assert runs[1]["duration_ms"] == pytest.approx(4.0)


def test_a_sink_refuses_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="max_buffer and batch_size must be >= 1, got 0"):
        TraceSink(Hung(), max_buffer=0)


async def test_flush_before_start_is_an_error_not_a_hang() -> None:
    sink = TraceSink(Hung())
    await sink.flush()  # nothing submitted: nothing to wait for
    sink.submit(run_events(1, 3))
    with pytest.raises(RuntimeError, match="await start"):
        await sink.flush()


async def test_rows_and_insert_encoding_run_off_the_event_loop_thread(
    chdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from threadwire.traces import embedded
    from threadwire.traces.rows import RunTracker

    threads: dict[str, set[int]] = {"rows": set(), "encode": set()}
    encode, rows = embedded.insert_statement, RunTracker.rows

    def spy_encode(*args: Any) -> str:
        threads["encode"].add(threading.get_ident())
        return encode(*args)

    def spy_rows(self: RunTracker, events: Any) -> Any:
        threads["rows"].add(threading.get_ident())
        return rows(self, events)

    monkeypatch.setattr(embedded, "insert_statement", spy_encode)
    monkeypatch.setattr(RunTracker, "rows", spy_rows)
    sink = create_trace_sink(chdb_url)
    await sink.start()
    sink.submit(run_events(1, 20))
    await sink.flush()
    await sink.close()
    loop_thread = threading.get_ident()
    assert threads["rows"] and threads["encode"]
    assert loop_thread not in threads["rows"] | threads["encode"]
