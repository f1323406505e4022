"""Store throughput: group commit against one transaction per event, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_store.py [--events 4000] [--writers 64]

Many concurrent writers append one event per call (the shape of agents streaming
tokens); the same workload runs with group commit, with a single writer that commits
every event on its own, and with every caller opening its own transaction. Then a
resume replays 10,000 stored events in pages. PostgreSQL comes from
THREADWIRE_TEST_POSTGRES_URL (`bash scripts/services.sh up`); a fresh database is
made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event

from threadwire import ids
from threadwire.events import NewEvent, utcnow
from threadwire.store.sql import SqlStore

THREADS = 8
REPLAY_EVENTS = 10_000
MODES: dict[str, dict[str, Any]] = {
    "txn per event, callers' own": {"group_commit": False},
    "txn per event, one writer": {"max_batch_events": 1},
    "group commit": {},
}
PER_EVENT_SHARE = 4
"""Per-event modes append a quarter as many events: a rate, at a quarter of the wait."""


@dataclass
class AppendResult:
    backend: str
    mode: str
    events: int
    seconds: float
    transactions: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class ReplayResult:
    backend: str
    seconds: float

    @property
    def rate(self) -> float:
        return REPLAY_EVENTS / self.seconds


def _event(thread_id: str, run_id: str, i: int) -> NewEvent:
    data = {"text": f"token {i}", "index": i}
    return NewEvent(ids.new_event_id(), thread_id, run_id, "agent_message", utcnow(), data)


async def _appends(url: str, backend: str, mode: str, events: int, writers: int) -> AppendResult:
    store = SqlStore(url, **MODES[mode])
    await store.open()
    try:
        threads = [f"bench-{secrets.token_hex(4)}-{i}" for i in range(THREADS)]
        for thread_id in threads:
            await store.create_thread(thread_id, "bench")
        runs = [ids.new_run_id(t) for t in threads]
        commits = [0]

        def count(_conn: Any) -> None:
            commits[0] += 1

        event.listen(store.write_engine, "commit", count)
        per_writer = events // writers

        async def writer(w: int) -> None:
            thread_id, run_id = threads[w % THREADS], runs[w % THREADS]
            for i in range(per_writer):
                await store.append([_event(thread_id, run_id, i)])

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        seconds = time.perf_counter() - start
        event.remove(store.write_engine, "commit", count)
        for thread_id in threads:
            assert await store.head_seq(thread_id) == per_writer * (writers // THREADS)
        return AppendResult(backend, mode, per_writer * writers, seconds, commits[0])
    finally:
        await store.close()


async def _replay(url: str, backend: str) -> ReplayResult:
    store = SqlStore(url)
    await store.open()
    try:
        thread_id = f"replay-{secrets.token_hex(4)}"
        await store.create_thread(thread_id, "bench")
        run_id = ids.new_run_id(thread_id)
        for start in range(0, REPLAY_EVENTS, 500):
            await store.append([_event(thread_id, run_id, start + i) for i in range(500)])
        begin = time.perf_counter()
        after, seen = 0, 0
        while page := await store.read_events(thread_id, after_seq=after, limit=1000):
            seen += len(page)
            after = page[-1].seq
        seconds = time.perf_counter() - begin
        assert seen == REPLAY_EVENTS
        return ReplayResult(backend, seconds)
    finally:
        await store.close()


@asynccontextmanager
async def _postgres(admin_url: str) -> AsyncIterator[str]:
    import asyncpg

    plain = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(plain, timeout=5)
    name = f"tw_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def report(appends: list[AppendResult], replays: list[ReplayResult], writers: int) -> str:
    """Markdown tables: appends/s per mode with the ratio to group commit, then replay."""
    rows = []
    for result in appends:
        best = next(
            r.rate for r in appends if r.backend == result.backend and r.mode == "group commit"
        )
        rows.append(
            [
                result.backend,
                result.mode,
                f"{result.rate:,.0f}",
                f"{result.transactions:,}",
                f"{result.events / max(result.transactions, 1):.1f}",
                f"{best / result.rate:.1f}x" if result.mode != "group commit" else "1.0x",
            ]
        )
    header = ["backend", "mode", "appends/s", "transactions", "events/txn", "group commit is"]
    replay_rows = [[r.backend, f"{r.seconds * 1000:,.0f} ms", f"{r.rate:,.0f}"] for r in replays]
    return (
        f"Appends: {writers} concurrent writers, one event per append, {THREADS} threads\n\n"
        + _table(rows, header)
        + f"\n\nReplay: {REPLAY_EVENTS:,} events of one thread, pages of 1000\n\n"
        + _table(replay_rows, ["backend", "time", "events/s"])
    )


async def _backend(
    url: str, backend: str, events: int, writers: int, rounds: int
) -> tuple[list[AppendResult], ReplayResult]:
    """Best of `rounds` for every mode (rounds interleaved, so drift hits all alike)."""
    best: dict[str, AppendResult] = {}
    replay: ReplayResult | None = None
    for _ in range(rounds):
        for mode in MODES:
            n = events if mode == "group commit" else events // PER_EVENT_SHARE
            result = await _appends(url, backend, mode, n, writers)
            if mode not in best or result.rate > best[mode].rate:
                best[mode] = result
        result_replay = await _replay(url, backend)
        if replay is None or result_replay.seconds < replay.seconds:
            replay = result_replay
    assert replay is not None
    return list(best.values()), replay


async def main(events: int, writers: int, rounds: int, postgres_url: str | None) -> None:
    """Run every backend and mode, then print the tables."""
    appends: list[AppendResult] = []
    replays: list[ReplayResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        found, replay = await _backend(sqlite_url, "sqlite", events, writers, rounds)
        appends += found
        replays.append(replay)
    if postgres_url:
        async with _postgres(postgres_url) as url:
            found, replay = await _backend(url, "postgresql", events, writers, rounds)
            appends += found
            replays.append(replay)
    else:
        print("PostgreSQL skipped: set THREADWIRE_TEST_POSTGRES_URL (scripts/services.sh up)\n")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"best of {rounds} rounds\n")
    print(report(appends, replays, writers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="appends with group commit")
    parser.add_argument("--writers", type=int, default=64, help="concurrent writer tasks")
    parser.add_argument("--rounds", type=int, default=3, help="repeat and keep the best")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("THREADWIRE_TEST_POSTGRES_URL"), help="admin URL"
    )
    args = parser.parse_args()
    if args.writers % THREADS:
        parser.error(f"--writers must be a multiple of {THREADS}")
    asyncio.run(main(args.events, args.writers, args.rounds, args.postgres_url))
