"""Cluster mode: deliveries per second with one node and with two, on the same workload.

    .venv/bin/python benchmarks/bench_cluster.py [--threads 20] [--subscribers 4]
        [--steps 20] [--warmup 3] [--window 10] [--postgres-url URL]

About a minute. Three configurations, one after the other, each on a fresh PostgreSQL
database (created under the server of `--postgres-url`, default
`THREADWIRE_TEST_POSTGRES_URL`, and dropped afterwards) and, for the clustered ones, a
throwaway redis-server of its own:

- `1 node, memory bus`: one `threadwire serve`, no Redis (the single-node baseline);
- `1 node, Redis bus`: the same with `--bus-url` (what the bus costs one node);
- `2 nodes, Redis bus`: two `threadwire serve` processes sharing the database and Redis.

Workload, the same for all: `threads` threads, each owned by a user of its own, with
`subscribers` WebSocket subscribers each. Every thread runs `demo` runs back to back
(`steps` steps, `delay_ms` 0: 3 events a step, 3 * steps + 4 events a run); the next
run starts when the previous one's terminal event reached all of the thread's
subscribers (a closed loop: the cluster runs as fast as it can sustain). With two
nodes, thread i's runs are started on node i mod 2 and its subscribers alternate
between the nodes, so half of all deliveries cross Redis.

Each configuration is measured `--rounds` times (default 3), interleaved, and its best
round is kept (the machine is shared; the rounds are printed too). Measured over a
window after a warm-up: deliveries (event frames received), events
stored, and latency (receipt minus the event's `ts`, sampled). Every subscriber checks
that each frame's seq is exactly the next one: `errors` counts gaps and repeats.
Everything shares the machine: nodes, PostgreSQL, Redis and this load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from threadwire.gateway.auth import issue_token  # noqa: E402
from threadwire.verify.spawn import NodeProcess, RedisProcess  # noqa: E402

TERMINAL: Final = frozenset({"agent_completed", "agent_error", "run_cancelled"})
SAMPLE_EVERY: Final = 7
"""Latency is measured on every 7th delivery (parsing timestamps costs the client)."""


@dataclass(frozen=True)
class Config:
    """One configuration of the comparison."""

    name: str
    nodes: int
    redis: bool


CONFIGS: Final = (
    Config("1 node, memory bus", 1, False),
    Config("1 node, Redis bus", 1, True),
    Config("2 nodes, Redis bus", 2, True),
)


@dataclass
class Result:
    """What one configuration achieved in the window."""

    config: Config
    deliveries: int
    events: int
    runs: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    client_cpu: float
    node_cpu: float
    """CPU seconds per second of every node process together (1.0 = one core)."""

    @property
    def rate(self) -> float:
        """Deliveries per second."""
        return self.deliveries / self.seconds

    def percentile(self, q: float) -> float:
        """A latency percentile in ms (nearest rank)."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Meter:
    """Counts of the load generator, reset at the start of the window."""

    measuring: bool = False
    deliveries: int = 0
    events: int = 0
    runs: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class Subscriber:
    """One WebSocket subscription to a thread from its start; checks seq order."""

    def __init__(self, room: Room, node: NodeProcess, meter: Meter) -> None:
        self.room = room
        self.node = node
        self.meter = meter
        self.last_seq = 0
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        url = self.node.url.replace("http://", "ws://") + "/v1/ws"
        self.ws = await connect(
            url, additional_headers={"Authorization": f"Bearer {self.room.token}"},
            max_queue=None,
        )  # fmt: skip
        await self.ws.send(json.dumps({"op": "subscribe", "thread_id": self.room.thread_id,
                                       "after_seq": 0}))  # fmt: skip
        answer = json.loads(await self.ws.recv())
        if answer.get("type") != "subscribed":
            raise RuntimeError(f"subscribe refused: {answer}")
        self.task = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        meter = self.meter
        count = 0
        async for message in ws:
            frame = json.loads(message)
            event = frame.get("event")
            if event is None:
                continue
            seq = event["seq"]
            if seq != self.last_seq + 1:
                meter.errors += 1
            self.last_seq = max(self.last_seq, seq)
            if meter.measuring:
                meter.deliveries += 1
                count += 1
                if count % SAMPLE_EVERY == 0:
                    sent = datetime.fromisoformat(event["ts"]).timestamp()
                    meter.latencies_ms.append((time.time() - sent) * 1000)
            if event["type"] in TERMINAL:
                self.room.arrived(event["run_id"])

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.ws is not None:
            await self.ws.close()


class Room:
    """A thread, its owner, its subscribers, and its loop of runs."""

    def __init__(self, index: int, secret: str) -> None:
        self.index = index
        self.user = f"bench{index}"
        self.token = issue_token(secret, self.user)
        self.thread_id = ""
        self.subscribers: list[Subscriber] = []
        self._waiting: dict[str, int] = {}
        self._done: dict[str, asyncio.Event] = {}

    def arrived(self, run_id: str) -> None:
        """A subscriber received the run's terminal event."""
        left = self._waiting.get(run_id, len(self.subscribers)) - 1
        self._waiting[run_id] = left
        if left == 0:
            self._done.setdefault(run_id, asyncio.Event()).set()

    async def loop(self, http: httpx.AsyncClient, steps: int, meter: Meter) -> None:
        """Start a run, wait until every subscriber has its terminal event, repeat."""
        body = {"agent": "demo", "input": {"prompt": "bench", "steps": steps, "delay_ms": 0}}
        while True:
            answer = await http.post(
                f"/v1/threads/{self.thread_id}/runs", json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            )  # fmt: skip
            answer.raise_for_status()
            run_id = answer.json()["run_id"]
            await self._done.setdefault(run_id, asyncio.Event()).wait()
            del self._done[run_id], self._waiting[run_id]
            if meter.measuring:
                meter.runs += 1
                meter.events += 3 * steps + 4


async def create_database(admin_url: str) -> str:
    """A fresh, empty database on the server of `admin_url`; its URL."""
    import asyncpg

    name = f"tw_bench_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database `create_database` made."""
    import asyncpg

    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def measure(config: Config, args: argparse.Namespace, workdir: Path) -> Result:
    """Start the configuration's processes, run the workload, stop everything."""
    secret = secrets.token_hex(24)
    database = await create_database(args.postgres_url)
    redis = RedisProcess(workdir) if config.redis else None
    nodes = [
        NodeProcess(i, workdir, secret=secret, database_url=database,
                    bus_url=redis.url if redis else None,
                    extra_args=("--max-concurrent-runs", "1000", "--max-runs-per-user", "8"))
        for i in range(config.nodes)
    ]  # fmt: skip
    meter = Meter()
    rooms = [Room(i, secret) for i in range(args.threads)]
    clients = [httpx.AsyncClient(base_url=n.url, timeout=60) for n in nodes]
    loops: list[asyncio.Task[None]] = []
    try:
        if redis is not None:
            await redis.start()
        await nodes[0].start()
        await asyncio.gather(*(n.start() for n in nodes[1:]))
        for room in rooms:
            http = clients[room.index % len(nodes)]
            answer = await http.post(
                "/v1/threads", json={}, headers={"Authorization": f"Bearer {room.token}"}
            )
            answer.raise_for_status()
            room.thread_id = answer.json()["thread_id"]
            room.subscribers = [
                Subscriber(room, nodes[(room.index + j) % len(nodes)], meter)
                for j in range(args.subscribers)
            ]
            await asyncio.gather(*(s.open() for s in room.subscribers))
        loops = [
            asyncio.create_task(room.loop(clients[room.index % len(nodes)], args.steps, meter))
            for room in rooms
        ]
        await asyncio.sleep(args.warmup)  # the warm-up itself: let every loop get going
        cpu_start = _cpu()
        nodes_start = sum(_process_cpu(n) for n in nodes)
        start = time.perf_counter()
        meter.measuring = True
        await asyncio.sleep(args.window)  # the measured window
        meter.measuring = False
        seconds = time.perf_counter() - start
        client_cpu = (_cpu() - cpu_start) / seconds
        node_cpu = (sum(_process_cpu(n) for n in nodes) - nodes_start) / seconds
        for failed in (t for t in loops if t.done() and t.exception()):
            raise RuntimeError(f"a run loop failed: {failed.exception()!r}")
        return Result(config, meter.deliveries, meter.events, meter.runs, seconds,
                      meter.latencies_ms, meter.errors, client_cpu, node_cpu)  # fmt: skip
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for room in rooms:
            for sub in room.subscribers:
                await sub.close()
        for client in clients:
            await client.aclose()
        await asyncio.gather(*(n.stop() for n in nodes))
        if redis is not None:
            await redis.stop()
        await drop_database(args.postgres_url, database)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(node: NodeProcess) -> float:
    """User + system CPU seconds of a node process so far (from /proc/<pid>/stat)."""
    if node.process is None:
        return 0.0
    fields = Path(f"/proc/{node.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """The machine, for the notes under the table."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )


def table(results: list[Result]) -> str:
    """The Markdown table of the comparison."""
    base = results[0].rate
    lines = [
        "| configuration | deliveries/s | vs 1 node | events stored/s | runs | p50 ms | p99 ms "
        "| seq errors (all rounds) | nodes' CPU | deliveries per node CPU-s | load generator CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.config.name} | {r.rate:,.0f} | {r.rate / base:.2f}x "
            f"| {r.events / r.seconds:,.0f} | {r.runs} | {r.percentile(0.5):.1f} "
            f"| {r.percentile(0.99):.1f} | {r.errors} | {r.node_cpu:.0%} "
            f"| {r.rate / r.node_cpu:,.0f} | {r.client_cpu:.0%} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=4, help="per thread")
    parser.add_argument("--steps", type=int, default=20, help="demo steps per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="measure every configuration this many times, interleaved; keep each one's best",
    )  # fmt: skip
    parser.add_argument(
        "--postgres-url", default=os.environ.get("THREADWIRE_TEST_POSTGRES_URL"),
        help="a PostgreSQL server to create the databases on [$THREADWIRE_TEST_POSTGRES_URL]",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error("give --postgres-url or set THREADWIRE_TEST_POSTGRES_URL")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(machine(), flush=True)
    best: dict[Config, Result] = {}
    rates: dict[Config, list[float]] = {c: [] for c in CONFIGS}
    errors: dict[Config, int] = dict.fromkeys(CONFIGS, 0)
    with tempfile.TemporaryDirectory(prefix="tw-bench-cluster-") as tmp:
        for round_ in range(1, args.rounds + 1):
            for config in CONFIGS:
                slug = config.name.replace(" ", "-").replace(",", "")
                workdir = Path(tmp) / f"{slug}-{round_}"
                workdir.mkdir()
                result = await measure(config, args, workdir)
                rates[config].append(result.rate)
                print(f"round {round_}: {config.name}: {result.rate:,.0f} deliveries/s "
                      f"(errors {result.errors})", flush=True)  # fmt: skip
                errors[config] += result.errors
                kept = best.get(config)
                if kept is None or result.rate > kept.rate:
                    best[config] = result
    # Seq errors of every round count, not only the kept one's.
    results = [replace(best[c], errors=errors[c]) for c in CONFIGS]
    print()
    for config in CONFIGS:
        print(f"{config.name}: rounds {', '.join(f'{r:,.0f}' for r in rates[config])}")
    print(
        f"{args.threads} threads x {args.subscribers} subscribers, demo runs of {args.steps} "
        f"steps ({3 * args.steps + 4} events), {args.warmup:g} s warm-up, {args.window:g} s window"
    )
    print(table(results))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
