"""The dead-node detector: finds nodes whose heartbeat expired and has exactly one survivor
end their runs.

Candidates are the nodes of the sorted set plus, optionally, nodes the store says own
unfinished runs (a node that died while Redis was restarting left no entry in Redis,
but its runs are still in the store). A candidate is dead once its heartbeat key has
been missing for `grace` seconds as this detector saw it, with its own link to Redis
working all along; a Redis restart (every key gone for a heartbeat) therefore kills
nobody. Then one atomic script checks the key is still missing, takes the node's
recovery lock (SET NX) and sets its tombstone; only the node that got the lock calls
`on_dead`, keeps the lock alive while it runs, and removes the node when it succeeded.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

from redis.exceptions import RedisError

from threadwire.bus import keys
from threadwire.bus.redis import RedisBus
from threadwire.bus.tasks import cancel_and_wait
from threadwire.cluster import metrics
from threadwire.cluster.membership import alive

log = logging.getLogger(__name__)

DEAD: Final = 1
ALIVE: Final = 0
TAKEN: Final = -1

_DECLARE: Final = """
-- KEYS: node key, tombstone, lock; ARGV: token, lock_ttl_ms, tombstone_ttl_ms
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""
"""Atomically: the node is still silent, nobody else recovers it, and it is fenced."""

_EXTEND: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_FINISH: Final = """
-- KEYS: lock, nodes; ARGV: token, node_id, done_ttl_ms
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3])
return 1
"""
"""Remove the node; the lock stays a while as `done`, so that a detector which read the
candidates before this (and finds the key missing) does not recover the node again."""

DONE: Final = "done"
"""Value of a recovery lock after a successful recovery (a new incarnation may take it)."""

OnDead = Callable[[str], Awaitable[object]]
"""Ends a dead node's runs; raising leaves the node to be retried on a later pass."""
Candidates = Callable[[], Awaitable[Iterable[str]]]


class DeadNodeDetector:
    """Checks every `interval` seconds; `check()` runs one pass (tests call it directly)."""

    def __init__(
        self,
        bus: RedisBus,
        node_id: str,
        on_dead: OnDead,
        *,
        interval: float = 1.0,
        grace: float = 2.0,
        lock_ttl: float = 30.0,
        tombstone_ttl: float = 7 * 24 * 3600.0,
        candidates: Candidates | None = None,
    ) -> None:
        self.bus = bus
        self.node_id = node_id
        self.on_dead = on_dead
        self.interval = interval
        self.grace = grace
        self.lock_ttl = lock_ttl
        self.tombstone_ttl = tombstone_ttl
        self.candidates = candidates
        self._missing_since: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start checking in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="threadwire-dead-node-detector")

    async def stop(self) -> None:
        """Stop checking (a recovery in progress is cancelled; its lock expires)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def check(self) -> list[str]:
        """One pass: the nodes this detector found dead and whose runs it ended."""
        now = asyncio.get_running_loop().time()
        try:
            names = await self._candidate_names()
            living = await alive(self.bus, names)
        except BaseException:
            self._missing_since.clear()  # an outage of our own proves nothing about others
            raise
        metrics.live_nodes.set(len(living) + 1)
        for name in list(self._missing_since):
            if name not in names or name in living:
                del self._missing_since[name]
        recovered = []
        for name in sorted(names - living):
            since = self._missing_since.setdefault(name, now)
            if now - since >= self.grace and await self.recover(name):
                recovered.append(name)
                del self._missing_since[name]
        return recovered

    async def recover(self, node_id: str) -> bool:
        """Declare `node_id` dead and end its runs, unless it is alive or another node
        does it; True when this node did it."""
        client, ns = self.bus.client, self.bus.namespace
        lock = keys.node_recovery_lock(ns, node_id)
        token = secrets.token_hex(16)
        outcome = await client.eval(
            _DECLARE,
            3,
            keys.node_key(ns, node_id),
            keys.node_tombstone(ns, node_id),
            lock,
            token,
            round(self.lock_ttl * 1000),
            round(self.tombstone_ttl * 1000),
        )
        if int(outcome) != DEAD:
            return False
        log.warning("node %s stopped heartbeating; ending its unfinished runs", node_id)
        keeper = asyncio.create_task(self._keep(lock, token), name="threadwire-recovery-lock")
        try:
            await self.on_dead(node_id)
        except Exception:
            metrics.recovery_failures.inc()
            log.exception("ending the runs of dead node %s failed; retrying later", node_id)
            await client.eval(_RELEASE, 1, lock, token)
            return False
        finally:
            await cancel_and_wait(keeper)
        await client.eval(
            _FINISH, 2, lock, keys.nodes_key(ns), token, node_id, round(self.lock_ttl * 1000)
        )
        metrics.nodes_lost.inc()
        return True

    async def _candidate_names(self) -> set[str]:
        known = await self.bus.client.zrange(keys.nodes_key(self.bus.namespace), 0, -1)
        names = {_text(name) for name in known}
        if self.candidates is not None:
            names.update(await self.candidates())
        names.discard(self.node_id)
        return names

    async def _keep(self, lock: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.lock_ttl / 3)  # the renewal period
            try:
                await self.bus.client.eval(_EXTEND, 1, lock, token, round(self.lock_ttl * 1000))
            except (RedisError, OSError) as exc:
                log.warning("could not extend recovery lock %s: %s", lock, exc)

    async def _run(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.interval)  # the checking period itself
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failures == 0:
                    log.warning("dead-node check failed: %s", exc)
                failures += 1
                continue
            failures = 0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
