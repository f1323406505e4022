"""Node membership: each node's heartbeat in Redis, and who else is alive.

A node holds a key of its own (`{ns}:node:{id}`) with a TTL, refreshed every interval,
and keeps its entry in a sorted set of nodes (`{ns}:nodes`, scored by its last
heartbeat). A key that expired means the node is presumed dead; the detector then
fences it with a tombstone, so that if it was only paused it cannot heartbeat back in
as if nothing happened: its next heartbeat reports it fenced instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from redis.exceptions import RedisError

from threadwire.bus import keys
from threadwire.bus.redis import RedisBus
from threadwire.bus.tasks import cancel_and_wait
from threadwire.cluster import metrics

log = logging.getLogger(__name__)

FENCED: Final = 0
REREGISTERED: Final = 1
REFRESHED: Final = 2

_HEARTBEAT: Final = """
-- KEYS: node key, tombstone, nodes; ARGV: node_id, ttl_ms, now_ms, info
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return existed + 1
"""
"""One heartbeat, atomic with the tombstone check: 0 fenced, 1 key was gone, 2 refreshed."""

_JOIN: Final = """
-- KEYS: node key, tombstone, nodes; ARGV: node_id, ttl_ms, now_ms, info
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""
"""A new incarnation of the node registers, clearing a tombstone its predecessor left."""


class Membership:
    """This node's heartbeat loop, and the view of the cluster's nodes.

    `on_fenced` is called once, on the event loop, when a heartbeat finds this node
    declared dead (its runs were failed by another node): the node must stop executing
    them and should exit. Heartbeats stop then.
    """

    def __init__(
        self,
        bus: RedisBus,
        node_id: str,
        *,
        interval: float = 1.0,
        ttl: float = 5.0,
        on_fenced: Callable[[], None] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if interval <= 0 or ttl < 2 * interval:
            raise ValueError(
                f"heartbeat ttl ({ttl} s) must be at least twice its interval ({interval} s)"
            )
        self.bus = bus
        self.node_id = node_id
        self.interval = interval
        self.ttl = ttl
        self.on_fenced = on_fenced
        self.fenced = False
        self._info = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}
            | dict(info or {})
        )
        self._task: asyncio.Task[None] | None = None

    def _keys(self) -> list[str]:
        ns = self.bus.namespace
        return [
            keys.node_key(ns, self.node_id),
            keys.node_tombstone(ns, self.node_id),
            keys.nodes_key(ns),
        ]

    def _args(self) -> list[str | int]:
        return [self.node_id, round(self.ttl * 1000), round(time.time() * 1000), self._info]

    async def join(self) -> None:
        """Register this node (a new incarnation: any old tombstone is cleared) and start
        heartbeating. Call it only once the node's previous runs were dealt with."""
        await self.bus.client.eval(_JOIN, 3, *self._keys(), *self._args())
        self.fenced = False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="threadwire-heartbeat")

    async def leave(self) -> None:
        """Stop heartbeating and remove this node (a clean shutdown: nothing to recover)."""
        await self.stop()
        ns = self.bus.namespace
        try:
            async with self.bus.client.pipeline(transaction=True) as pipe:
                pipe.delete(keys.node_key(ns, self.node_id))
                pipe.zrem(keys.nodes_key(ns), self.node_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not deregister node %s: %s (its key expires)", self.node_id, exc)

    async def stop(self) -> None:
        """Stop heartbeating without deregistering (the key then expires)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def beat(self) -> bool:
        """Write one heartbeat; False (and `on_fenced` called) when this node is fenced."""
        outcome = int(await self.bus.client.eval(_HEARTBEAT, 3, *self._keys(), *self._args()))
        if outcome == FENCED:
            if not self.fenced:
                self.fenced = True
                metrics.fenced.inc()
                log.error(
                    "node %s was declared dead by the cluster; its runs were failed", self.node_id
                )
                if self.on_fenced is not None:
                    self.on_fenced()
            return False
        if outcome == REREGISTERED:
            log.warning("node %s heartbeat key was gone (Redis restarted?); registered again",
                        self.node_id)
        return True

    async def live_nodes(self) -> set[str]:
        """Nodes of the sorted set whose heartbeat key exists now."""
        known = await self.known_nodes()
        return await alive(self.bus, known)

    async def known_nodes(self) -> dict[str, float]:
        """Every node in the sorted set, with its last heartbeat (Unix seconds)."""
        entries = await self.bus.client.zrange(
            keys.nodes_key(self.bus.namespace), 0, -1, withscores=True
        )
        return {_text(entry[0]): float(entry[1]) / 1000 for entry in entries}

    async def _run(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.interval)  # the heartbeat period itself
            try:
                if not await self.beat():
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.heartbeat_failures.inc()
                if failures == 0:
                    log.warning("heartbeat of node %s failed: %s", self.node_id, exc)
                failures += 1
                continue
            if failures:
                log.info("heartbeat of node %s works again", self.node_id)
            failures = 0


async def alive(bus: RedisBus, nodes: Iterable[str]) -> set[str]:
    """Those of `nodes` whose heartbeat key exists."""
    ordered = list(nodes)
    if not ordered:
        return set()
    async with bus.client.pipeline(transaction=False) as pipe:
        for node in ordered:
            pipe.exists(keys.node_key(bus.namespace, node))
        found = await pipe.execute()
    return {node for node, exists in zip(ordered, found, strict=True) if exists}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
