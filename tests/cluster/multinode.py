"""Helpers of the multi-process cluster tests: real `threadwire serve` nodes, a raw
WebSocket watcher that records every frame, and checks on what it and the store hold.

The watcher does not use `threadwire.client`, which drops duplicates on purpose: these
tests must see exactly what the server sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from threadwire.events import TERMINAL_TYPES
from threadwire.verify.spawn import NodeProcess

SECRET: Final = "multinode-test-secret-0123456789abcdef"

FAST_CLUSTER: Final = {
    "THREADWIRE_HEARTBEAT_INTERVAL": "0.2",
    "THREADWIRE_HEARTBEAT_TTL": "1.0",
    "THREADWIRE_DEAD_NODE_GRACE": "1.0",
}
"""Cluster timings for the tests: a dead node is detected in about 2.5 s, not 8 s."""


class Node(NodeProcess):
    """One `threadwire serve --bus-url redis://...` on its own port, with an HTTP client."""

    def __init__(
        self, name: str, workdir: Path, *, database_url: str, bus_url: str, index: int
    ) -> None:
        super().__init__(index, workdir, secret=SECRET, database_url=database_url,
                         bus_url=bus_url)  # fmt: skip
        self.name = name
        self.log = workdir / f"{name}.log"

    def http(self, token: str) -> httpx.AsyncClient:
        """An HTTP client for this node speaking as `token`."""
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    @property
    def ws_url(self) -> str:
        """The node's WebSocket endpoint."""
        return self.url.replace("http://", "ws://") + "/v1/ws"


class Watcher:
    """A WebSocket subscription to one thread from seq 0, recording every event frame.

    Any close, error frame or unexpected frame is recorded too; the tests assert there
    was none, since the node the watcher talks to is never the one killed.
    """

    def __init__(self, node: Node, token: str, thread_id: str) -> None:
        self.node = node
        self.token = token
        self.thread_id = thread_id
        self.events: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._changed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._ws = await connect(
            self.node.ws_url, additional_headers={"Authorization": f"Bearer {self.token}"}
        )
        await self._ws.send(
            json.dumps({"op": "subscribe", "thread_id": self.thread_id, "after_seq": 0})
        )
        first = json.loads(await self._ws.recv())
        assert first["type"] == "subscribed", first
        self._reader = asyncio.create_task(self._read(self._ws))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                frame = json.loads(message)
                if frame.get("type") == "event":
                    self.events.append(frame["event"])
                else:
                    self.problems.append(f"unexpected frame {frame!r}")
                self._changed.set()
        except ConnectionClosed as exc:
            self.problems.append(f"connection closed: {exc}")
        self.problems.append("connection ended")
        self._changed.set()

    async def until(
        self, condition: Callable[[list[dict[str, Any]]], bool], within: float, what: str
    ) -> None:
        """Wait until `condition(events)` holds (checked on every frame), or fail."""
        try:
            async with asyncio.timeout(within):
                while not condition(self.events):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.node.name}: timed out after {within} s waiting for {what}; "
                f"got {len(self.events)} events, problems {self.problems}"
            ) from None

    async def until_terminal(self, run_id: str, within: float = 60.0) -> dict[str, Any]:
        """Wait for the run's terminal event; return it."""
        await self.until(
            lambda events: any(is_terminal_of(e, run_id) for e in events),
            within,
            f"the terminal event of {run_id}",
        )
        return next(e for e in self.events if is_terminal_of(e, run_id))


def is_terminal_of(event: dict[str, Any], run_id: str) -> bool:
    """Whether `event` is a terminal event of `run_id`."""
    return event["run_id"] == run_id and event["type"] in TERMINAL_TYPES


async def stored_events(http: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    """Every stored event of the thread, read page by page through the HTTP API."""
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        answer = await http.get(
            f"/v1/threads/{thread_id}/events", params={"after_seq": after, "limit": 1000}
        )
        answer.raise_for_status()
        page = answer.json()
        events += page["events"]
        after = page["next_after_seq"]
    return events


def assert_delivery(watcher: Watcher, stored: list[dict[str, Any]]) -> None:
    """The watcher got every stored event exactly once, in seq order, and nothing else;
    the store's seqs have no gap; each run has exactly one terminal event, its last."""
    seqs = [e["seq"] for e in stored]
    assert seqs == list(range(1, len(stored) + 1)), f"gap or repeat in stored seqs: {seqs}"
    got = [e["seq"] for e in watcher.events]
    assert got == seqs, f"{watcher.node.name} received seqs {got}, stored {seqs}"
    assert [e["event_id"] for e in watcher.events] == [e["event_id"] for e in stored]
    assert watcher.problems == [], watcher.problems
    for run_id in {e["run_id"] for e in stored}:
        of_run = [e for e in stored if e["run_id"] == run_id]
        terminals = [e for e in of_run if e["type"] in TERMINAL_TYPES]
        assert len(terminals) == 1, f"run {run_id} has terminal events {terminals}"
        assert of_run[-1] is terminals[0], f"run {run_id} has events after its terminal one"


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` (any labels) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in {" ", "{"}:
            total += float(line.rsplit(" ", 1)[1])
    return total
