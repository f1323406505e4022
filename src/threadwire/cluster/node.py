"""A cluster node: membership, dead-node detection and the control channel, started as one.

The gateway's lifespan (cluster mode) builds one `ClusterNode` over the node's RedisBus,
store and coordinator, and starts it before accepting runs:

1. take this node ID's recovery lock (waiting while another node is still ending the
   runs of a previous process with this ID), run `before_join` (the supervisor's own
   start-up recovery) under it, then join: heartbeat, clear any old tombstone;
2. answer `cancel_run` from other nodes with the `cancel_run` callback;
3. detect dead nodes and end their runs with `agent_error` `node_lost`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from threadwire.bus import keys
from threadwire.bus.redis import RedisBus
from threadwire.cluster.control import CANCEL_RUN, ControlChannel
from threadwire.cluster.detector import DONE, DeadNodeDetector
from threadwire.cluster.membership import Membership
from threadwire.cluster.recovery import Recovered, end_runs_of_node
from threadwire.runtime.coordinator import Coordinator
from threadwire.store.base import Store

log = logging.getLogger(__name__)

CancelRun = Callable[[str], Awaitable[dict[str, Any]]]
"""Cancel a run this node executes; returns the run's body, raises errors with a `code`."""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_ACQUIRE: Final = """
-- KEYS: lock; ARGV: token, ttl_ms, done
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
"""Take this node ID's recovery lock: free, or `done` (an earlier recovery finished)."""


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Timings of cluster mode; the defaults suit a LAN (a dead node is handled within 8 s)."""

    heartbeat_interval: float = 1.0
    heartbeat_ttl: float = 5.0
    """A node silent this long is presumed dead..."""
    detect_interval: float = 1.0
    grace: float = 2.0
    """...and declared dead after this much longer (seen missing by a detector)."""
    lock_ttl: float = 30.0
    sweep_interval: float = 15.0
    """How often the store is asked which nodes own unfinished runs (nodes Redis forgot)."""
    control_timeout: float = 10.0
    start_timeout: float = 60.0
    """How long `start` waits for another node to finish recovering this node ID."""


class ClusterNode:
    """Everything cluster mode adds to a node; `start` and `stop` it with the gateway."""

    def __init__(
        self,
        bus: RedisBus,
        node_id: str,
        store: Store,
        coordinator: Coordinator,
        *,
        cancel_run: CancelRun,
        settings: ClusterSettings | None = None,
        on_fenced: Callable[[], None] | None = None,
    ) -> None:
        self.bus = bus
        self.node_id = node_id
        self.store = store
        self.coordinator = coordinator
        self.settings = settings = settings or ClusterSettings()
        self.membership = Membership(
            bus,
            node_id,
            interval=settings.heartbeat_interval,
            ttl=settings.heartbeat_ttl,
            on_fenced=on_fenced,
        )
        self.control = ControlChannel(bus, node_id, timeout=settings.control_timeout)
        self.control.handle(CANCEL_RUN, self._handle_cancel)
        self.detector = DeadNodeDetector(
            bus,
            node_id,
            self.end_runs_of,
            interval=settings.detect_interval,
            grace=settings.grace,
            lock_ttl=settings.lock_ttl,
            candidates=self._nodes_with_unfinished_runs,
        )
        self._cancel_run = cancel_run
        self._swept_at: float | None = None
        self._swept: set[str] = set()
        self.recovered: list[Recovered] = []
        """What this node did for dead nodes (latest last), for logs and tests."""

    async def start(self, before_join: Callable[[], Awaitable[object]] | None = None) -> None:
        """Join the cluster (see the module docstring), then serve and watch."""
        lock = keys.node_recovery_lock(self.bus.namespace, self.node_id)
        token = secrets.token_hex(16)
        await self._acquire(lock, token)
        try:
            if before_join is not None:
                await before_join()
            await self.membership.join()
        finally:
            await self.bus.client.eval(_RELEASE, 1, lock, token)
        await self.control.start()
        await self.detector.start()

    async def stop(self) -> None:
        """Leave the cluster cleanly (call after the supervisor finished its runs)."""
        await self.detector.stop()
        await self.control.stop()
        await self.membership.leave()

    async def cancel_run(self, run_id: str, node_id: str, *, within: float | None = None
                         ) -> dict[str, Any]:
        """Cancel `run_id` on `node_id`, the node that executes it; the run's body.

        Raises NodeUnreachable, ControlTimeout, or CommandRefused with the owner's code
        (`run_finished`, `not_found`).
        """
        return await self.control.request(node_id, CANCEL_RUN, {"run_id": run_id}, within=within)

    async def end_runs_of(self, node_id: str) -> Recovered:
        """End a dead node's unfinished runs (the detector's callback)."""
        recovered = await end_runs_of_node(self.store, self.coordinator, node_id)
        self.recovered.append(recovered)
        return recovered

    async def _handle_cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = args.get("run_id")
        if not isinstance(run_id, str):
            raise _BadCommand("cancel_run needs a string run_id")
        return await self._cancel_run(run_id)

    async def _acquire(self, lock: str, token: str) -> None:
        ttl_ms = round(self.settings.lock_ttl * 1000)
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                while True:
                    if await self.bus.client.eval(_ACQUIRE, 1, lock, token, ttl_ms, DONE):
                        return
                    # Another node is ending a previous process's runs under this node ID;
                    # the lock is short-lived Redis state, polled rather than subscribed to.
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RuntimeError(
                f"node ID {self.node_id!r} is still being recovered by another node after "
                f"{self.settings.start_timeout} s"
            ) from None

    async def _nodes_with_unfinished_runs(self) -> set[str]:
        now = asyncio.get_running_loop().time()
        if self._swept_at is None or now - self._swept_at >= self.settings.sweep_interval:
            runs = await self.store.list_unfinished_runs()
            self._swept = {r.node_id for r in runs if r.node_id is not None}
            self._swept_at = now
        return self._swept


class _BadCommand(ValueError):
    code = "bad_request"
