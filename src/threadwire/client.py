"""An async Python client for threadwire: threads, runs, events, and live subscriptions.

    async with Client("http://127.0.0.1:8000", token) as tw:
        thread = await tw.create_thread()
        await tw.start_run(thread["thread_id"], "demo", {"prompt": "hello"})
        async for event in tw.subscribe(thread["thread_id"], after_seq=0):
            print(event.seq, event.type, event.data)

`subscribe()` reconnects by itself (a dropped connection, a 4008 lagging close, a
server shutting down with 1001) and resumes with `after_seq` = the last event it
handed you, dropping anything at or below it: you never see a gap or a duplicate.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from types import TracebackType
from typing import Any, Final

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from threadwire.events import Event

__all__ = ["Client", "SubscriptionError", "ThreadwireError"]

_FATAL_CLOSE: Final = frozenset({4401, 4403})
"""Close codes a reconnect cannot fix (bad token, wrong kind of token)."""
_FATAL_FRAME: Final = frozenset({"forbidden", "gone", "bad_request", "too_many_subscriptions"})


class ThreadwireError(Exception):
    """An error answer (RFC 9457 problem) from the API: `status`, `code`, the `problem`."""

    def __init__(self, status: int, code: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {problem.get('detail', '')}")
        self.status = status
        self.code = code
        self.problem = problem


class SubscriptionError(ThreadwireError):
    """A subscription the server refused for good (forbidden, gone, bad token)."""


class Client:
    """One user's (or service's) connection to a threadwire node."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.reconnects = 0
        """How many times `subscribe()` has had to reconnect (for tests and dashboards)."""
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    # -- HTTP API -----------------------------------------------------------------------

    async def create_thread(
        self, thread_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create a thread (threadwire picks the ID unless you give one)."""
        body: dict[str, Any] = {}
        if thread_id is not None:
            body["thread_id"] = thread_id
        if metadata is not None:
            body["metadata"] = metadata
        return await self._call("POST", "/v1/threads", json=body)

    async def get_thread(self, thread_id: str) -> dict[str, Any]:
        """One of your threads."""
        return await self._call("GET", f"/v1/threads/{thread_id}")

    async def list_threads(self, *, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        """A page of your threads, newest first (`threads`, `next_before`)."""
        return await self._call("GET", "/v1/threads", params=_params(limit=limit, before=before))

    async def start_run(
        self, thread_id: str, agent: str, input: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a run of `agent`; answers `{"run_id", "thread_id", "status": "queued"}`."""
        body = {"agent": agent, "input": input or {}}
        return await self._call("POST", f"/v1/threads/{thread_id}/runs", json=body)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """A run, by any accepted run-ID format."""
        return await self._call("GET", f"/v1/runs/{run_id}")

    async def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run."""
        return await self._call("POST", f"/v1/runs/{run_id}/cancel")

    async def list_runs(
        self, thread_id: str, *, limit: int = 50, before: str | None = None
    ) -> dict[str, Any]:
        """A page of a thread's runs, newest first (`runs`, `next_before`)."""
        params = _params(limit=limit, before=before)
        return await self._call("GET", f"/v1/threads/{thread_id}/runs", params=params)

    async def events(
        self, thread_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        """A page of stored events (`events`, `next_after_seq`)."""
        params = _params(after_seq=after_seq, limit=limit)
        return await self._call("GET", f"/v1/threads/{thread_id}/events", params=params)

    async def ingest(
        self, events: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Store events as an external worker (needs a service token); where each landed."""
        body: dict[str, Any] = {"events": events}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        answer = await self._call("POST", "/v1/events", json=body)
        accepted: list[dict[str, Any]] = answer["accepted"]
        return accepted

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = await self._http.request(method, path, **kwargs)
        try:
            body = answer.json()
        except ValueError:
            body = {"detail": answer.text}
        if answer.is_error:
            code = body.get("code", "error") if isinstance(body, dict) else "error"
            raise ThreadwireError(answer.status_code, code, body if isinstance(body, dict) else {})
        result: dict[str, Any] = body
        return result

    # -- live events --------------------------------------------------------------------

    async def subscribe(
        self, thread_id: str, *, after_seq: int | None = None
    ) -> AsyncIterator[Event]:
        """Every event of the thread after `after_seq` (None: only new ones), in seq order,
        each once, across reconnects, until you stop iterating."""
        last = after_seq
        delay = self.reconnect_delay
        while True:
            try:
                async with aclosing(self._session(thread_id, last)) as session:
                    async for event in session:
                        if event is None:  # subscribed: a healthy connection again
                            delay = self.reconnect_delay
                            continue
                        last = event.seq
                        yield event
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in _FATAL_CLOSE:
                    raise SubscriptionError(code, "unauthorized", {"detail": str(exc)}) from exc
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise SubscriptionError(status, "unauthorized", {}) from exc
            except (OSError, InvalidHandshake, TimeoutError):
                pass
            self.reconnects += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_reconnect_delay)

    async def _session(
        self, thread_id: str, after_seq: int | None
    ) -> AsyncGenerator[Event | None, None]:
        """One connection's worth of a subscription; yields None on `subscribed`."""
        url = "ws" + self.base_url.removeprefix("http") + "/v1/ws"
        headers = {"Authorization": f"Bearer {self.token}"}
        last = after_seq
        resyncing = True
        async with connect(url, additional_headers=headers, max_size=None) as ws:
            await ws.send(_subscribe_frame(thread_id, last))
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "event":
                    seq = frame["event"]["seq"]
                    if resyncing or last is None or seq <= last:
                        continue
                    if seq != last + 1:
                        # Never expected from a server that keeps the protocol; recover.
                        resyncing = True
                        await ws.send(_subscribe_frame(thread_id, last))
                        continue
                    last = seq
                    yield Event.from_dict(frame["event"])
                elif kind == "subscribed" and frame.get("thread_id") == thread_id:
                    if last is None:
                        last = int(frame["head_seq"])
                    resyncing = False
                    yield None
                elif kind == "error" and frame.get("code") in _FATAL_FRAME:
                    raise SubscriptionError(0, str(frame["code"]), frame)
                elif kind == "error":
                    return  # e.g. the store was briefly unavailable: reconnect, back off

    async def stream_run(
        self, thread_id: str, agent: str, input: dict[str, Any] | None = None
    ) -> AsyncIterator[Event]:
        """Start a run and yield its events until its terminal event."""
        head = (await self.get_thread(thread_id))["head_seq"]
        run_id = (await self.start_run(thread_id, agent, input))["run_id"]
        async for event in self.subscribe(thread_id, after_seq=head):
            if event.run_id == run_id:
                yield event
                if event.is_terminal:
                    return


def _subscribe_frame(thread_id: str, after_seq: int | None) -> str:
    frame: dict[str, Any] = {"op": "subscribe", "thread_id": thread_id}
    if after_seq is not None:
        frame["after_seq"] = after_seq
    return json.dumps(frame)


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
