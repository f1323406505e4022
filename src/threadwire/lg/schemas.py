"""The LangGraph wire shapes: request bodies in, Assistant/Thread/Run bodies out.

Field names and statuses are LangGraph's (`langgraph_sdk.schema`); the values behind
them are threadwire's: thread IDs are threadwire thread IDs, run IDs canonical
threadwire run IDs, and an assistant is a registered agent under a stable UUID.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from threadwire.events import format_ts
from threadwire.store import RunRecord, ThreadRecord

NAMESPACE_GRAPH: Final = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
"""The namespace LangGraph's server derives a graph's assistant ID from (uuid5), so an
agent gets the assistant ID a LangGraph server would give a graph of the same name."""

RUN_STATUS: Final[dict[str, str]] = {
    "queued": "pending",
    "running": "running",
    "completed": "success",
    "failed": "error",
    "cancelled": "interrupted",
}
"""threadwire run status -> LangGraph run status."""

THREADWIRE_STATUS: Final = {lg: tw for tw, lg in RUN_STATUS.items()}

ASSISTANT_METADATA: Final = {"created_by": "system"}


def assistant_id(agent: str) -> str:
    """The stable assistant UUID of an agent name.

    >>> assistant_id("demo") == assistant_id("demo") != assistant_id("chat")
    True
    """
    return str(uuid.uuid5(NAMESPACE_GRAPH, agent))


class LgRequest(BaseModel):
    """A request body: unknown members are ignored, as LangGraph's server ignores them."""

    model_config = ConfigDict(extra="ignore")


class CreateThread(LgRequest):
    """Body of `POST /threads` (threads.create)."""

    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    ttl: Any = None
    supersteps: Any = None
    graph_id: str | None = None


class SearchAssistants(LgRequest):
    """Body of `POST /assistants/search` (assistants.search)."""

    limit: int = Field(default=10, ge=0, le=1000)
    offset: int = Field(default=0, ge=0)
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None


class RunCreate(LgRequest):
    """Body of runs.create, runs.stream and runs.wait on a thread."""

    assistant_id: str
    input: dict[str, Any] | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    # Accepted by LangGraph, refused here with a 422 naming them (see unsupported()).
    command: Any = None
    checkpoint: Any = None
    checkpoint_id: Any = None
    interrupt_before: Any = None
    interrupt_after: Any = None
    webhook: Any = None
    multitask_strategy: Any = None
    after_seconds: Any = None
    on_completion: Any = None

    def unsupported(self) -> str | None:
        """The first option set that threadwire does not implement, else None."""
        for name in (
            "command",
            "checkpoint",
            "checkpoint_id",
            "interrupt_before",
            "interrupt_after",
            "webhook",
            "multitask_strategy",
            "on_completion",
        ):
            if getattr(self, name) is not None:
                return name
        if self.after_seconds not in (None, 0):
            return "after_seconds"
        return None


def _ts(value: datetime | None) -> str | None:
    return format_ts(value) if value is not None else None


def assistant_body(agent: str, created_at: datetime) -> dict[str, Any]:
    """An Assistant: one per registered agent, `graph_id` and `name` the agent's name."""
    stamp = format_ts(created_at)
    return {
        "assistant_id": assistant_id(agent),
        "graph_id": agent,
        "name": agent,
        "description": None,
        "config": {},
        "context": {},
        "metadata": dict(ASSISTANT_METADATA),
        "version": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }


def thread_body(
    thread: ThreadRecord, status: str = "idle", values: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Thread; its `values` are those of its newest run (null before the first)."""
    stamp = format_ts(thread.created_at)
    return {
        "thread_id": thread.thread_id,
        "created_at": stamp,
        "updated_at": stamp,
        "metadata": thread.metadata,
        "status": status,
        "values": values,
        "interrupts": {},
    }


def checkpoint(thread_id: str, run: RunRecord | None) -> dict[str, Any] | None:
    """A run stands for a checkpoint: threadwire keeps runs and events, not graph state."""
    if run is None:
        return None
    return {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": run.run_id}


def state_body(
    thread: ThreadRecord,
    run: RunRecord | None,
    values: dict[str, Any] | None,
    parent: RunRecord | None = None,
) -> dict[str, Any]:
    """A ThreadState: the values after `run` (the thread's state at that run)."""
    metadata = {} if run is None else {"run_id": run.run_id, "graph_id": run.agent}
    return {
        "values": values if values is not None else {},
        "next": [],
        "tasks": [],
        "interrupts": [],
        "metadata": metadata,
        "created_at": format_ts(run.created_at) if run is not None else None,
        "checkpoint": checkpoint(thread.thread_id, run)
        or {"thread_id": thread.thread_id, "checkpoint_ns": "", "checkpoint_id": None},
        "parent_checkpoint": checkpoint(thread.thread_id, parent),
    }


def thread_status(runs: list[RunRecord]) -> str:
    """LangGraph's thread status from its newest runs: busy while one is unfinished."""
    if any(not run.finished for run in runs):
        return "busy"
    if runs and runs[0].status == "failed":
        return "error"
    return "idle"


def run_body(run: RunRecord) -> dict[str, Any]:
    """A Run: LangGraph's members, `run_id` canonical, plus threadwire's own outcome."""
    updated = run.finished_at or run.started_at or run.created_at
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": assistant_id(run.agent),
        "created_at": format_ts(run.created_at),
        "updated_at": format_ts(updated),
        "status": RUN_STATUS[run.status],
        "metadata": {},
        "multitask_strategy": None,
        "kwargs": {"input": run.input},
        "agent": run.agent,
        "started_at": _ts(run.started_at),
        "finished_at": _ts(run.finished_at),
        "result": run.result,
        "error": run.error,
    }
