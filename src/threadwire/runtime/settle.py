"""Finding a run's stored terminal event, and recording the status it implies.

Every writer of a run's end writes the terminal event first and the final status
second (docs/decisions/0066). A crash between the two leaves a run whose status is
unfinished but whose terminal event is stored; every recovery (a node's own on
start-up, the cluster's for a dead node) looks for that event before writing one, so
no run ever gets two, and then only records the status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from threadwire.events import AGENT_COMPLETED, AGENT_ERROR, Event
from threadwire.store.base import STATUS_OF_TERMINAL, EventsGone, RunRecord, Store

PAGE: Final = 1000


async def terminal_events(store: Store, thread_id: str, run_ids: Iterable[str]) -> dict[str, Event]:
    """The stored terminal event of each of `run_ids` that has one, reading the thread."""
    wanted = set(run_ids)
    found: dict[str, Event] = {}
    thread = await store.get_thread(thread_id)
    after = thread.low_seq if thread is not None else 0
    while wanted - found.keys():
        try:
            page = await store.read_events(thread_id, after_seq=after, limit=PAGE)
        except EventsGone as gone:  # pruned meanwhile: pruning keeps unfinished runs' events
            if gone.first_seq - 1 <= after:
                raise
            after = gone.first_seq - 1
            continue
        for event in page:
            if event.run_id in wanted and event.is_terminal:
                found.setdefault(event.run_id, event)
        if len(page) < PAGE:
            break
        after = page[-1].seq
    return found


def final_changes(terminal: Event) -> dict[str, Any]:
    """The run's final columns as its terminal event says them."""
    changes: dict[str, Any] = {
        "status": STATUS_OF_TERMINAL[terminal.type],
        "finished_at": terminal.ts,
    }
    if terminal.type == AGENT_ERROR:
        changes["error"] = dict(terminal.data)
    elif terminal.type == AGENT_COMPLETED:
        changes["result"] = terminal.data.get("result")
    return changes


async def settle(store: Store, run: RunRecord, terminal: Event) -> RunRecord:
    """Record the final status `terminal` implies (its writer crashed before doing so)."""
    return await store.update_run(run.run_id, **final_changes(terminal))
