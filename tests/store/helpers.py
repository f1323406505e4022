"""Builders the store tests share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from threadwire import ids
from threadwire.events import NewEvent, utcnow
from threadwire.store import RunRecord, RunStatus


def new_event(
    thread_id: str,
    run_id: str,
    type_: str = "agent_message",
    *,
    ts: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> NewEvent:
    """An event on its way to the store, with a fresh event ID."""
    return NewEvent(ids.new_event_id(), thread_id, run_id, type_, ts or utcnow(), data or {})


def new_run(
    thread_id: str,
    *,
    status: RunStatus = "queued",
    agent: str = "echo",
    node_id: str | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """A run record with a fresh canonical ID."""
    return RunRecord(
        run_id=run_id or ids.new_run_id(thread_id),
        thread_id=thread_id,
        agent=agent,
        status=status,
        created_at=utcnow(),
        input={"text": "hi"},
        owner="alice",
        node_id=node_id,
    )
