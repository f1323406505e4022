"""Assistants: every registered agent is one, under a stable UUID (assistants.search,
assistants.get)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from threadwire.gateway.http import JsonBody
from threadwire.lg.deps import PREFIX, GatewayDep, StateDep, UserDep, body_of, resolve_assistant
from threadwire.lg.schemas import SearchAssistants, assistant_body

router = APIRouter(prefix=PREFIX, tags=["langgraph"])


def _matches(body: dict[str, Any], query: SearchAssistants) -> bool:
    if query.graph_id is not None and body["graph_id"] != query.graph_id:
        return False
    if query.name is not None and query.name.lower() not in body["name"].lower():
        return False
    metadata = query.metadata or {}
    return all(body["metadata"].get(key) == value for key, value in metadata.items())


@router.post("/assistants/search")
async def search_assistants(
    gateway: GatewayDep,
    state: StateDep,
    user: UserDep,
    query: Annotated[SearchAssistants, Depends(body_of(SearchAssistants))],
) -> Response:
    """The registered agents as assistants, by name; honours `graph_id`, `name`,
    `metadata`, `limit`, `offset`, `sort_order`."""
    found = [assistant_body(name, state.started_at) for name in gateway.registry.names()]
    found = [body for body in found if _matches(body, query)]
    if query.sort_order == "desc":
        found.reverse()
    page = found[query.offset : query.offset + query.limit]
    headers = {"X-Pagination-Total": str(len(found))}
    if query.offset + query.limit < len(found):
        headers["X-Pagination-Next"] = str(query.offset + query.limit)
    return JsonBody(page, headers=headers)


@router.get("/assistants/{assistant_id}")
async def get_assistant(
    gateway: GatewayDep, state: StateDep, user: UserDep, assistant_id: str
) -> Response:
    """One assistant, by its UUID or its graph_id (the agent's name); 404 otherwise."""
    return JsonBody(assistant_body(resolve_assistant(gateway, assistant_id), state.started_at))
