"""Runs on a thread: create, stream, wait, get, list, join, join_stream, cancel.

A run is a threadwire run (`Supervisor.submit`), so it is persisted, resumable and
isolated like any other; this module only speaks LangGraph's protocol around it.
Choices where LangGraph leaves room are in docs/langgraph.md and decisions 0090-0094.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query
from starlette.responses import Response, StreamingResponse

from threadwire.events import dumps
from threadwire.gateway import errors, logs
from threadwire.gateway.http import JsonBody
from threadwire.gateway.node import Gateway
from threadwire.lg.deps import (
    PREFIX,
    GatewayDep,
    LgState,
    StateDep,
    UserDep,
    body_of,
    check_thread_id,
    find_thread,
    readable_run,
    readable_thread,
    resolve_assistant,
)
from threadwire.lg.modes import (
    CUSTOM,
    DEFAULT_MODES,
    JOIN_FALLBACK_MODES,
    RunView,
    UnsupportedMode,
    message_text,
    parse_modes,
)
from threadwire.lg.schemas import THREADWIRE_STATUS, RunCreate, run_body
from threadwire.lg.stream import (
    SSE_MEDIA_TYPE,
    RunStream,
    empty_stream,
    final_values,
    is_graph_run,
    scan_run,
)
from threadwire.runtime import RunFinished
from threadwire.runtime.errors import CancelNotDelivered
from threadwire.store import NotFound, RunRecord, ThreadExists, ThreadRecord
from threadwire.store.base import MAX_PAGE

WAIT_KEEPALIVE: Final = 5.0
"""Seconds between the blank lines that keep a runs.wait answer alive (as LangGraph)."""
TRUE: Final = frozenset({"1", "true", "yes"})

router = APIRouter(prefix=PREFIX, tags=["langgraph"])
RunCreateBody = Annotated[RunCreate, Depends(body_of(RunCreate))]


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked request to start a run: nothing is created before `_start`."""

    thread: ThreadRecord | None
    thread_id: str
    agent: str
    input: dict[str, Any]
    modes: tuple[str, ...]
    graph: bool
    cancel_on_disconnect: bool


def _modes_or_422(raw: str | list[str] | None) -> tuple[str, ...]:
    try:
        return parse_modes(raw)
    except UnsupportedMode as exc:
        raise errors.Problem(422, "unsupported_stream_mode", str(exc)) from exc


async def _plan(gateway: Gateway, user: str, raw_thread: str, body: RunCreate) -> Plan:
    """Check everything a new run needs, so a refusal leaves nothing behind."""
    option = body.unsupported()
    if option is not None:
        raise errors.Problem(
            422, "unsupported", f"{option!r} is not supported by threadwire's LangGraph API"
        )
    thread_id = check_thread_id(raw_thread)
    thread = await find_thread(gateway, thread_id)
    if thread is not None and thread.owner != user:
        raise errors.not_found("thread", raw_thread)
    if thread is None and body.if_not_exists != "create":
        raise errors.not_found("thread", raw_thread)
    agent = resolve_assistant(gateway, body.assistant_id)
    modes = _modes_or_422(body.stream_mode) or DEFAULT_MODES
    spec = gateway.registry.get(agent)
    graph = getattr(spec.fn, "is_langgraph_graph", False) is True
    input = dict(body.input or {})
    if not graph and "prompt" not in input and (text := message_text(input)) is not None:
        input["prompt"] = text  # a chat front end sends messages; threadwire agents a prompt
    spec.check_input(input)
    return Plan(thread, thread_id, agent, input, modes, graph, body.on_disconnect == "cancel")


async def _ensure_thread(gateway: Gateway, user: str, plan: Plan) -> ThreadRecord:
    """The run's thread; created for the caller when `if_not_exists="create"` asked."""
    if plan.thread is not None:
        return plan.thread
    try:
        return await gateway.store.create_thread(plan.thread_id, user, {})
    except ThreadExists:
        found = await find_thread(gateway, plan.thread_id)
        if found is None or found.owner != user:
            raise errors.not_found("thread", plan.thread_id) from None
        return found


async def _start(
    gateway: Gateway, state: LgState, user: str, thread: ThreadRecord, plan: Plan
) -> RunRecord:
    with logs.bound(thread_id=thread.thread_id):
        run = await gateway.supervisor.submit(
            user_id=user, thread_id=thread.thread_id, agent=plan.agent, input=plan.input
        )
    state.remember_modes(run.run_id, plan.modes)
    return run


def _run_path(run: RunRecord) -> str:
    return f"/threads/{run.thread_id}/runs/{run.run_id}"


def _stream_headers(run: RunRecord, modes: tuple[str, ...], cancel: bool) -> dict[str, str]:
    """LangGraph's stream headers; `Location` carries the modes, so the SDK's reconnect
    (a GET of it with `Last-Event-ID`, without the original query) asks for the same."""
    query: list[tuple[str, str]] = [("stream_mode", mode) for mode in modes]
    if cancel:
        query.append(("cancel_on_disconnect", "true"))
    return {
        "Location": f"{_run_path(run)}/stream?{urlencode(query)}",
        "Content-Location": _run_path(run),
    }


def _cancel_later(gateway: Gateway, state: LgState, run_id: str) -> None:
    async def cancel() -> None:
        try:
            await gateway.supervisor.cancel(run_id)
        except (RunFinished, NotFound):
            pass
        except CancelNotDelivered as exc:  # cluster mode: nobody to hand the error to
            logging.getLogger("threadwire.lg").warning("on_disconnect cancel: %s", exc.message)

    state.spawn(cancel())


def _new_stream(
    gateway: Gateway, state: LgState, user: str, modes: tuple[str, ...], cancel: bool
) -> RunStream:
    if not gateway.user_connections.acquire(user):
        raise errors.Problem(429, "too_many_connections", "too many open streams for this user")
    on_abandon = (lambda run_id: _cancel_later(gateway, state, run_id)) if cancel else None
    return RunStream(gateway, user, modes, on_abandon=on_abandon)


@router.post("/threads/{thread_id}/runs")
async def create_run(
    gateway: GatewayDep, state: StateDep, user: UserDep, thread_id: str, body: RunCreateBody
) -> Response:
    """Start a run in the background; answers the Run (`pending`)."""
    plan = await _plan(gateway, user, thread_id, body)
    run = await _start(gateway, state, user, await _ensure_thread(gateway, user, plan), plan)
    return JsonBody(run_body(run), headers={"Content-Location": _run_path(run)})


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=Response,
    responses={200: {"content": {SSE_MEDIA_TYPE: {}}, "description": "the run's parts"}},
)
async def stream_run(
    gateway: GatewayDep, state: StateDep, user: UserDep, thread_id: str, body: RunCreateBody
) -> Response:
    """Start a run and stream it: one `metadata` part, then the parts of its events,
    until its terminal event. Disconnecting does not cancel it (unless `on_disconnect`
    is `cancel`)."""
    plan = await _plan(gateway, user, thread_id, body)
    stream = _new_stream(gateway, state, user, plan.modes, plan.cancel_on_disconnect)
    try:
        thread = await _ensure_thread(gateway, user, plan)
        sub = await stream.subscribe(thread.thread_id, None)  # before the run's first event
        run = await _start(gateway, state, user, thread, plan)
    except BaseException:
        stream.release()
        raise
    view = RunView(run, graph=plan.graph)
    stream.bind(run.run_id, view, metadata_after=sub.head_seq - 1, started=False)
    return stream.response(_stream_headers(run, plan.modes, plan.cancel_on_disconnect))


def _wait_body(
    gateway: Gateway, state: LgState, run: RunRecord, *, after: int, cancel: bool
) -> AsyncIterator[bytes]:
    """The final values once the run ends, blank lines until then (kept alive)."""

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.get_running_loop().create_task(final_values(gateway, run, after=after))
        finished = False
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WAIT_KEEPALIVE)
                if done:
                    finished = True
                    yield dumps(task.result())
                    return
                yield b"\n"
        finally:
            if not finished:
                task.cancel()
                if cancel:
                    _cancel_later(gateway, state, run.run_id)

    return body()


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(
    gateway: GatewayDep, state: StateDep, user: UserDep, thread_id: str, body: RunCreateBody
) -> Response:
    """Start a run and answer its final values (`{"messages", "result"}`), or
    `{"__error__": {...}}` when it failed."""
    plan = await _plan(gateway, user, thread_id, body)
    thread = await _ensure_thread(gateway, user, plan)
    head = await gateway.store.head_seq(thread.thread_id)
    run = await _start(gateway, state, user, thread, plan)
    headers = {"Location": f"{_run_path(run)}/join", "Content-Location": _run_path(run)}
    content = _wait_body(gateway, state, run, after=head, cancel=plan.cancel_on_disconnect)
    return StreamingResponse(content, media_type="application/json", headers=headers)


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    gateway: GatewayDep,
    user: UserDep,
    thread_id: str,
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: str | None = None,
) -> Response:
    """The thread's runs, newest first (`limit`, `offset`, LangGraph `status`)."""
    thread = await readable_thread(gateway, user, thread_id)
    wanted = None
    if status is not None:
        wanted = THREADWIRE_STATUS.get(status)
        if wanted is None:
            raise errors.Problem(422, "invalid_request", f"unknown run status {status[:40]!r}")
    found: list[RunRecord] = []
    before: str | None = None
    while len(found) < offset + limit:
        page = await gateway.store.list_runs(thread.thread_id, limit=MAX_PAGE, before=before)
        found.extend(run for run in page.items if wanted is None or run.status == wanted)
        if page.next_before is None:
            break
        before = page.next_before
    return JsonBody([run_body(run) for run in found[offset : offset + limit]])


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(gateway: GatewayDep, user: UserDep, thread_id: str, run_id: str) -> Response:
    """The run; `run_id` may be in any enabled format, the answer's is canonical."""
    thread = await readable_thread(gateway, user, thread_id)
    return JsonBody(run_body(await readable_run(gateway, thread, run_id)))


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    gateway: GatewayDep, state: StateDep, user: UserDep, thread_id: str, run_id: str
) -> Response:
    """Wait for the run to end; its final values, like runs.wait."""
    thread = await readable_thread(gateway, user, thread_id)
    run = await readable_run(gateway, thread, run_id)
    headers = {"Location": f"{_run_path(run)}/join", "Content-Location": _run_path(run)}
    content = _wait_body(gateway, state, run, after=0, cancel=False)
    return StreamingResponse(content, media_type="application/json", headers=headers)


def _last_event_id(value: str | None) -> int | None:
    """The seq a stream resumes after: an integer from -1 (from the start) up."""
    text = (value or "").strip()
    if not text:
        return None
    digits = text[1:] if text.startswith("-") else text
    if not digits.isdigit() or len(digits) > 19 or int(text) < -1:
        raise errors.Problem(
            422, "invalid_request", f"Last-Event-ID must be a seq (-1 or more), not {text[:40]!r}"
        )
    return int(text)


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_class=Response,
    responses={200: {"content": {SSE_MEDIA_TYPE: {}}, "description": "the run's parts"}},
)
async def join_stream(
    gateway: GatewayDep,
    state: StateDep,
    user: UserDep,
    thread_id: str,
    run_id: str,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Join a run's stream: after `Last-Event-ID`, exactly the parts that followed it
    (stored, then live); without it, only new parts. Ends after the run's terminal
    event; a run that ended at or before that point gives an empty stream."""
    thread = await readable_thread(gateway, user, thread_id)
    run = await readable_run(gateway, thread, run_id)
    modes = _modes_or_422(stream_mode) or state.modes.get(run.run_id) or JOIN_FALLBACK_MODES
    after = _last_event_id(last_event_id)
    if after is not None and after > await gateway.store.head_seq(thread.thread_id):
        raise errors.Problem(422, "invalid_request", "Last-Event-ID is beyond the thread's events")
    cancel = (cancel_on_disconnect or "").strip().lower() in TRUE
    stream = _new_stream(gateway, state, user, modes, cancel)
    try:
        sub = await stream.subscribe(thread.thread_id, None if after is None else max(after, 0))
        bound = sub.head_seq if after is None else after
        view = RunView(run, graph=is_graph_run(gateway, run))
        derived = any(mode != CUSTOM for mode in modes)
        scanned = await scan_run(
            gateway.store, thread.thread_id, run.run_id, upto=bound, view=view if derived else None
        )
    except BaseException:
        stream.release()
        raise
    headers = _stream_headers(run, modes, cancel)
    if scanned.terminal_seq is not None:
        stream.release()
        return StreamingResponse(empty_stream(), media_type=SSE_MEDIA_TYPE, headers=headers)
    stream.bind(run.run_id, view, metadata_after=bound, started=scanned.first_seq is not None)
    return stream.response(headers)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    gateway: GatewayDep,
    state: StateDep,
    user: UserDep,
    thread_id: str,
    run_id: str,
    wait: str = "0",
    action: str = "interrupt",
) -> Response:
    """Cancel a pending or running run: 202 once it is `interrupted`; with `wait`, 200
    and its values. A finished run, or one being cancelled, answers 409."""
    if action != "interrupt":
        raise errors.Problem(422, "unsupported", f"cancel action {action[:40]!r} is not supported")
    thread = await readable_thread(gateway, user, thread_id)
    run = await readable_run(gateway, thread, run_id)
    if run.finished:
        raise RunFinished(run.run_id, run.status)
    if run.run_id in state.cancelling:
        raise errors.Problem(409, "run_finished", f"run {run.run_id!r} is already being cancelled")
    state.cancelling.add(run.run_id)
    try:
        with logs.bound(thread_id=run.thread_id, run_id=run.run_id):
            final = await gateway.supervisor.cancel(run.run_id)
    except NotFound as exc:
        raise errors.not_found("run", run_id) from exc
    finally:
        state.cancelling.discard(run.run_id)
    if wait.strip().lower() not in TRUE:
        return Response(status_code=202)
    headers = {"Location": f"{_run_path(final)}/join", "Content-Location": _run_path(final)}
    return JsonBody(await final_values(gateway, final), headers=headers)


_STATELESS = "runs without a thread are not supported: create a thread, then run on it"


@router.post("/runs")
@router.post("/runs/stream")
@router.post("/runs/wait")
async def stateless_run(user: UserDep) -> Response:
    """Stateless runs (`thread_id=None`) are refused with a 422 saying so."""
    raise errors.Problem(422, "unsupported", _STATELESS)
