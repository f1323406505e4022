"""One node's wiring: store, bus, coordinator, hub, supervisor, ingestor, open clients.

`Gateway` owns the order of startup (store, bus, then the supervisor, which in cluster
mode starts under the cluster node's recovery lock before the node joins) and of
shutdown: stop accepting, close WebSockets with 1001, end SSE streams, let runs finish
or cancel them within the grace period, leave the cluster, then close the bus and the
store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from threadwire.bus import Bus, create_bus
from threadwire.config import Settings
from threadwire.events import Event, NewEvent
from threadwire.gateway import metrics
from threadwire.gateway.hub import Hub
from threadwire.gateway.limits import UserConnections
from threadwire.ids import CANONICAL
from threadwire.ids import registry as id_registry
from threadwire.runtime import AgentRegistry, Ingestor, Supervisor, registry_from_settings
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.supervisor import DEFAULT_NODE_ID
from threadwire.store import Store, create_store
from threadwire.traces import create_trace_sink

if TYPE_CHECKING:
    from threadwire.bus.redis import RedisBus
    from threadwire.gateway.cluster import GatewayCluster

logger = logging.getLogger("threadwire.gateway")

NODE_ID_GRAMMAR: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Node IDs name Redis keys (`{ns}:node:{id}`): no `:`, so no ID is another's key."""


class Client(Protocol):
    """An open WebSocket connection or SSE stream, as shutdown sees it."""

    def shutdown(self) -> None:
        """Close for shutdown (WebSocket code 1001, SSE stream ended); never waits."""


class Gateway:
    """Everything one node serves with; `create_app` keeps it at `app.state.gateway`."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        bus: Bus | None = None,
        registry: AgentRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or create_store(settings.database_url)
        self.bus = bus or create_bus(settings.bus_url)
        self.redis_bus = _redis_bus(self.bus)
        self.node_id = resolve_node_id(settings.node_id, clustered=self.redis_bus is not None)
        self.traces = (
            create_trace_sink(settings.trace_url, lookup_run=self.store.get_run)
            if settings.trace_url
            else None
        )
        self.coordinator = Coordinator(
            cast(Store, _TimedAppends(self.store)),
            self.bus,
            observers=[self.traces.submit] if self.traces else [],
        )
        self.hub = Hub(self.store, self.bus, buffer_limit=settings.ws_queue_size)
        self.registry = registry or registry_from_settings(settings)
        self.supervisor = Supervisor(
            self.store,
            self.coordinator,
            self.registry,
            max_concurrent_runs=settings.max_concurrent_runs,
            max_runs_per_user=settings.max_runs_per_user,
            run_timeout=settings.run_timeout,
            node_id=self.node_id,
        )
        self.ingestor = Ingestor(self.store, self.coordinator)
        self.secret = settings.resolve_jwt_secret()
        self.user_connections = UserConnections(settings.max_connections_per_user)
        self.clients: set[Client] = set()
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.cluster: GatewayCluster | None = None
        self.on_fenced: Callable[[], None] | None = None
        """Cluster mode: what to do when this node learns it was declared dead; None
        exits the process (`gateway.cluster.exit_fenced`). Tests replace it."""
        self._started = False
        self._stopped = False

    async def start(self) -> None:
        """Open the store and the bus, then let the supervisor recover unfinished runs;
        in cluster mode under the node's recovery lock, then join the cluster."""
        if self.settings.id_formats is not None:
            apply_id_formats(self.settings.id_formats)
        await self.store.open()
        try:
            await self.bus.open()
            if self.traces is not None:
                await self.traces.start()
            if self.redis_bus is not None:
                self.cluster = self._cluster(self.redis_bus)
                await self.cluster.start()
            else:
                await self.supervisor.start()
        except BaseException:
            await self.bus.close()
            await self.store.close()
            raise
        self._started = True
        logger.info(
            "node started",
            extra={
                "node_id": self.node_id,
                "store": _redact(self.store.url),
                "bus": _redact(self.bus.url),
            },
        )

    def _cluster(self, bus: RedisBus) -> GatewayCluster:
        from threadwire.gateway.cluster import GatewayCluster, cluster_settings, exit_fenced

        return GatewayCluster(
            bus,
            self.node_id,
            self.store,
            self.coordinator,
            self.supervisor,
            cluster_settings(self.settings),
            on_fenced=self.on_fenced or exit_fenced,
        )

    def attach(self, client: Client) -> None:
        """Count an open WebSocket or SSE stream (drain closes and waits for them)."""
        self.clients.add(client)
        self._idle.clear()

    def detach(self, client: Client) -> None:
        """Forget a closed WebSocket or SSE stream."""
        self.clients.discard(client)
        if not self.clients:
            self._idle.set()

    async def drain(self, wait: float = 5.0) -> None:
        """Stop accepting; close every WebSocket with 1001 and end every SSE stream."""
        if self.draining:
            return
        self.draining = True
        logger.info("draining", extra={"clients": len(self.clients)})
        for client in tuple(self.clients):
            client.shutdown()
        try:
            async with asyncio.timeout(wait):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("%d clients still open after draining %.1f s", len(self.clients), wait)

    async def stop(self) -> None:
        """Drain, finish or cancel runs within the grace period, close bus and store."""
        if self._stopped:
            return
        self._stopped = True
        await self.drain()
        if self._started:
            await self.supervisor.shutdown(self.settings.shutdown_grace)
        if self.cluster is not None:
            await self.cluster.stop()
        if self.traces is not None:
            await self.traces.close()
        await self.hub.close()
        await self.bus.close()
        await self.store.close()
        logger.info("node stopped")

    async def ready(self) -> dict[str, str]:
        """Readiness of each dependency: "ok" or the error (empty dict key order fixed)."""
        checks: dict[str, str] = {}
        for name, ping in (("store", self.store.ping), ("bus", self.bus.ping)):
            try:
                async with asyncio.timeout(2.0):
                    await ping()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"error: {type(exc).__name__}: {exc}"[:200]
        if self.cluster is not None and self.cluster.fenced:
            checks["cluster"] = "error: this node was declared dead"
        if self.draining:
            checks["node"] = "draining"
        return checks


def resolve_node_id(configured: str | None, *, clustered: bool) -> str:
    """This node's ID: the configured one (checked), else "local" on a single node, else
    one generated from the host name, the PID and a random suffix (logged at start)."""
    if configured is not None:
        if not NODE_ID_GRAMMAR.fullmatch(configured):
            raise ValueError(
                f"node ID {configured[:80]!r} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
            )
        return configured
    if not clustered:
        return DEFAULT_NODE_ID
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _redis_bus(bus: Bus) -> RedisBus | None:
    """`bus` if it is a RedisBus (cluster mode); never imports redis for a memory bus."""
    module = sys.modules.get("threadwire.bus.redis")
    if module is None:  # never imported, so `bus` cannot be one
        return None
    return cast("RedisBus", bus) if isinstance(bus, module.RedisBus) else None


def apply_id_formats(names: Sequence[str]) -> None:
    """Enable exactly `names` (plus `canonical`, always on) in the process's ID registry.

    The switch for a gradual rollout: once the parse counters show no legacy traffic,
    run with `--id-formats canonical`; to roll back, list the legacy formats again.
    """
    wanted = set(names)
    unknown = wanted - set(id_registry.names())
    if unknown:
        known = ", ".join(id_registry.names())
        raise ValueError(f"unknown run-ID formats {sorted(unknown)}; known: {known}")
    for name in id_registry.names():
        if name == CANONICAL:
            continue
        if name in wanted:
            id_registry.enable(name)
        else:
            id_registry.disable(name)
    logger.info("run-ID formats enabled", extra={"formats": id_registry.enabled_names()})


class _TimedAppends:
    """The store as the coordinator sees it: appends timed, everything else passed on."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        start = time.perf_counter()
        try:
            return await self._inner.append(events, idempotency_key=idempotency_key)
        finally:
            metrics.store_append_seconds.observe(time.perf_counter() - start)


def _redact(url: str) -> str:
    """A URL fit for logs: the password replaced."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
