"""`POST /v1/events` without FastAPI's router: the hot path of ingest (decision 0112).

`GatewayMiddleware` has given the request its ID, authenticated it, checked the token's
kind and read the capped body by the time it hands a `POST /v1/events` to `IngestRoute`.
What FastAPI does next (match the route, parse, solve dependencies, validate, map
exceptions, render) cost workers more CPU than the ingest itself, so `IngestRoute` does
the same for the one shape producers send, a JSON object sent as JSON: it parses with
the same `json.loads` FastAPI uses, calls the same `ingest`, and maps refusals with the
app's own exception handlers. Any other body (none, another content type, one
`json.loads` refuses, JSON that is not an object) goes to the FastAPI route in http.py
unchanged (the middleware passes it on), which answers as it always has; that route
also keeps the OpenAPI entry.
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threadwire.events import dumps
from threadwire.gateway import errors, metrics
from threadwire.gateway.auth import Principal
from threadwire.ids import InvalidIdError
from threadwire.runtime.errors import IngestError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from threadwire.gateway.node import Gateway

INGEST_PATH: Final = "/v1/events"
SERVICE_REQUIRED: Final = "a service token (scope events:write) is required"
_JSON: Final = b"application/json"

Handler = Callable[[Request, Exception], "Response | Awaitable[Response]"]


async def ingest(gateway: Gateway, body: dict[str, Any]) -> bytes:
    """Store the events of one request's JSON object; the 202 answer's body.

    Shared by the lean path and the FastAPI route, so both store and answer alike.
    """
    if "events" in body:
        events, key = body["events"], body.get("idempotency_key")
    else:
        key = body.get("idempotency_key")
        events = [{k: v for k, v in body.items() if k != "idempotency_key"}]
    try:
        stored = await gateway.ingestor.ingest(events, idempotency_key=key)
    except (IngestError, InvalidIdError):
        metrics.refusals.labels(metrics.REASON_INGEST).inc()
        raise
    return dumps(
        {
            "accepted": [
                {"event_id": e.event_id, "thread_id": e.thread_id, "run_id": e.run_id, "seq": e.seq}
                for e in stored
            ]
        }
    )


class IngestRoute:
    """Answers `POST /v1/events` for `GatewayMiddleware` once it has read the body.

    `entry` is the gateway middleware that hands requests here (it binds itself when
    the app's middleware stack is built), so the app can send ingest requests straight
    to it, past FastAPI's outer layers.
    """

    def __init__(self, app: FastAPI, router: APIRouter) -> None:
        self.app = app
        self.route = _find_route(router)
        self.entry: ASGIApp | None = None

    @staticmethod
    def matches(scope: Scope) -> bool:
        """True for the requests this route answers (an HTTP scope assumed)."""
        return bool(scope["path"] == INGEST_PATH and scope["method"] == "POST")

    async def answer(
        self, gateway: Gateway, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> bool:
        """Answer the request whose whole `body` has been read; False, having sent
        nothing, for a body FastAPI's route should judge."""
        request = _json_object(scope, body)
        if request is None:
            return False
        # What the router would have set: the metrics and access log name the route.
        scope["route"] = self.route
        try:
            principal = scope.get("state", {}).get("principal")
            if not isinstance(principal, Principal):
                raise errors.unauthorized()
            if not principal.is_service:
                raise errors.forbidden(SERVICE_REQUIRED)
            payload = await ingest(gateway, request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # the gateway middleware's 500, as for any route
            result = handler(Request(scope, receive), exc)
            response = await result if inspect.isawaitable(result) else result
            await response(scope, receive, send)
            return True
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(payload)).encode("latin-1")),
                    (b"content-type", _JSON),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return True

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's handler for `exc`, looked up as Starlette's ExceptionMiddleware does;
        None for what only the outermost (500) handler would take."""
        handlers: dict[Any, Handler] = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            handler = handlers.get(cls)
            if handler is not None:
                return handler
        return None


def _find_route(router: APIRouter) -> APIRoute:
    """The route's declaration in `router` (http.py's): the object the router puts in
    the scope, whose path names the route in metrics and logs."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == INGEST_PATH:
            if "POST" in (route.methods or ()):
                return route
    raise LookupError(f"the router declares no POST {INGEST_PATH} route")


def _json_object(scope: Scope, body: bytes) -> dict[str, Any] | None:
    """The body as FastAPI would hand it to the route, when it is a JSON object sent as
    JSON; None for anything else (FastAPI's own answer is wanted then)."""
    if not body:
        return None
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
            break  # the first one, as Starlette's Headers.get
    if not content_type or not _is_json(content_type):
        return None
    try:
        parsed = json.loads(body)  # what Starlette's Request.json does
    except Exception:
        return None
    return parsed if isinstance(parsed, dict) else None


@lru_cache(maxsize=64)
def _is_json(content_type: bytes) -> bool:
    """FastAPI's test of a Content-Type for a JSON body (application/json or +json)."""
    message = email.message.Message()
    message["content-type"] = content_type.decode("latin-1")
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")
