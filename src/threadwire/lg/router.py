"""The LangGraph Platform API under `/lg`: what the `langgraph-sdk` client talks to.

`create_app` includes `router`; the client is pointed at `BASE + "/lg"` with a
threadwire user token as its API key (docs/langgraph.md).
"""

from __future__ import annotations

from fastapi import APIRouter

from threadwire.lg import assistants, runs, threads
from threadwire.lg.deps import PREFIX

# Each part carries the prefix itself, so routes (and the metrics' route labels) read
# /lg/threads/...: an included router's prefix does not reach them.
router = APIRouter()
router.include_router(assistants.router)
router.include_router(threads.router)
router.include_router(runs.router)

__all__ = ["PREFIX", "router"]
