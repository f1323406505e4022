"""What every /lg handler needs: the caller (from `x-api-key`), the node, the per-node
state of the LangGraph API, and the caller's threads and runs by their path IDs.

The gateway middleware authenticates `/v1` only; /lg speaks LangGraph's auth header,
`x-api-key`, which carries a threadwire user token (a bearer `Authorization` header is
accepted too). Missing or bad: 401; a service token: 403. Checked before the body.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar
from weakref import WeakKeyDictionary

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from threadwire.events import utcnow
from threadwire.gateway import errors, metrics
from threadwire.gateway.auth import AuthError, bearer_token, verify_token
from threadwire.gateway.node import Gateway
from threadwire.ids import InvalidIdError, validate_thread_id
from threadwire.lg.schemas import assistant_id
from threadwire.store import RunRecord, ThreadRecord

PREFIX: Final = "/lg"
"""Where the LangGraph API is mounted; paths below it are LangGraph's own."""
REMEMBERED_RUNS: Final = 10_000

M = TypeVar("M", bound=BaseModel)
"""Runs whose stream modes a node remembers for join_stream without `stream_mode`."""


@dataclass(eq=False)
class LgState:
    """Per-node state of the LangGraph API: what a run was streamed with, cancels in
    flight, background tasks (cancel on disconnect)."""

    started_at: datetime = field(default_factory=utcnow)
    modes: OrderedDict[str, tuple[str, ...]] = field(default_factory=OrderedDict)
    cancelling: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def remember_modes(self, run_id: str, modes: tuple[str, ...]) -> None:
        """Keep the modes a run was started with (the newest REMEMBERED_RUNS runs)."""
        self.modes[run_id] = modes
        self.modes.move_to_end(run_id)
        while len(self.modes) > REMEMBERED_RUNS:
            self.modes.popitem(last=False)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background, kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


_STATES: WeakKeyDictionary[Gateway, LgState] = WeakKeyDictionary()


async def get_gateway(request: Request) -> Gateway:
    """The node serving this request."""
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_state(gateway: Annotated[Gateway, Depends(get_gateway)]) -> LgState:
    """This node's LangGraph API state."""
    state = _STATES.get(gateway)
    if state is None:
        state = _STATES[gateway] = LgState()
    return state


async def get_user(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The calling user: `x-api-key` (or a bearer token) must be a valid user token."""
    token = x_api_key.strip() if x_api_key else bearer_token(authorization, None)
    if not token:
        metrics.refusals.labels(metrics.REASON_UNAUTHORIZED).inc()
        raise errors.unauthorized("an x-api-key header with a threadwire user token is required")
    try:
        principal = verify_token(gateway.secret, token)
    except AuthError as exc:
        metrics.refusals.labels(metrics.REASON_UNAUTHORIZED).inc()
        raise errors.unauthorized(str(exc)) from exc
    if principal.is_service:
        metrics.refusals.labels(metrics.REASON_FORBIDDEN).inc()
        raise errors.forbidden("a user token is required here, not a service token")
    return principal.subject


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
StateDep = Annotated[LgState, Depends(get_state)]
UserDep = Annotated[str, Depends(get_user)]


def body_of(model: type[M]) -> Callable[..., Awaitable[M]]:
    """A dependency reading the JSON body into `model` only after the caller is
    authenticated (a body FastAPI parsed itself would be refused before the 401)."""

    async def parse(request: Request, user: UserDep) -> M:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise errors.Problem(422, "invalid_request", f"the body is not JSON: {exc}") from exc
        try:
            return model.model_validate(data if data is not None else {})
        except ValidationError as exc:
            located = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
            raise RequestValidationError(located) from exc

    return parse


def bad_id(exc: InvalidIdError, field: str) -> errors.Problem:
    """422 for an ID that cannot name anything (LangGraph answers 422 to a bad UUID)."""
    return errors.Problem(422, exc.code, str(exc), field=field)


def check_thread_id(raw: str) -> str:
    """`raw` if it is in the thread-ID grammar; else a 422 with the ID error code."""
    try:
        return validate_thread_id(raw)
    except InvalidIdError as exc:
        raise bad_id(exc, "thread_id") from exc


def uuid_twin(thread_id: str) -> str | None:
    """The other spelling of a UUID thread ID (32 hex digits <-> dashed), else None.

    >>> uuid_twin("0196d3c1a2b47e0f9c3d5a7b8e9f0a1b")
    '0196d3c1-a2b4-7e0f-9c3d-5a7b8e9f0a1b'
    """
    if len(thread_id) not in (32, 36):
        return None
    try:
        value = uuid.UUID(thread_id)
    except ValueError:
        return None
    twin = value.hex if len(thread_id) == 36 else str(value)
    return twin if twin != thread_id else None


async def find_thread(gateway: Gateway, thread_id: str) -> ThreadRecord | None:
    """The thread named `thread_id`, or by the other spelling of the same UUID."""
    thread = await gateway.store.get_thread(thread_id)
    twin = uuid_twin(thread_id) if thread is None else None
    if twin is not None:
        thread = await gateway.store.get_thread(twin)
    return thread


async def readable_thread(gateway: Gateway, user: str, raw: str) -> ThreadRecord:
    """The caller's thread; 404 for a missing and a foreign one alike."""
    thread = await find_thread(gateway, check_thread_id(raw))
    if thread is None or thread.owner != user:
        raise errors.not_found("thread", raw)
    return thread


async def readable_run(gateway: Gateway, thread: ThreadRecord, raw: str) -> RunRecord:
    """A run of `thread`, named in any enabled run-ID format; 422 when the ID does not
    parse, 404 when it names no run of this thread."""
    store = gateway.store
    try:
        await store.resolve_thread(raw)
    except InvalidIdError as exc:
        if exc.code == "unknown_run":
            raise errors.not_found("run", raw) from exc
        raise bad_id(exc, "run_id") from exc
    run = await store.get_run(raw)
    if run is None or run.thread_id != thread.thread_id:
        raise errors.not_found("run", raw)
    return run


def resolve_assistant(gateway: Gateway, ident: str) -> str:
    """The agent an `assistant_id` names: its graph_id (agent name) or its UUID; 404."""
    registry = gateway.registry
    if ident in registry:
        return ident
    for name in registry.names():
        if assistant_id(name) == ident.lower():
            return name
    raise errors.Problem(
        404,
        "unknown_agent",
        f"no assistant {ident[:80]!r}: use an agent's name (graph_id) or its assistant_id",
        assistant_id=ident[:80],
    )
