"""Threads: threadwire threads owned by the caller (threads.create, get, search)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from threadwire.gateway import errors
from threadwire.gateway.http import JsonBody
from threadwire.gateway.node import Gateway
from threadwire.ids import new_thread_id
from threadwire.lg.deps import (
    PREFIX,
    GatewayDep,
    UserDep,
    body_of,
    check_thread_id,
    find_thread,
    readable_thread,
)
from threadwire.lg.schemas import (
    CreateThread,
    LgRequest,
    state_body,
    thread_body,
    thread_status,
)
from threadwire.lg.stream import snapshots
from threadwire.store import ThreadExists, ThreadRecord
from threadwire.store.base import MAX_PAGE

STATUS_PAGE = 50
"""Newest runs looked at for a thread's status."""

router = APIRouter(prefix=PREFIX, tags=["langgraph"])


class History(LgRequest):
    """Body of `POST /threads/{thread_id}/history`: the newest `limit` states."""

    limit: int = 10


class SearchThreads(LgRequest):
    """Body of `POST /threads/search`: the caller's threads, newest first."""

    metadata: dict[str, Any] | None = None
    status: str | None = None
    limit: int = 10
    offset: int = 0


async def _status(gateway: Gateway, thread: ThreadRecord) -> str:
    page = await gateway.store.list_runs(thread.thread_id, limit=STATUS_PAGE)
    return thread_status(page.items)


@router.post("/threads")
async def create_thread(
    gateway: GatewayDep,
    user: UserDep,
    body: Annotated[CreateThread, Depends(body_of(CreateThread))],
) -> Response:
    """Create a thread for the caller; `metadata` is kept. A taken ID answers 409,
    unless `if_exists="do_nothing"` and the caller owns it."""
    for name in ("ttl", "supersteps"):
        if getattr(body, name) is not None:
            detail = f"threads.create with {name!r} is not supported"
            raise errors.Problem(422, "unsupported", detail)
    metadata = dict(body.metadata or {})
    if body.graph_id is not None:
        metadata.setdefault("graph_id", body.graph_id)
    thread_id = new_thread_id() if not body.thread_id else check_thread_id(body.thread_id)
    try:
        thread = await gateway.store.create_thread(thread_id, user, metadata)
    except ThreadExists as exc:
        existing = await find_thread(gateway, thread_id)
        if body.if_exists == "do_nothing" and existing is not None and existing.owner == user:
            return JsonBody(thread_body(existing, await _status(gateway, existing)))
        raise errors.Problem(
            409, "thread_exists", "that thread ID is taken", thread_id=thread_id
        ) from exc
    return JsonBody(thread_body(thread))


@router.get("/threads/{thread_id}")
async def get_thread(gateway: GatewayDep, user: UserDep, thread_id: str) -> Response:
    """The caller's thread with its newest run's values; 404 for a missing or foreign one."""
    thread = await readable_thread(gateway, user, thread_id)
    runs = (await gateway.store.list_runs(thread.thread_id, limit=STATUS_PAGE)).items
    values = (await snapshots(gateway, runs[:1])).get(runs[0].run_id) if runs else None
    return JsonBody(thread_body(thread, thread_status(runs), values))


@router.get("/threads/{thread_id}/state")
async def get_state(gateway: GatewayDep, user: UserDep, thread_id: str) -> Response:
    """The thread's state: the values of its newest run (`{}` before the first)."""
    thread = await readable_thread(gateway, user, thread_id)
    runs = (await gateway.store.list_runs(thread.thread_id, limit=2)).items
    if not runs:
        return JsonBody(state_body(thread, None, None))
    values = await snapshots(gateway, runs[:1])
    parent = runs[1] if len(runs) > 1 else None
    return JsonBody(state_body(thread, runs[0], values[runs[0].run_id], parent))


@router.post("/threads/{thread_id}/history")
async def get_history(
    gateway: GatewayDep,
    user: UserDep,
    thread_id: str,
    body: Annotated[History, Depends(body_of(History))],
) -> Response:
    """The thread's states, newest first: one per run, the values after it."""
    thread = await readable_thread(gateway, user, thread_id)
    limit = min(max(body.limit, 0), MAX_PAGE)
    runs = (await gateway.store.list_runs(thread.thread_id, limit=limit + 1)).items
    values = await snapshots(gateway, runs[:limit])
    states = [
        state_body(thread, run, values[run.run_id], runs[i + 1] if i + 1 < len(runs) else None)
        for i, run in enumerate(runs[:limit])
    ]
    return JsonBody(states)


@router.post("/threads/search")
async def search_threads(
    gateway: GatewayDep,
    user: UserDep,
    body: Annotated[SearchThreads, Depends(body_of(SearchThreads))],
) -> Response:
    """The caller's threads, newest first, filtered by `metadata` and `status`."""
    if body.limit < 0 or body.offset < 0:
        raise errors.Problem(422, "invalid_request", "limit and offset must not be negative")
    wanted = body.metadata or {}
    found: list[dict[str, Any]] = []
    before: str | None = None
    while len(found) < body.offset + body.limit:
        page = await gateway.store.list_threads(user, limit=MAX_PAGE, before=before)
        for thread in page.items:
            if any(thread.metadata.get(k) != v for k, v in wanted.items()):
                continue
            status = await _status(gateway, thread)
            if body.status is None or body.status == status:
                found.append(thread_body(thread, status))
        if page.next_before is None:
            break
        before = page.next_before
    return JsonBody(found[body.offset : body.offset + body.limit])
