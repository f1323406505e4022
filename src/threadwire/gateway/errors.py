"""RFC 9457 problem+json: the one shape of every HTTP error, always with a `code`.

Handlers turn every refusal (our own, FastAPI's validation, Starlette's routing, the
store's and runtime's, ID parse errors) into a problem, so bad input never becomes a
500 and clients branch on `code` alone.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from threadwire.events import dumps
from threadwire.ids import InvalidIdError
from threadwire.runtime.errors import IngestError, RuntimeRefusal
from threadwire.store import EventsGone, StoreError
from threadwire.store.base import EventExists, InvalidCursor, NotFound, RunEnded, RunExists

PROBLEM_JSON: Final = "application/problem+json"

_RUNTIME_STATUS: Final = {
    "unknown_agent": 422,
    "invalid_input": 422,
    "run_finished": 409,
    "run_elsewhere": 409,
    "shutting_down": 503,
    # A cancel the node executing the run did not answer (cluster mode, ADR 0065):
    "node_unreachable": 503,
    "node_timeout": 504,
    "node_error": 502,
}

logger = logging.getLogger("threadwire.gateway")


class Problem(Exception):
    """An HTTP refusal: status, machine-readable `code`, human `detail`, extra members."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **members: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.members = members

    def body(self) -> dict[str, Any]:
        """The problem object (RFC 9457 members, then `code`, then extension members)."""
        return {
            "type": "about:blank",
            "title": _title(self.status),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.members,
        }

    def response(self) -> Response:
        """The problem as an `application/problem+json` response."""
        return Response(
            dumps(self.body()), self.status, headers=self.headers, media_type=PROBLEM_JSON
        )


def not_found(kind: str, ident: str) -> Problem:
    """The one 404 for missing and foreign threads or runs alike (only the ID echoed)."""
    if kind == "thread":
        return Problem(404, "not_found", f"no thread {ident!r}", thread_id=ident)
    return Problem(404, "not_found", f"no run {ident!r}", run_id=ident)


def unauthorized(detail: str = "a valid bearer token is required") -> Problem:
    """401: no token, or a bad one."""
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="threadwire"'}
    )


def forbidden(detail: str) -> Problem:
    """403: the wrong kind of token (service where a user is needed, or the reverse)."""
    return Problem(403, "forbidden", detail)


def invalid_id(exc: InvalidIdError, field: str) -> Problem:
    """400 with the ID error code (`bad_charset`, `too_long`, ...)."""
    return Problem(400, exc.code, str(exc), field=field)


def gone(exc: EventsGone) -> Problem:
    """410: the asked-for events were pruned; `first_seq` is where a resume may start."""
    return Problem(410, "gone", str(exc), thread_id=exc.thread_id, first_seq=exc.first_seq)


def from_runtime(exc: RuntimeRefusal) -> Problem:
    """The HTTP form of a runtime refusal (unknown agent, invalid input, ingest, ...)."""
    if isinstance(exc, IngestError):
        members: dict[str, Any] = {} if exc.index is None else {"index": exc.index}
        return Problem(exc.status, exc.code, exc.message, **members)
    return Problem(_RUNTIME_STATUS.get(exc.code, 409), exc.code, exc.message)


def from_store(exc: StoreError) -> Problem:
    """The HTTP form of a store refusal that reached a handler unmapped."""
    if isinstance(exc, InvalidCursor):
        return Problem(422, "invalid_request", f"before: {exc}", field="before")
    if isinstance(exc, EventExists | RunExists | RunEnded):
        return Problem(409, exc.code, str(exc))
    if isinstance(exc, NotFound):
        return Problem(404, "not_found", "not found")
    return Problem(503, "unavailable", "the store refused the request; retry later")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        errors.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type"))})
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    return f"{where}: {first['msg']}", errors


def install(app: FastAPI) -> None:
    """Register the handlers that make every error a problem."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return exc.response()

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail, errors = _validation_detail(exc)
        return Problem(422, "invalid_request", detail, errors=errors).response()

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # FastAPI's answer to a body json.loads cannot read (not UTF-8, nested beyond
            # the parser's recursion limit, an integer over 4300 digits): the same 422 as
            # any other body that is not JSON.
            detail = "the body is not JSON: not UTF-8, nested too deeply, or too long a number"
            return Problem(422, "invalid_request", detail).response()
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        return Problem(exc.status_code, code, str(exc.detail), headers=headers).response()

    async def on_invalid_id(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidIdError)
        return invalid_id(exc, "id").response()

    async def on_runtime(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RuntimeRefusal)
        return from_runtime(exc).response()

    async def on_gone(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EventsGone)
        return gone(exc).response()

    async def on_store(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreError)
        if isinstance(exc, EventsGone):
            return gone(exc).response()
        return from_store(exc).response()

    async def on_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error answering %s %s", request.method, request.url.path)
        return Problem(500, "internal", "internal server error").response()

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(InvalidIdError, on_invalid_id)
    app.add_exception_handler(RuntimeRefusal, on_runtime)
    app.add_exception_handler(EventsGone, on_gone)
    app.add_exception_handler(StoreError, on_store)
    app.add_exception_handler(Exception, on_error)
