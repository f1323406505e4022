"""Cluster mode in the gateway: the node's `ClusterNode`, cancel routing and fencing.

Imported only when the node's bus is Redis (`threadwire.cluster` needs the `redis`
extra). `Gateway.start` builds a `GatewayCluster` and starts it instead of calling
`Supervisor.start` itself: the supervisor's recovery of this node ID's previous runs
runs under the node's recovery lock, then the node joins (docs/decisions/0064).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, Final, cast

from threadwire.bus.redis import RedisBus
from threadwire.cluster import (
    ClusterNode,
    ClusterSettings,
    CommandRefused,
    ControlTimeout,
    NodeUnreachable,
)
from threadwire.config import Settings
from threadwire.runtime import Supervisor
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.errors import CancelNotDelivered, RunFinished
from threadwire.store.base import NotFound, RunRecord, RunStatus, Store

logger = logging.getLogger("threadwire.gateway")

FENCED_EXIT_STATUS: Final = 75
"""Exit status of a node that found itself declared dead (EX_TEMPFAIL: restart it)."""


def cluster_settings(settings: Settings) -> ClusterSettings:
    """The cluster timings of `settings` (`THREADWIRE_HEARTBEAT_*`, `..._DEAD_NODE_GRACE`)."""
    return ClusterSettings(
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_ttl=settings.heartbeat_ttl,
        detect_interval=settings.heartbeat_interval,
        grace=settings.dead_node_grace,
    )


def exit_fenced() -> None:
    """Leave the process at once: another node already ended this node's runs.

    Nothing more may be written for them (no `run_cancelled` from a graceful shutdown,
    no late agent event after the recoverer's `agent_error`), so no shutdown path runs;
    clients lose their connections and resume on another node (0064).
    """
    logging.shutdown()  # flush the log line that says why
    sys.stderr.flush()
    os._exit(FENCED_EXIT_STATUS)


class GatewayCluster:
    """This node in the cluster: joins after recovering, answers and routes cancels."""

    def __init__(
        self,
        bus: RedisBus,
        node_id: str,
        store: Store,
        coordinator: Coordinator,
        supervisor: Supervisor,
        settings: ClusterSettings,
        *,
        on_fenced: Callable[[], None],
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self._exit = on_fenced
        self._joined = False
        self.node = ClusterNode(
            bus,
            node_id,
            store,
            coordinator,
            cancel_run=self._cancel_here,
            settings=settings,
            on_fenced=self._fenced,
        )

    @property
    def fenced(self) -> bool:
        """True once this node learned it was declared dead."""
        return self.node.membership.fenced

    async def start(self) -> None:
        """End this node ID's leftover runs under its recovery lock, join, route cancels."""
        try:
            await self.node.start(before_join=self.supervisor.start)
        except BaseException:
            # Stop what started, but do not deregister: the ID may be another
            # process's (still being recovered, or a misconfigured duplicate).
            await self.node.detector.stop()
            await self.node.control.stop()
            await self.node.membership.stop()
            raise
        self._joined = True
        self.supervisor.remote_cancel = self.cancel_elsewhere

    async def stop(self) -> None:
        """Leave the cluster (after the supervisor ended its runs)."""
        self.supervisor.remote_cancel = None
        if self._joined:
            self._joined = False
            await self.node.stop()

    async def cancel_elsewhere(self, run_id: str, node_id: str) -> RunRecord:
        """Cancel a run of `node_id` through its control channel; the run once cancelled.

        Refusals come back as the runtime's own: RunFinished (409), NotFound (404), or
        CancelNotDelivered (`node_unreachable` 503, `node_timeout` 504, `node_error` 502).
        """
        try:
            body = await self.node.cancel_run(run_id, node_id)
        except CommandRefused as exc:
            if exc.code == "run_finished":
                raise RunFinished(run_id, await self._status(run_id)) from None
            if exc.code == "not_found":
                raise NotFound(run_id) from None
            raise CancelNotDelivered(run_id, node_id, "node_error", exc.message) from None
        except NodeUnreachable:
            # Not listening: dead (the detector ends the run with `node_lost`), stopped
            # after finishing its runs, or reconnecting to Redis. Never end the run from
            # here: a live owner would write a second terminal event.
            status = await self._status(run_id)
            if status in {"completed", "failed", "cancelled"}:
                raise RunFinished(run_id, status) from None
            raise CancelNotDelivered(
                run_id, node_id, "node_unreachable", "it is not listening; retry shortly"
            ) from None
        except ControlTimeout:
            raise CancelNotDelivered(
                run_id, node_id, "node_timeout", "it did not answer in time; it may still cancel"
            ) from None
        record = await self.store.get_run(run_id)
        if record is None:
            raise NotFound(run_id)
        if not record.finished:  # the owner's status update failed; its answer is the truth
            record = record.evolve(status=cast(RunStatus, body.get("status", "cancelled")))
        return record

    async def _cancel_here(self, run_id: str) -> dict[str, Any]:
        """Another node's cancel of a run this node executes (never routed further)."""
        return (await self.supervisor.cancel(run_id, route=False)).to_dict()

    async def _status(self, run_id: str) -> str:
        record = await self.store.get_run(run_id)
        return record.status if record is not None else "finished"

    def _fenced(self) -> None:
        logger.critical(
            "node %s was declared dead by the cluster and its runs were ended by another "
            "node; exiting with status %d without touching them",
            self.node.node_id,
            FENCED_EXIT_STATUS,
        )
        self._exit()
