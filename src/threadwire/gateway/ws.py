"""The WebSocket protocol at `/v1/ws` (protocol spec 3).

One `Connection` per socket: a reader task answers client frames in order, a sender
task drains one bounded queue that carries both answers and events, so a client sees
`subscribed` before the thread's first event and `unsubscribed` after its last. The
hub pushes live events with `offer()`, which never waits: a full queue closes the
connection with 4008 and nobody else notices.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketState

from threadwire.events import dumps
from threadwire.gateway import logs, metrics
from threadwire.gateway.auth import AuthError, Principal, bearer_token, verify_token
from threadwire.gateway.hub import Subscription, Wire
from threadwire.gateway.limits import MAX_SEQ, TokenBucket
from threadwire.gateway.wsproto import frame_writer
from threadwire.ids import InvalidIdError, new_connection_id, validate_thread_id
from threadwire.store import EventsGone

if TYPE_CHECKING:
    from threadwire.gateway.node import Gateway

CLOSE_GOING_AWAY: Final = 1001
CLOSE_TOO_LARGE: Final = 1009
CLOSE_LAGGING: Final = 4008
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_TOO_MANY_CONNECTIONS: Final = 4429

CLOSE_TIMEOUT: Final = 5.0
"""Seconds to wait for a close frame to leave before giving up on a stuck peer."""

logger = logging.getLogger("threadwire.gateway")


class _EndOfPass:
    """Work deferred to the end of a pass of `loop`: frames offered to a connection
    during the pass go out in one write (one system call for a burst of events, such as
    a group commit's events of one thread), and deliveries update the counter once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._counter = metrics.events_delivered.labels("ws")
        self._delivered = 0
        self._corked: list[Connection] = []
        self._scheduled = False

    def delivered(self) -> None:
        self._delivered += 1
        self._schedule()

    def cork(self, connection: Connection) -> None:
        self._corked.append(connection)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        corked, self._corked = self._corked, []
        for connection in corked:
            connection.uncork()
        self._counter.inc(self._delivered)
        self._delivered = 0


_passes: Final[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _EndOfPass]] = (
    weakref.WeakKeyDictionary()
)


def _end_of_pass() -> _EndOfPass:
    """The running loop's own (each loop runs its own passes; tests run many loops)."""
    loop = asyncio.get_running_loop()
    found = _passes.get(loop)
    if found is None:
        found = _passes[loop] = _EndOfPass(loop)
    return found


class BadFrame(ValueError):
    """A malformed client frame (answered `bad_request`, the connection stays open)."""


async def serve_websocket(gateway: Gateway, websocket: WebSocket) -> None:
    """Authenticate, then run one connection until either side ends it."""
    if gateway.draining:
        metrics.refusals.labels(metrics.REASON_SHUTTING_DOWN).inc()
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(
                Response("the server is shutting down", status_code=503)
            )
        else:
            await websocket.close(CLOSE_GOING_AWAY)
        return
    token = bearer_token(
        websocket.headers.get("authorization"), websocket.query_params.get("access_token")
    )
    principal: Principal | None = None
    code, reason = CLOSE_UNAUTHORIZED, "unauthorized"
    if token is not None:
        try:
            principal = verify_token(gateway.secret, token)
        except AuthError as exc:
            reason = str(exc)[:120]
    if principal is not None and principal.is_service:
        principal, code, reason = None, CLOSE_FORBIDDEN, "a user token is required"
    if principal is None:
        metrics.refusals.labels(
            metrics.REASON_UNAUTHORIZED if code == CLOSE_UNAUTHORIZED else metrics.REASON_FORBIDDEN
        ).inc()
        await websocket.accept()
        await websocket.close(code, reason)
        return
    if not gateway.user_connections.acquire(principal.subject):
        metrics.refusals.labels(metrics.REASON_TOO_MANY_CONNECTIONS).inc()
        await websocket.accept()
        await websocket.close(CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user")
        return
    try:
        await Connection(gateway, websocket, principal).serve()
    finally:
        gateway.user_connections.release(principal.subject)


class Connection:
    """One authenticated WebSocket: its subscriptions and its bounded send queue."""

    def __init__(self, gateway: Gateway, websocket: WebSocket, principal: Principal) -> None:
        settings = gateway.settings
        self.gateway = gateway
        self.websocket = websocket
        self.user = principal.subject
        self.expires_at = principal.expires_at
        self.id = new_connection_id()
        self.subscriptions: dict[str, Subscription] = {}
        self._queue: deque[Wire | str] = deque()
        self._events_queued = 0
        self._capacity = max(1, settings.ws_queue_size)
        self._low_water = max(1, self._capacity // 2)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._done = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._disconnected = False
        self._rate = TokenBucket(settings.max_messages_per_second)
        self._max_frame = settings.max_frame_bytes
        self._sending = False
        self._blocked: tuple[Coroutine[Any, Any, None], Any] | None = None
        self._write_frame = frame_writer(websocket.scope)
        self._cork: list[Wire] | None = None
        self._pass = _end_of_pass()

    # -- the hub's side (Sink) -------------------------------------------------------

    def offer(self, wire: Wire) -> bool:
        """Queue a live event; on overflow close with 4008 and return False."""
        if self._close is not None:
            return False
        cork = self._cork
        if self._events_queued + (len(cork) if cork else 0) >= self._capacity:
            metrics.lagging_closes.labels("ws").inc()
            logger.info("closing a lagging connection", extra={"connection": self.id})
            self.close(CLOSE_LAGGING, "lagging: resume with after_seq")
            return False
        if not self._queue and not self._sending and self._blocked is None:
            # Nothing ahead of it: write at the end of this pass (with any other event
            # offered meanwhile) or now, rather than wake the sender task for it.
            self._pass.delivered()
            if cork is not None:
                cork.append(wire)
            elif self._write_frame is not None:
                self._cork = [wire]
                self._pass.cork(self)
            else:
                self._write_now(wire.json)
            return True
        self._queue.append(wire)
        self._events_queued += 1
        self._wake.set()
        return True

    def uncork(self) -> None:
        """Write the events offered during this pass in one go, or, when the socket cannot
        take them now, queue them ahead of everything queued after them."""
        cork, self._cork = self._cork, None
        if not cork:
            return
        assert self._write_frame is not None
        frames = cork[0].frame if len(cork) == 1 else b"".join(w.frame for w in cork)
        if self._write_frame(frames):
            return
        self._queue.extendleft(reversed(cork))
        self._events_queued += len(cork)
        self._wake.set()

    async def put(self, wire: Wire) -> bool:
        """Queue a replayed event once the queue is below its low-water mark."""
        while self._events_queued >= self._low_water and self._close is None:
            self._room.clear()
            await self._room.wait()
        if self._close is not None:
            return False
        self._queue.append(wire)
        self._events_queued += 1
        self._wake.set()
        return True

    def subscription_failed(self, subscription: Subscription, exc: Exception) -> None:
        """Tell the client its subscription ended (`gone` or `unavailable`)."""
        thread_id = subscription.thread_id
        if self.subscriptions.get(thread_id) is subscription:
            del self.subscriptions[thread_id]
        self.gateway.hub.release(subscription)
        self._send_error_for(thread_id, exc)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Ask the connection to close with `code` (idempotent, never waits)."""
        if self._close is None:
            self._close = (code, reason)
        self._room.set()
        self._done.set()

    def shutdown(self) -> None:
        """The server is shutting down: close with 1001 (clients resume elsewhere)."""
        self.close(CLOSE_GOING_AWAY, "server shutting down")

    async def serve(self) -> None:
        """Accept, then read and send until closed; release everything afterwards."""
        await self.websocket.accept()
        gateway = self.gateway
        gateway.attach(self)
        metrics.connections.inc()
        metrics.connections_total.inc()
        with logs.bound(connection_id=self.id):
            logger.info("websocket connected", extra={"user": self.user})
            sender = asyncio.create_task(self._send_loop())
            reader = asyncio.create_task(self._read_loop())
            expiry = self._watch_expiry()
            try:
                await self._done.wait()
            finally:
                if expiry is not None:
                    expiry.cancel()
                for task in (reader, sender):
                    task.cancel()
                await asyncio.gather(reader, sender, return_exceptions=True)
                for sub in self.subscriptions.values():
                    gateway.hub.release(sub)
                self.subscriptions.clear()
                gateway.detach(self)
                metrics.connections.dec()
                await self._send_close()
                logger.info(
                    "websocket closed",
                    extra={"user": self.user, "code": self._close[0] if self._close else None},
                )

    def _watch_expiry(self) -> asyncio.TimerHandle | None:
        """The token's `exp` holds for the whole connection: close 4401 when it passes."""
        if self.expires_at is None:
            return None
        delay = max(0.0, self.expires_at - time.time())
        return asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        metrics.refusals.labels(metrics.REASON_UNAUTHORIZED).inc()
        logger.info("closing a connection whose token expired", extra={"connection": self.id})
        self.close(CLOSE_UNAUTHORIZED, "token expired")

    async def _send_close(self) -> None:
        if self._close is None or self._disconnected:
            return
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.websocket.close(*self._close)
        except (TimeoutError, OSError, RuntimeError):
            pass

    def _write_now(self, text: str) -> None:
        """Send one event frame from the caller's stack, without a task switch.

        The ASGI send completes without suspending while the transport takes writes;
        when it must wait (the client reads slowly), the sender task finishes it, and
        everything offered meanwhile queues behind it, in order.
        """
        send = self.websocket.send({"type": "websocket.send", "text": text})
        try:
            waiting_on = send.send(None)
        except StopIteration:
            return
        except Exception:
            self._disconnected = True
            self._done.set()
            return
        self._blocked = (send, waiting_on)
        self._wake.set()

    async def _finish_blocked(self) -> None:
        """Drive the send `_write_now` left waiting to its end, as a task would."""
        assert self._blocked is not None
        send, waiting_on = self._blocked
        try:
            while True:
                try:
                    if waiting_on is None:  # a bare yield, as in asyncio.sleep(0)
                        await asyncio.sleep(0)
                    else:
                        # What Task.__step does with a future it is handed: the send's
                        # own await of it is pending, so the flag is still up.
                        waiting_on._asyncio_future_blocking = False
                        await waiting_on
                except BaseException as exc:  # cancelled: let the send see it too
                    waiting_on = send.throw(exc)
                else:
                    waiting_on = send.send(None)
        except StopIteration:
            pass
        finally:
            self._blocked = None

    async def _send_loop(self) -> None:
        send = self.websocket.send
        queue = self._queue
        try:
            while True:
                if self._blocked is not None:
                    self._sending = True
                    await self._finish_blocked()
                    self._sending = False
                    continue
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = queue.popleft()
                if isinstance(item, Wire):
                    self._events_queued -= 1
                    if self._events_queued < self._low_water:
                        self._room.set()
                    self._pass.delivered()
                    text = item.json
                else:
                    text = item
                self._sending = True
                await send({"type": "websocket.send", "text": text})
                self._sending = False
        except asyncio.CancelledError:
            raise
        except Exception:
            self._disconnected = True
            self._done.set()

    async def _read_loop(self) -> None:
        receive = self.websocket.receive
        try:
            while self._close is None:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self._disconnected = True
                    if message.get("code") == CLOSE_TOO_LARGE:
                        metrics.refusals.labels(metrics.REASON_FRAME_TOO_LARGE).inc()
                    break
                await self._on_message(dict(message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("websocket read failed: %r", exc)
            self._disconnected = True
        self._done.set()

    # -- client frames ----------------------------------------------------------------

    async def _on_message(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text is None:
            data = message.get("bytes") or b""
            if len(data) > self._max_frame:
                self._too_large()
                return
            self._bad_request("binary frames are not accepted: send JSON text")
            return
        if len(text) * 4 > self._max_frame and len(text.encode()) > self._max_frame:
            self._too_large()
            return
        try:
            frame = _parse_frame(text)
            # Acks are cheap and may come once per event: only other frames are limited.
            if frame["op"] != "ack" and not self._rate.allow():
                self._rate_limited()
                return
            await self._dispatch(frame)
        except BadFrame as exc:
            if self._rate.allow():
                self._bad_request(str(exc))
            else:
                self._rate_limited()

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "ping":
            self._send_control({"type": "pong"})
        elif op == "subscribe":
            await self._subscribe(_thread_id(frame), _after_seq(frame))
        elif op == "unsubscribe":
            thread_id = _thread_id(frame)
            sub = self.subscriptions.pop(thread_id, None)
            if sub is not None:
                self.gateway.hub.release(sub)
            self._send_control({"type": "unsubscribed", "thread_id": thread_id})
        elif op == "ack":
            _thread_id(frame)
            _seq(frame, "seq", required=True)
            metrics.acks.inc()
        else:
            raise BadFrame(f"unknown op {_quote(op)}")

    async def _subscribe(self, thread_id: str, after_seq: int | None) -> None:
        gateway = self.gateway
        with logs.bound(thread_id=thread_id):
            thread = await gateway.store.get_thread(thread_id)
            if thread is None or thread.owner != self.user:
                metrics.refusals.labels(metrics.REASON_FORBIDDEN).inc()
                self._send_control({"type": "error", "code": "forbidden", "thread_id": thread_id})
                return
            old = self.subscriptions.pop(thread_id, None)
            if old is not None:
                gateway.hub.release(old)
            elif len(self.subscriptions) >= gateway.settings.max_subscriptions_per_connection:
                metrics.refusals.labels(metrics.REASON_TOO_MANY_SUBSCRIPTIONS).inc()
                self._send_control(
                    {
                        "type": "error",
                        "code": "too_many_subscriptions",
                        "thread_id": thread_id,
                        "message": "subscription limit of this connection reached",
                    }
                )
                return
            try:
                sub = await gateway.hub.subscribe(thread_id, self, after_seq)
            except Exception as exc:
                self._send_error_for(thread_id, exc)
                return
            if self._close is not None:
                gateway.hub.release(sub)
                return
            self.subscriptions[thread_id] = sub
            self._send_control(
                {"type": "subscribed", "thread_id": thread_id, "head_seq": sub.head_seq}
            )
            sub.start()

    # -- answers ----------------------------------------------------------------------

    def _send_control(self, frame: dict[str, Any]) -> None:
        if self._close is not None:
            return
        if len(self._queue) - self._events_queued >= self._capacity:
            # A client that sends faster than it reads its answers would otherwise park
            # every unread answer in memory: answers are bounded like events.
            metrics.lagging_closes.labels("ws").inc()
            logger.info("closing a connection that reads no answers", extra={"connection": self.id})
            self.close(CLOSE_LAGGING, "lagging: answers are not being read")
            return
        self._queue.append(dumps(frame).decode())
        self._wake.set()

    def _send_error_for(self, thread_id: str, exc: Exception) -> None:
        if isinstance(exc, EventsGone):
            metrics.refusals.labels(metrics.REASON_GONE).inc()
            frame: dict[str, Any] = {
                "type": "error",
                "code": "gone",
                "thread_id": thread_id,
                "first_seq": exc.first_seq,
                "message": str(exc),
            }
        else:
            logger.error("subscription to %s failed: %r", thread_id, exc)
            frame = {
                "type": "error",
                "code": "unavailable",
                "thread_id": thread_id,
                "message": "the thread's events cannot be read right now; subscribe again",
            }
        self._send_control(frame)

    def _rate_limited(self) -> None:
        metrics.refusals.labels(metrics.REASON_RATE_LIMITED).inc()
        self._send_control(
            {"type": "error", "code": "rate_limited", "message": "too many messages"}
        )

    def _bad_request(self, message: str) -> None:
        metrics.refusals.labels(metrics.REASON_BAD_REQUEST).inc()
        self._send_control({"type": "error", "code": "bad_request", "message": message})

    def _too_large(self) -> None:
        metrics.refusals.labels(metrics.REASON_FRAME_TOO_LARGE).inc()
        self.close(CLOSE_TOO_LARGE, f"frame larger than {self._max_frame} bytes")


def _parse_frame(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise BadFrame(f"not JSON: {exc}") from None
    except RecursionError:
        # `[[[[...` within --max-frame-bytes goes deeper than the parser's stack.
        raise BadFrame("not JSON: nested too deeply") from None
    if not isinstance(frame, dict):
        raise BadFrame("a frame must be one JSON object")
    op = frame.get("op")
    if not isinstance(op, str):
        raise BadFrame("missing op (a string)")
    return frame


def _thread_id(frame: dict[str, Any]) -> str:
    value = frame.get("thread_id")
    if value is None:
        raise BadFrame("missing thread_id")
    try:
        validate_thread_id(value)
    except InvalidIdError as exc:
        raise BadFrame(f"invalid thread_id ({exc.code}): {exc}") from None
    assert isinstance(value, str)
    return value


def _seq(frame: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = frame.get(key)
    if value is None:
        if required:
            raise BadFrame(f"missing {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFrame(f"{key} must be a non-negative integer, not {_quote(value)}")
    seq: int = min(value, MAX_SEQ)
    return seq


def _after_seq(frame: dict[str, Any]) -> int | None:
    return _seq(frame, "after_seq", required=False)


def _quote(value: object, limit: int = 80) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    except (RecursionError, ValueError):  # a value nested about as deep as json.loads goes
        text = f"a deeply nested {type(value).__name__}"
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
