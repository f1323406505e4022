"""The HTTP API of protocol spec section 4 (`/v1`), plus health, readiness and metrics.

Authentication happens earlier, in the gateway middleware (so a request without a
token gets 401 before its body is even read); handlers find the principal in
`request.state.principal`. Every refusal is a `Problem` (see errors.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from threadwire.events import dumps
from threadwire.gateway import errors, logs
from threadwire.gateway.auth import Principal
from threadwire.gateway.ingest_route import SERVICE_REQUIRED, ingest
from threadwire.gateway.limits import MAX_SEQ
from threadwire.gateway.node import Gateway
from threadwire.gateway.sse import SseStream
from threadwire.ids import InvalidIdError, new_thread_id, validate_thread_id
from threadwire.runtime.ingest import json_fault
from threadwire.store import RunRecord, ThreadExists, ThreadRecord
from threadwire.store.base import MAX_PAGE

DEFAULT_LIST_LIMIT: Final = 50
DEFAULT_EVENTS_LIMIT: Final = 100


class JsonBody(Response):
    """A JSON response rendered with the wire codec (compact, UTF-8)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class CreateThread(BaseModel):
    """Body of `POST /v1/threads`: both members optional."""

    model_config = ConfigDict(strict=True)
    thread_id: str | None = Field(default=None, description="bring your own ID (thread grammar)")
    metadata: dict[str, Any] | None = None


class StartRun(BaseModel):
    """Body of `POST /v1/threads/{thread_id}/runs`."""

    model_config = ConfigDict(strict=True)
    agent: str = Field(description="a registered agent, e.g. `demo`")
    input: dict[str, Any] | None = Field(default=None, description="the agent's input object")


class ThreadBody(BaseModel):
    """A thread as the API returns it."""

    thread_id: str
    owner: str
    created_at: str
    metadata: dict[str, Any]
    head_seq: int


class RunBody(BaseModel):
    """A run as the API returns it."""

    run_id: str
    thread_id: str
    agent: str
    status: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: Any
    error: dict[str, Any] | None


class RunStarted(BaseModel):
    """The answer to starting a run."""

    run_id: str
    thread_id: str
    status: str


class ThreadPage(BaseModel):
    """A page of threads, newest first."""

    threads: list[ThreadBody]
    next_before: str | None


class RunPage(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunBody]
    next_before: str | None


class EventPage(BaseModel):
    """A page of stored events in seq order."""

    events: list[dict[str, Any]]
    next_after_seq: int | None


class AgentBody(BaseModel):
    """A registered agent a run may name."""

    name: str
    description: str


class AgentList(BaseModel):
    """The agents this node runs, by name."""

    agents: list[AgentBody]


class Accepted(BaseModel):
    """Where each ingested event was stored, in the request's order."""

    accepted: list[dict[str, Any]]


async def get_gateway(request: Request) -> Gateway:
    """The node serving this request.

    The dependencies here are `async def` although they never wait: FastAPI runs a
    plain `def` dependency in a worker thread, a thread hand-off per request each.
    """
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_principal(request: Request) -> Principal:
    """The authenticated caller (the middleware has checked the token and its kind)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise errors.unauthorized()
    return principal


async def get_user(principal: Annotated[Principal, Depends(get_principal)]) -> str:
    """The calling user's ID."""
    if principal.is_service:
        raise errors.forbidden("a user token is required")
    return principal.subject


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
UserDep = Annotated[str, Depends(get_user)]
Limit = Annotated[int, Query(ge=1, description="page size; above 1000 means 1000")]

router = APIRouter(prefix="/v1")


def _thread_id(value: str, field: str = "thread_id") -> str:
    try:
        validate_thread_id(value)
    except InvalidIdError as exc:
        raise errors.invalid_id(exc, field) from exc
    return value


def _json_object(value: dict[str, Any] | None, field: str) -> dict[str, Any]:
    """A client's JSON object that can be stored and sent back (see `json_fault`); the
    parser accepts NaN and lone surrogates that the store and the wire refuse."""
    if value is None:
        return {}
    fault = json_fault(value)
    if fault is not None:
        raise errors.Problem(422, "invalid_request", f"{field} {fault}", field=field)
    return value


async def _readable_thread(gateway: Gateway, user: str, thread_id: str) -> ThreadRecord:
    thread = await gateway.store.get_thread(_thread_id(thread_id))
    if thread is None or thread.owner != user:
        raise errors.not_found("thread", thread_id)
    return thread


async def _readable_run(gateway: Gateway, user: str, run_id: str) -> RunRecord:
    store = gateway.store
    try:
        thread_id = await store.resolve_thread(run_id)
    except InvalidIdError as exc:
        if exc.code == "unknown_run":
            raise errors.not_found("run", run_id) from exc
        raise errors.invalid_id(exc, "run_id") from exc
    run = await store.get_run(run_id)
    thread = await store.get_thread(thread_id) if run is not None else None
    if run is None or thread is None or thread.owner != user:
        raise errors.not_found("run", run_id)
    return run


@router.post("/threads", status_code=201, response_model=ThreadBody)
async def create_thread(
    gateway: GatewayDep, user: UserDep, body: Annotated[CreateThread | None, Body()] = None
) -> Response:
    """Create a thread owned by the caller; `thread_id` optional (threadwire picks one)."""
    body = body or CreateThread()
    thread_id = new_thread_id() if body.thread_id is None else _thread_id(body.thread_id)
    metadata = _json_object(body.metadata, "metadata")
    try:
        thread = await gateway.store.create_thread(thread_id, user, metadata)
    except ThreadExists as exc:
        raise errors.Problem(
            409, "thread_exists", "that thread ID is taken", thread_id=thread_id
        ) from exc
    return JsonBody(thread.to_dict(), status_code=201)


@router.get("/threads", response_model=ThreadPage)
async def list_threads(
    gateway: GatewayDep,
    user: UserDep,
    limit: Limit = DEFAULT_LIST_LIMIT,
    before: str | None = None,
) -> Response:
    """The caller's threads, newest first; pass `next_before` as `before` for more."""
    page = await gateway.store.list_threads(user, limit=min(limit, MAX_PAGE), before=before)
    return JsonBody({"threads": [t.to_dict() for t in page.items], "next_before": page.next_before})


@router.get("/threads/{thread_id}", response_model=ThreadBody)
async def get_thread(gateway: GatewayDep, user: UserDep, thread_id: str) -> Response:
    """The thread, when the caller owns it (404 otherwise, whether it exists or not)."""
    return JsonBody((await _readable_thread(gateway, user, thread_id)).to_dict())


@router.get("/agents", response_model=AgentList)
async def list_agents(gateway: GatewayDep, user: UserDep) -> Response:
    """The registered agents, so clients can offer them (the first docstring line each)."""
    agents = []
    for name in sorted(gateway.registry.names()):
        doc = (getattr(gateway.registry.get(name).fn, "__doc__", None) or "").strip()
        agents.append({"name": name, "description": doc.splitlines()[0] if doc else ""})
    return JsonBody({"agents": agents})


@router.post("/threads/{thread_id}/runs", status_code=202, response_model=RunStarted)
async def start_run(gateway: GatewayDep, user: UserDep, thread_id: str, body: StartRun) -> Response:
    """Start a run of a registered agent on the thread; its events follow on the thread."""
    await _readable_thread(gateway, user, thread_id)
    run_input = _json_object(body.input, "input")
    with logs.bound(thread_id=thread_id):
        run = await gateway.supervisor.submit(
            user_id=user, thread_id=thread_id, agent=body.agent, input=run_input
        )
    return JsonBody(
        {"run_id": run.run_id, "thread_id": run.thread_id, "status": run.status},
        status_code=202,
    )


@router.get("/threads/{thread_id}/runs", response_model=RunPage)
async def list_runs(
    gateway: GatewayDep,
    user: UserDep,
    thread_id: str,
    limit: Limit = DEFAULT_LIST_LIMIT,
    before: str | None = None,
) -> Response:
    """The thread's runs, newest first, paged like threads."""
    await _readable_thread(gateway, user, thread_id)
    page = await gateway.store.list_runs(thread_id, limit=min(limit, MAX_PAGE), before=before)
    return JsonBody({"runs": [r.to_dict() for r in page.items], "next_before": page.next_before})


@router.get("/runs/{run_id}", response_model=RunBody)
async def get_run(gateway: GatewayDep, user: UserDep, run_id: str) -> Response:
    """The run, named in any enabled run-ID format; `run_id` in the answer is canonical."""
    return JsonBody((await _readable_run(gateway, user, run_id)).to_dict())


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=RunBody)
async def cancel_run(gateway: GatewayDep, user: UserDep, run_id: str) -> Response:
    """Cancel a queued or running run; a finished one answers 409 `run_finished`."""
    run = await _readable_run(gateway, user, run_id)
    with logs.bound(thread_id=run.thread_id, run_id=run.run_id):
        cancelled = await gateway.supervisor.cancel(run.run_id)
    return JsonBody(cancelled.to_dict(), status_code=202)


@router.get("/threads/{thread_id}/events", response_model=EventPage)
async def list_events(
    gateway: GatewayDep,
    user: UserDep,
    thread_id: str,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = DEFAULT_EVENTS_LIMIT,
) -> Response:
    """Stored events after `after_seq`; `next_after_seq` is null once the head is reached."""
    await _readable_thread(gateway, user, thread_id)
    limit = min(limit, MAX_PAGE)
    after_seq = min(after_seq, MAX_SEQ)
    events = await gateway.store.read_events(thread_id, after_seq=after_seq, limit=limit)
    next_after: int | None = None
    if len(events) == limit and events[-1].seq < await gateway.store.head_seq(thread_id):
        next_after = events[-1].seq
    body = b'{"events":[' + b",".join(e.to_json() for e in events) + b'],"next_after_seq":'
    body += dumps(next_after) + b"}"
    return Response(body, media_type="application/json")


@router.get(
    "/threads/{thread_id}/stream",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
async def stream_events(
    gateway: GatewayDep,
    user: UserDep,
    principal: Annotated[Principal, Depends(get_principal)],
    thread_id: str,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The thread's events as Server-Sent Events, from `Last-Event-ID`, else `after_seq`,
    else new events only. Browsers may pass the token as `access_token`."""
    await _readable_thread(gateway, user, thread_id)
    start = after_seq
    if last_event_id is not None and last_event_id.strip():
        start = _last_event_id(last_event_id)
    if start is not None:
        start = min(start, MAX_SEQ)
    if not gateway.user_connections.acquire(user):
        raise errors.Problem(429, "too_many_connections", "too many open streams for this user")
    stream = SseStream(gateway, user, expires_at=principal.expires_at)
    try:
        return await stream.open(thread_id, start)
    except BaseException:
        stream.release()
        raise


@router.post("/events", status_code=202, response_model=Accepted)
async def ingest_events(
    gateway: GatewayDep,
    principal: Annotated[Principal, Depends(get_principal)],
    body: Annotated[dict[str, Any], Body()],
) -> Response:
    """Store events from an external worker (service token); answers where each landed."""
    # IngestRoute answers the usual request (a JSON object sent as JSON) before the
    # router does (decision 0112); this handler sees the rest and declares the route.
    if not principal.is_service:
        raise errors.forbidden(SERVICE_REQUIRED)
    return Response(await ingest(gateway, body), 202, media_type="application/json")


def _last_event_id(value: str) -> int:
    text = value.strip()
    # isdigit() alone takes '²' (latin-1 superscripts reach us from raw header bytes),
    # which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise errors.Problem(
            422, "invalid_request", f"Last-Event-ID must be a seq, not {text[:40]!r}"
        )
    return int(text)


ops = APIRouter()


@ops.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers."""
    return JsonBody({"status": "ok"})


@ops.get("/readyz")
async def readyz(gateway: GatewayDep) -> Response:
    """Readiness: the store (and the bus) answer; 503 otherwise or while draining."""
    checks = await gateway.ready()
    ok = all(v == "ok" for v in checks.values())
    return JsonBody(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@ops.get("/metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    """Prometheus text format of the default registry (gateway, IDs, runtime)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
