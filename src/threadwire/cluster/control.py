"""The control channel: commands from one node to another, answered or timed out.

A node listens on `{ns}:control:{node_id}` for requests and on `{ns}:reply:{node_id}`
for answers, both on the bus's one subscriber connection. A request names a command
(`cancel_run`) and its arguments; the target runs the handler registered for it and
publishes the outcome back. The requester learns at once when no node listens on the
target's channel (PUBLISH reaches nobody), and times out when no answer comes.

Messages are JSON objects:
`{"kind": "request", "from": node, "n": 7, "cmd": "cancel_run", "args": {...}}` and
`{"kind": "reply", "n": 7, "ok": true, "result": {...}}` or
`{"kind": "reply", "n": 7, "ok": false, "code": "run_finished", "message": "..."}`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

from threadwire.bus import keys
from threadwire.bus.redis import BusUnavailable, RedisBus
from threadwire.bus.tasks import cancel_and_wait
from threadwire.cluster import metrics
from threadwire.events import dumps

log = logging.getLogger(__name__)

CANCEL_RUN: Final = "cancel_run"
"""Cancel a run on the node executing it: args `{"run_id"}`, result the run's body."""

CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
"""Runs a command for another node; raise an exception with a `code` to refuse it."""


class ControlError(Exception):
    """A command could not be carried out on the target node; `code` says why."""

    code = "control_error"


class NodeUnreachable(ControlError):
    """No node listens on the target's control channel (it is down, or not in cluster mode)."""

    code = "node_unreachable"


class ControlTimeout(ControlError, TimeoutError):
    """The target did not answer in time (it may still carry the command out)."""

    code = "node_timeout"


class CommandRefused(ControlError):
    """The target's handler refused the command; `code` and `message` are its own."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlChannel:
    """Send commands to other nodes; answer theirs with the handlers registered here."""

    def __init__(self, bus: RedisBus, node_id: str, *, timeout: float = 10.0) -> None:
        self.bus = bus
        self.node_id = node_id
        self.timeout = timeout
        self._handlers: dict[str, CommandHandler] = {}
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # A random start, so a late answer to a previous incarnation's request matches nothing.
        self._numbers = itertools.count(random.randrange(1 << 40))
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    def handle(self, command: str, handler: CommandHandler) -> None:
        """Run `handler` for each `command` another node sends to this one."""
        self._handlers[command] = handler

    async def start(self) -> None:
        """Listen for requests and answers."""
        ns = self.bus.namespace
        await self.bus.subscribe_channel(keys.control_channel(ns, self.node_id), self._on_request)
        await self.bus.subscribe_channel(keys.reply_channel(ns, self.node_id), self._on_reply)
        self._started = True

    async def stop(self) -> None:
        """Stop listening; requests still waiting fail, handlers still running are cancelled."""
        if self._started:
            ns = self.bus.namespace
            await self.bus.unsubscribe_channel(
                keys.control_channel(ns, self.node_id), self._on_request
            )
            await self.bus.unsubscribe_channel(keys.reply_channel(ns, self.node_id), self._on_reply)
            self._started = False
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(ControlError("the control channel was stopped"))
        self._waiting.clear()
        for task in list(self._tasks):
            await cancel_and_wait(task)

    async def request(
        self,
        node_id: str,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        within: float | None = None,
    ) -> dict[str, Any]:
        """Have `node_id` run `command`; its result, or NodeUnreachable, ControlTimeout,
        CommandRefused. A command for this node runs here directly."""
        args = dict(args or {})
        if node_id == self.node_id:
            return await self._run_local(command, args)
        number = next(self._numbers)
        message = {"kind": "request", "from": self.node_id, "n": number, "cmd": command,
                   "args": args}
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = waiter
        try:
            channel = keys.control_channel(self.bus.namespace, node_id)
            try:
                receivers = await self.bus.publish_now(channel, dumps(message))
            except BusUnavailable as exc:
                metrics.control_requests.labels(command, "unreachable").inc()
                raise NodeUnreachable(
                    f"cannot send {command!r} to node {node_id!r}: {exc}"
                ) from exc
            if receivers == 0:
                metrics.control_requests.labels(command, "unreachable").inc()
                raise NodeUnreachable(f"node {node_id!r} does not listen for commands")
            try:
                async with asyncio.timeout(self.timeout if within is None else within):
                    reply = await waiter
            except TimeoutError:
                metrics.control_requests.labels(command, "timeout").inc()
                raise ControlTimeout(
                    f"node {node_id!r} did not answer {command!r} in time"
                ) from None
        finally:
            self._waiting.pop(number, None)
        return self._outcome(command, reply)

    def _outcome(self, command: str, reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("ok") is True:
            metrics.control_requests.labels(command, "ok").inc()
            result = reply.get("result")
            return dict(result) if isinstance(result, dict) else {}
        metrics.control_requests.labels(command, "refused").inc()
        raise CommandRefused(str(reply.get("code", "control_error")), str(reply.get("message", "")))

    async def _run_local(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        return self._outcome(command, await self._answer(command, args))

    async def _answer(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = self._handlers.get(command)
        if handler is None:
            metrics.control_handled.labels(command, "refused").inc()
            return _refusal("unknown_command", f"node {self.node_id!r} has no command {command!r}")
        try:
            result = await handler(args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                metrics.control_handled.labels(command, "refused").inc()
                return _refusal(code, str(exc))
            metrics.control_handled.labels(command, "error").inc()
            log.exception("command %r from another node failed", command)
            return _refusal("internal_error", f"{command!r} failed on node {self.node_id!r}")
        metrics.control_handled.labels(command, "ok").inc()
        return {"ok": True, "result": result or {}}

    def _on_request(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
            sender, number, command = message["from"], message["n"], message["cmd"]
            args = message.get("args") or {}
            if not (isinstance(sender, str) and isinstance(number, int)
                    and isinstance(command, str) and isinstance(args, dict)):
                raise TypeError("wrong member types")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed control request %r: %s", payload[:200], exc)
            return
        task = asyncio.create_task(self._serve(sender, number, command, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, sender: str, number: int, command: str, args: dict[str, Any]) -> None:
        reply = await self._answer(command, args)
        try:
            data = dumps({"kind": "reply", "n": number, **reply})
        except (TypeError, ValueError):
            log.exception("the result of %r is not JSON", command)
            failure = _refusal("internal_error", f"{command!r} gave no JSON result")
            data = dumps({"kind": "reply", "n": number, **failure})
        channel = keys.reply_channel(self.bus.namespace, sender)
        try:
            await self.bus.publish_now(channel, data)
        except BusUnavailable as exc:
            log.warning("could not answer %r to node %r: %s", command, sender, exc)

    def _on_reply(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
            waiter = self._waiting.get(message["n"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed control reply %r: %s", payload[:200], exc)
            return
        if waiter is not None and not waiter.done() and isinstance(message, dict):
            waiter.set_result(message)


def _refusal(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message}
