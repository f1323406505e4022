"""The LangGraph Platform API under `/lg`: what the `langgraph-sdk` client talks to.

`create_app` includes `router`; the client is pointed at `BASE + "/lg"` with a
threadwire user token as its API key (docs/langgraph.md).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter

from threadwire.lg import assistants, runs, threads

PREFIX: Final = "/lg"

router = APIRouter(prefix=PREFIX)
router.include_router(assistants.router)
router.include_router(threads.router)
router.include_router(runs.router)

__all__ = ["PREFIX", "router"]
