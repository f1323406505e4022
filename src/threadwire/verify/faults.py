"""Server-side faults on a `LocalCluster`: SIGKILL a node and restart it, or kill and
restart the Redis the verifier started, at random moments of the load phase.

Each fault is recorded with when it happened and how long the server side took to
come back (process ready again; for Redis, every node ready again). What it did to
delivery is worked out afterwards from the subscribers' records (see report.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from threadwire.verify.config import Chaos
from threadwire.verify.spawn import LocalCluster, NodeProcess

_FaultFn = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Fault:
    """One injected server fault and its effects."""

    kind: str
    """`kill-node` or `restart-bus`."""
    target: str
    at: float
    """Wall-clock seconds (time.time()) when the process was killed."""
    offset_s: float = 0.0
    """Seconds into the load phase when it was killed."""
    back_at: float | None = None
    """When the server side answered again (node ready; Redis and every node ready)."""
    error: str | None = None
    clients_disconnected: int = 0
    client_recovery_s: float | None = None
    """Longest time a disconnected subscriber took to be subscribed again."""
    events_in_window: int = 0
    events_delayed: int = 0
    max_latency_ms: float | None = None
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def server_recovery_s(self) -> float | None:
        """Seconds from the kill until the server side answered again."""
        return None if self.back_at is None else self.back_at - self.at


class FaultInjector:
    """Runs the fault loops of `chaos` against `cluster` until stopped."""

    def __init__(self, cluster: LocalCluster, chaos: Chaos, rng: random.Random) -> None:
        self.cluster = cluster
        self.chaos = chaos
        self.rng = rng
        self.faults: list[Fault] = []
        self.t0 = time.time()
        self._busy = asyncio.Lock()
        """One fault at a time, so each one's effects can be told apart."""

    async def run(self, stop: asyncio.Event) -> None:
        """Inject faults until `stop` is set; leaves every process running."""
        loops = []
        if self.chaos.kill_node is not None:
            loops.append(self._loop(stop, self.chaos.kill_node, self._kill_node))
        if self.chaos.restart_bus is not None and self.cluster.redis is not None:
            loops.append(self._loop(stop, self.chaos.restart_bus, self._restart_bus))
        await asyncio.gather(*loops)

    async def _loop(self, stop: asyncio.Event, mean: float, fault: _FaultFn) -> None:
        while not stop.is_set():
            wait = self.rng.uniform(0.5 * mean, 1.5 * mean)
            try:
                async with asyncio.timeout(wait):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            async with self._busy:
                if not stop.is_set():
                    await fault()

    def _record(self, kind: str, target: str) -> Fault:
        now = time.time()
        fault = Fault(kind, target, now, offset_s=round(now - self.t0, 2))
        self.faults.append(fault)
        return fault

    async def _kill_node(self) -> None:
        node: NodeProcess = self.rng.choice([n for n in self.cluster.nodes if n.alive])
        record = self._record("kill-node", node.name)
        await node.kill()
        await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.chaos.down)
        try:
            await node.start()
            record.back_at = time.time()
        except Exception as exc:
            record.error = f"restart failed: {exc}"[:300]

    async def _restart_bus(self) -> None:
        redis = self.cluster.redis
        assert redis is not None
        record = self._record("restart-bus", redis.name)
        await redis.kill()
        await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.chaos.down)
        try:
            await redis.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready = await asyncio.gather(*(n.ready() for n in self.cluster.nodes))
                if all(ready):
                    record.back_at = time.time()
                    return
                await asyncio.sleep(0.05)
            record.error = "nodes not ready 30 s after Redis came back"
        except Exception as exc:
            record.error = f"restart failed: {exc}"[:300]
