"""`create_app(settings)`: the FastAPI application of one node.

The lifespan opens the store, the bus and the supervisor and closes them in reverse.
One pure ASGI middleware in front of every HTTP request gives it a request ID
(`X-Request-ID`, bound into the logs), refuses new requests while draining (503),
authenticates `/v1` before any body is read (401/403), caps the body (413), and
counts and logs the answer. `POST /v1/events` comes to that middleware straight from
the app's front door and, in the usual case, is answered by `IngestRoute` without the
router (decision 0112).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI, WebSocket
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import threadwire
from threadwire.bus import Bus
from threadwire.config import Settings
from threadwire.gateway import errors, http, logs, metrics
from threadwire.gateway.auth import AuthError, bearer_token, verify_token
from threadwire.gateway.ingest_route import IngestRoute
from threadwire.gateway.node import Gateway
from threadwire.gateway.ws import serve_websocket
from threadwire.ids import new_request_id
from threadwire.runtime import AgentRegistry
from threadwire.store import Store

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
CLIENT_CLOSED: Final = 499
"""The status logged and counted for a request whose client left before its body was
complete (nginx's "client closed request"): nothing of it is parsed, nothing answered."""

access_log = logging.getLogger("threadwire.access")
logger = logging.getLogger("threadwire.gateway")


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    registry: AgentRegistry | None = None,
) -> FastAPI:
    """The ASGI app of one node; `app.state.gateway` is its `Gateway`.

    `store`, `bus` and `registry` replace the ones `settings` would create (tests).
    """
    settings = settings or Settings.from_env()
    gateway = Gateway(settings, store=store, bus=bus, registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = GatewayApp(
        title="threadwire",
        version=threadwire.__version__,
        summary="Run AI agents and deliver every live event to the right user, in order.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    errors.install(app)
    app.include_router(http.router)
    app.include_router(http.ops)
    from threadwire.lg.router import router as lg_router  # imports the gateway: not at the top

    app.include_router(lg_router)

    @app.websocket("/v1/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await serve_websocket(gateway, websocket)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return RedirectResponse("/docs")

    _mount_web_page(app)
    app.lean_ingest = IngestRoute(app, http.router)
    app.add_middleware(GatewayMiddleware, gateway=gateway, ingest=app.lean_ingest)
    return app


class GatewayApp(FastAPI):
    """FastAPI, with a front door for `POST /v1/events`: straight to the gateway
    middleware, past FastAPI's outer layers (error, telemetry and body-limit
    middleware, none of which acts on a request the gateway middleware answers)."""

    lean_ingest: IngestRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lean = self.lean_ingest
        if lean is not None and scope["type"] == "http" and lean.matches(scope):
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            if lean.entry is not None:
                if self.root_path:
                    scope["root_path"] = self.root_path
                scope["app"] = self
                await lean.entry(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _mount_web_page(app: FastAPI) -> None:
    """Serve the browser page (`threadwire.web`) at `/` when this build ships it;
    otherwise `/` leads to the API docs."""
    try:
        from threadwire import web
    except ImportError:
        return
    mount = getattr(web, "mount", None)
    if callable(mount):
        mount(app)


class GatewayMiddleware:
    """Request ID, draining, authentication, body cap, metrics and access log.

    With `ingest`, a `POST /v1/events` whose body has been read goes to it first.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway, ingest: IngestRoute | None = None) -> None:
        self.app = app
        self.gateway = gateway
        self.ingest = ingest
        if ingest is not None:
            ingest.entry = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
                metrics.http_request_seconds.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - start
                )
            await send(message)

        with logs.bound(request_id=request_id):
            try:
                await self._handle(scope, receive, send_with_id)
            except _ClientGone:
                status = CLIENT_CLOSED
            except Exception:
                if started:
                    raise
                # Answered here rather than by Starlette's outermost handler, whose
                # response would bypass send_with_id and so lack X-Request-ID: the one
                # answer a bug report most needs it on.
                logger.exception("unhandled error answering %s %s", scope["method"], scope["path"])
                internal = errors.Problem(500, "internal", "internal server error")
                await internal.response()(scope, receive, send_with_id)
            finally:
                route = _route(scope)
                metrics.http_requests.labels(scope["method"], route, str(status)).inc()
                access_log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "ms": round((time.perf_counter() - start) * 1000, 2),
                    },
                )

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        if gateway.draining:
            metrics.refusals.labels(metrics.REASON_SHUTTING_DOWN).inc()
            problem = errors.Problem(503, "shutting_down", "the server is shutting down")
            await problem.response()(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/v1/"):
            refusal = self._authenticate(scope, path)
            if refusal is not None:
                await refusal.response()(scope, receive, send)
                return
        if scope["method"] in _BODY_METHODS:
            body = await _read_body(scope, receive, gateway.settings.max_body_bytes)
            if body is None:
                metrics.refusals.labels(metrics.REASON_BODY_TOO_LARGE).inc()
                limit = gateway.settings.max_body_bytes
                problem = errors.Problem(413, "too_large", f"the body is over {limit} bytes")
                await problem.response()(scope, receive, send)
                return
            ingest = self.ingest
            if ingest is not None and ingest.matches(scope):
                if await ingest.answer(gateway, scope, body, receive, send):
                    return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope, path: str) -> errors.Problem | None:
        headers = dict(scope.get("headers") or ())
        authorization = headers.get(b"authorization")
        query_token = None
        if path.endswith("/stream") and scope["method"] == "GET":
            query_token = _query_param(scope, "access_token")
        token = bearer_token(
            authorization.decode("latin-1") if authorization is not None else None, query_token
        )
        if token is None:
            metrics.refusals.labels(metrics.REASON_UNAUTHORIZED).inc()
            return errors.unauthorized()
        try:
            principal = verify_token(self.gateway.secret, token)
        except AuthError as exc:
            metrics.refusals.labels(metrics.REASON_UNAUTHORIZED).inc()
            return errors.unauthorized(str(exc))
        wants_service = path == "/v1/events"
        if principal.is_service != wants_service:
            metrics.refusals.labels(metrics.REASON_FORBIDDEN).inc()
            what = "a service token (scope events:write)" if wants_service else "a user token"
            return errors.forbidden(f"{what} is required here")
        scope.setdefault("state", {})["principal"] = principal
        return None


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _query_param(scope: Scope, name: str) -> str | None:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    values = [value for key, value in parse_qsl(raw) if key == name]
    return values[0] if values else None


class _ClientGone(Exception):
    """The client disconnected before the whole body arrived."""


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is (or announces to be) over `limit` bytes.

    Raises _ClientGone when the client leaves first: a truncated body is never handed
    on, where a prefix that happens to be JSON would be taken for the request.
    """
    for name, value in scope.get("headers") or ():
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the real messages."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
