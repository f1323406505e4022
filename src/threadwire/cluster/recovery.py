"""Ending a dead node's runs: each gets exactly one terminal event, `agent_error` `node_lost`.

Idempotent, so a recovery that was itself interrupted can simply run again: a run that
already has a terminal event in the store (its node wrote it, then died before
recording the final status; or an earlier recovery got that far) gets no second one,
only its status brought in line with that event. The terminal event is written before
the status, so a crash between the two leaves a run this function finds again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

from threadwire.cluster import metrics
from threadwire.events import AGENT_ERROR, NewEvent, utcnow
from threadwire.ids import new_event_id
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.settle import settle, terminal_events
from threadwire.store.base import RunEnded, RunRecord, Store

log = logging.getLogger(__name__)

NODE_LOST: Final = "node_lost"
"""The `code` of the `agent_error` that ends a run whose node died."""
__all__ = ["NODE_LOST", "Recovered", "end_runs_of_node", "terminal_events"]

NODE_LOST_MESSAGE: Final = "the node running this run stopped; the run was ended by another node"


@dataclass(frozen=True, slots=True)
class Recovered:
    """What ending a node's runs did."""

    node_id: str
    failed: list[RunRecord] = field(default_factory=list)
    """Runs given their terminal `agent_error` now."""
    settled: list[RunRecord] = field(default_factory=list)
    """Runs that had a terminal event already; only their status was recorded."""


async def end_runs_of_node(
    store: Store,
    coordinator: Coordinator,
    node_id: str,
    *,
    code: str = NODE_LOST,
    message: str = NODE_LOST_MESSAGE,
) -> Recovered:
    """Give every unfinished run of `node_id` its one terminal event and final status.

    Call it only while holding the node's recovery lock (the detector does), so no other
    node does the same at the same time.
    """
    runs = await store.list_unfinished_runs(node_id=node_id)
    recovered = Recovered(node_id)
    by_thread: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_thread[run.thread_id].append(run)
    error = {"code": code, "message": message}
    for thread_id, thread_runs in by_thread.items():
        terminals = await terminal_events(store, thread_id, (r.run_id for r in thread_runs))
        for run in thread_runs:
            terminal = terminals.get(run.run_id)
            if terminal is not None:
                recovered.settled.append(await settle(store, run, terminal))
                metrics.orphaned_runs.labels("settled").inc()
                continue
            new = NewEvent(new_event_id(), thread_id, run.run_id, AGENT_ERROR, utcnow(), error)
            try:
                [stored] = await coordinator.emit([new])
            except RunEnded as refused:
                # The node, not quite dead, ended the run itself since the read above.
                if refused.terminal is None:
                    raise
                recovered.settled.append(await settle(store, run, refused.terminal))
                metrics.orphaned_runs.labels("settled").inc()
                continue
            recovered.failed.append(
                await store.update_run(
                    run.run_id, status="failed", finished_at=stored.ts, error=dict(error)
                )
            )
            metrics.orphaned_runs.labels("failed").inc()
    if runs:
        log.warning(
            "ended %d unfinished runs of node %s (%d failed with %s, %d already had "
            "their terminal event)",
            len(runs),
            node_id,
            len(recovered.failed),
            code,
            len(recovered.settled),
        )
    return recovered
